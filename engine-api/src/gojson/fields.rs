//! Which struct field an object member lands in, as Go's `encoding/json`
//! decides it.

use super::tree::Json;

/// Go's case folding for matching a key against an ASCII field name: ASCII
/// letters in any case, plus the two non-ASCII letters whose simple case
/// folding reaches an ASCII one (`ſ` to `s`, the Kelvin sign to `k`).
fn fold(c: char) -> char {
    match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    }
}

/// Whether `key` names `field` under Go's case-insensitive rule.
pub fn fold_eq(field: &str, key: &str) -> bool {
    field.chars().map(fold).eq(key.chars().map(fold))
}

/// The field `key` sets: the field spelled exactly so, else the first
/// field (in declaration order) equal to it under case folding, else none
/// (Go ignores the member).
pub fn field_for(fields: &'static [&'static str], key: &str) -> Option<&'static str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| fold_eq(f, key)))
        .copied()
}

/// The members of an object decoded into a struct with `fields`, one per
/// field, as Go leaves the struct after reading them in order:
/// - unknown keys are dropped;
/// - a key that repeats a field (in any case) is decoded into what is
///   there: an object into an object merges (its members are read after the
///   earlier ones, so nested repeats follow the same rule), anything else
///   replaces;
/// - a field no key sets is `null`, which decodes as the zero value (Go
///   starts from a zeroed struct; a required field is never "missing").
pub fn resolve(
    fields: &'static [&'static str],
    members: Vec<(String, Json)>,
) -> Vec<(&'static str, Json)> {
    let mut out: Vec<(&'static str, Json)> = Vec::with_capacity(fields.len());
    for (key, value) in members {
        let Some(field) = field_for(fields, &key) else {
            continue;
        };
        match out.iter_mut().find(|(f, _)| *f == field) {
            Some((_, slot)) => merge(slot, value),
            None => out.push((field, value)),
        }
    }
    for field in fields {
        if !out.iter().any(|(f, _)| f == field) {
            out.push((field, Json::Null));
        }
    }
    out
}

/// Go decoding `value` into a field that already holds `slot`.
fn merge(slot: &mut Json, value: Json) {
    match (slot, value) {
        (Json::Object(old), Json::Object(new)) => old.extend(new),
        (slot, value) => *slot = value,
    }
}
