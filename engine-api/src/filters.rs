//! Docker list filters: `filters={"key":{"value":true}}` and the legacy
//! `{"key":["value"]}` form, with per-resource allowed keys.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::error::ApiError;

/// Parsed filters: key to the set of accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Parses the `filters` query value (absent or empty means no filter).
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("").trim();
        if raw.is_empty() {
            return Ok(Filters::default());
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::bad_request("invalid filter: expected an object"))?;
        check_one_form(obj)?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let set: BTreeSet<String> = match vals {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            };
            out.insert(k.clone(), set);
        }
        Ok(Filters(out))
    }

    /// Refuses keys outside `allowed` with dockerd's message.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!("Invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// The values for `key` (empty when the key is absent).
    pub fn get(&self, key: &str) -> impl Iterator<Item = &String> {
        self.0.get(key).into_iter().flatten()
    }

    /// Whether `key` was given.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// True when `key` is absent or one of its values equals `value`.
    pub fn exact(&self, key: &str, value: &str) -> bool {
        !self.contains(key) || self.get(key).any(|v| v == value)
    }

    /// True when `key` is absent or `value` starts with one of its values.
    pub fn prefix(&self, key: &str, value: &str) -> bool {
        !self.contains(key) || self.get(key).any(|v| value.starts_with(v.as_str()))
    }

    /// True when `key` is absent or any of its values is a prefix of an ID or
    /// equals/prefixes a name (dockerd's `id`/`name` semantics).
    pub fn name_or_id(&self, key: &str, value: &str) -> bool {
        self.prefix(key, value)
    }

    /// The prune calls' label test: every `label` matches `labels` and the
    /// `label!` values, when given, do not all match.
    pub fn prune_labels(&self, labels: Option<&std::collections::HashMap<String, String>>) -> bool {
        self.labels("label", labels) && !(self.contains("label!") && self.labels("label!", labels))
    }

    /// Label filters: every `k` or `k=v` given must match `labels`.
    pub fn labels(
        &self,
        key: &str,
        labels: Option<&std::collections::HashMap<String, String>>,
    ) -> bool {
        self.get(key).all(|want| {
            let (k, v) = match want.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (want.as_str(), None),
            };
            match (labels.and_then(|l| l.get(k)), v) {
                (Some(_), None) => true,
                (Some(have), Some(v)) => have == v,
                (None, _) => false,
            }
        })
    }
}

/// Go's JSON type name of a value, as its decoder words a mismatch.
fn go_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
        serde_json::Value::Null => "null",
    }
}

/// dockerd reads filters as one form or the other, never a mix: a map of
/// value to boolean for every key, else a list of strings for every key.
/// Input that is neither gets the first mismatch of the map form in Go's
/// words, with a 400 (dockerd 20.10 answers these with a 500; later
/// versions with a 400, as here).
fn check_one_form(obj: &serde_json::Map<String, serde_json::Value>) -> Result<(), ApiError> {
    use serde_json::Value;
    let map_form = |v: &Value| match v {
        Value::Object(m) => m.values().all(|b| b.is_boolean() || b.is_null()),
        // A value of another kind keeps its own error below.
        _ => !v.is_array(),
    };
    let list_form = |v: &Value| match v {
        Value::Array(a) => a.iter().all(|x| x.is_string() || x.is_null()),
        _ => !v.is_object(),
    };
    if obj.values().all(map_form) || obj.values().all(list_form) {
        return Ok(());
    }
    let why = obj.values().find_map(|v| match v {
        Value::Array(_) => Some("array into Go value of type map[string]bool".to_string()),
        Value::Object(m) => m
            .values()
            .find(|b| !(b.is_boolean() || b.is_null()))
            .map(|b| format!("{} into Go value of type bool", go_kind(b))),
        _ => None,
    });
    Err(ApiError::bad_request(format!(
        "json: cannot unmarshal {}",
        why.unwrap_or_else(|| "array into Go value of type map[string]bool".into())
    )))
}

/// dockerd matches `name` and `id` values as unanchored regular
/// expressions. Names and IDs are plain text, so a literal search with the
/// `^` and `$` anchors covers what clients send.
pub fn loose_match(pattern: &str, source: &str) -> bool {
    if pattern == source {
        return true;
    }
    let (start, p) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    match (start, end) {
        (true, true) => source == p,
        (true, false) => source.starts_with(p),
        (false, true) => source.ends_with(p),
        (false, false) => source.contains(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse() {
        let f = Filters::parse(Some(r#"{"name":{"web":true,"db":false}}"#)).unwrap();
        assert!(f.exact("name", "web"));
        assert!(!f.exact("name", "db"));
        let f = Filters::parse(Some(r#"{"name":["web"]}"#)).unwrap();
        assert!(f.exact("name", "web"));
    }

    #[test]
    fn unknown_keys_and_bad_json() {
        let f = Filters::parse(Some(r#"{"x":{"a":true}}"#)).unwrap();
        assert_eq!(
            f.validate(&["name"]).unwrap_err().message,
            "Invalid filter 'x'"
        );
        assert!(Filters::parse(Some("{")).is_err());
    }

    #[test]
    fn values_of_another_type_or_mixed_forms_are_refused() {
        let text = |raw: &str| Filters::parse(Some(raw)).unwrap_err().message;
        assert_eq!(
            text(r#"{"name":{"a":"yes"}}"#),
            "json: cannot unmarshal string into Go value of type bool"
        );
        assert_eq!(
            text(r#"{"name":["a",1]}"#),
            "json: cannot unmarshal array into Go value of type map[string]bool"
        );
        assert_eq!(
            text(r#"{"id":{"a":true},"name":["a"]}"#),
            "json: cannot unmarshal array into Go value of type map[string]bool"
        );
        // null reads as Go's zero value in either form.
        assert!(Filters::parse(Some(r#"{"name":{"a":null}}"#)).is_ok());
        assert!(Filters::parse(Some(r#"{"name":["a",null]}"#)).is_ok());
    }

    #[test]
    fn labels_match_key_or_pair() {
        let mut l = std::collections::HashMap::new();
        l.insert("env".to_string(), "prod".to_string());
        let f = Filters::parse(Some(r#"{"label":{"env=prod":true}}"#)).unwrap();
        assert!(f.labels("label", Some(&l)));
        let f = Filters::parse(Some(r#"{"label":{"env":true}}"#)).unwrap();
        assert!(f.labels("label", Some(&l)));
        let f = Filters::parse(Some(r#"{"label":{"env=dev":true}}"#)).unwrap();
        assert!(!f.labels("label", Some(&l)));
        assert!(!f.labels("label", None));
    }
}
