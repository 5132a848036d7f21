//! Comparing an actual response with the recorded one.
//!
//! What is compared: the status code; the headers of note (values, except
//! `Server`, whose presence only counts); the body kind; and for JSON the
//! shape: object keys (missing and extra), value types, and string and
//! number values after normalization. Arrays are paired by name when their
//! elements have one (`Spec.Name`, `Name`), else by index; their lengths are
//! compared only where a rule fixes them.
//!
//! Normalization replaces what a daemon makes up anew each run with
//! placeholders: swarm and local IDs, join tokens, unlock keys, RFC 3339
//! timestamps, IPv4 addresses. Rules (`rules.toml`) add the rest:
//!
//! ```toml
//! [[rule]]
//! request = "GET /services*"   # glob on "METHOD path" (path without /v1.NN); optional
//! seq = [12, 13]               # optional: only these exchanges
//! ignore = ["$.Status.Timestamp", "**.CreatedAt"]   # not compared at all
//! ignore_value = ["**.Version.Index"]               # type only
//! enum = ["**.Status.State"]   # value must be one recorded at this path in the scenario
//! fixed_len = ["$"]            # array length must match
//! allow = { "$[].Status.State" = ["accepted"] }   # for enum paths: more accepted values
//! optional = ["$[].NodeID"]    # may be missing on either side; compared when on both
//! skip = false                 # do not compare the exchange at all
//! ```
//!
//! Paths are `$` for the body, `.Key` for members, `[]` for any element;
//! `**` in a pattern matches any run of segments, `*` inside a segment any
//! text.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context as _;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::capture::pair_elements;
use super::capture::path_without_version;
use crate::record::format::Exchange;
use crate::record::format::RESPONSE_HEADERS;

/// One `[[rule]]` of a rules file.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Rule {
    /// Glob on `METHOD path` (path without the version prefix, with query).
    #[serde(default)]
    pub request: Option<String>,
    /// Sequence numbers the rule is limited to.
    #[serde(default)]
    pub seq: Vec<u64>,
    /// Paths not compared at all.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Paths whose type is compared but not their value.
    #[serde(default)]
    pub ignore_value: Vec<String>,
    /// Paths whose value must be one of the values recorded there.
    #[serde(default, rename = "enum")]
    pub enums: Vec<String>,
    /// Paths of arrays whose length must match.
    #[serde(default)]
    pub fixed_len: Vec<String>,
    /// Paths that may be missing on either side (compared when on both).
    #[serde(default)]
    pub optional: Vec<String>,
    /// For `enum` paths: values accepted besides those recorded.
    #[serde(default)]
    pub allow: std::collections::BTreeMap<String, Vec<String>>,
    /// Skip comparing matching exchanges.
    #[serde(default)]
    pub skip: bool,
    /// Why the rule exists (for readers; not used).
    #[serde(default)]
    pub reason: String,
}

/// An ordered list of rules (global first, then the scenario's).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RuleSet {
    /// The rules.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Parses a rules file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Appends another set's rules.
    pub fn extend(&mut self, other: RuleSet) {
        self.rules.extend(other.rules);
    }

    /// The rules that apply to one exchange, merged.
    pub fn for_exchange(&self, ex: &Exchange) -> Rule {
        let target = format!(
            "{} {}",
            ex.request.method,
            path_without_version(&ex.request.path)
        );
        let mut merged = Rule::default();
        for r in &self.rules {
            if !r.seq.is_empty() && !r.seq.contains(&ex.seq) {
                continue;
            }
            if let Some(req) = &r.request {
                if !glob(req, &target) {
                    continue;
                }
            }
            merged.skip |= r.skip;
            merged.ignore.extend(r.ignore.iter().cloned());
            merged.ignore_value.extend(r.ignore_value.iter().cloned());
            merged.enums.extend(r.enums.iter().cloned());
            merged.fixed_len.extend(r.fixed_len.iter().cloned());
            merged.optional.extend(r.optional.iter().cloned());
            for (k, v) in &r.allow {
                merged
                    .allow
                    .entry(k.clone())
                    .or_default()
                    .extend(v.iter().cloned());
            }
        }
        merged
    }
}

/// A difference between the recorded and the actual response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where: `status`, `header.Name`, `body`, or a JSON path (`$.Spec.Name`).
    pub at: String,
    /// What differs, for people.
    pub message: String,
}

/// What came back from the daemon, in the same form as a recording.
#[derive(Debug, Clone)]
pub struct Actual {
    /// Status code.
    pub status: u16,
    /// Headers of note.
    pub headers: serde_json::Map<String, Value>,
    /// Body value, in the form named by `body_kind`.
    pub body: Value,
    /// Body form (see the cassette format).
    pub body_kind: String,
}

/// Values seen at each normalized path in a scenario's recorded bodies,
/// for `enum` rules.
#[derive(Debug, Default, Clone)]
pub struct EnumSets {
    seen: HashMap<String, BTreeSet<String>>,
}

impl EnumSets {
    /// Collects the scalar values of every recorded response body.
    pub fn from_exchanges(exchanges: &[Exchange]) -> Self {
        let mut s = EnumSets::default();
        for ex in exchanges {
            if ex.response.body_kind == "json" {
                s.collect(&ex.response.body, "$");
            }
        }
        s
    }

    fn collect(&mut self, v: &Value, path: &str) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| self.collect(x, &format!("{path}.{k}"))),
            Value::Array(a) => a.iter().for_each(|x| self.collect(x, &format!("{path}[]"))),
            other => {
                self.seen
                    .entry(path.to_string())
                    .or_default()
                    .insert(scalar_text(other));
            }
        }
    }

    fn contains(&self, path: &str, v: &Value) -> bool {
        let p = generic_path(path);
        self.seen
            .get(&p)
            .is_some_and(|s| s.contains(&scalar_text(v)))
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => normalize(s),
        other => other.to_string(),
    }
}

/// `$.a[3].b` -> `$.a[].b`.
fn generic_path(path: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\[[^\]]*\]").expect("static regex"));
    re.replace_all(path, "[]").into_owned()
}

/// Replaces run-specific values in a string with placeholders.
pub fn normalize(s: &str) -> String {
    static RES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let res = RES.get_or_init(|| {
        [
            (r"SWMTKN-1-[A-Za-z0-9-]+", "<join-token>"),
            (r"SWMKEY-1-[A-Za-z0-9+/=]+", "<unlock-key>"),
            (
                r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
                "<time>",
            ),
            (r"\b[0-9a-f]{64}\b", "<hex-id>"),
            (r"\b[a-z0-9]{25}\b", "<id>"),
            (r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", "<ip>"),
        ]
        .into_iter()
        .map(|(p, r)| (Regex::new(p).expect("static regex"), r))
        .collect()
    });
    let mut out = s.to_string();
    for (re, rep) in res {
        if re.is_match(&out) {
            out = re.replace_all(&out, *rep).into_owned();
        }
    }
    out
}

/// Compares one exchange. Returns no differences when the rules skip it.
pub fn compare(ex: &Exchange, actual: &Actual, rule: &Rule, enums: &EnumSets) -> Vec<Difference> {
    let mut diffs = Vec::new();
    if rule.skip {
        return diffs;
    }
    let rec = &ex.response;
    if rec.status != actual.status {
        diffs.push(Difference {
            at: "status".into(),
            message: format!("status {} != recorded {}", actual.status, rec.status),
        });
    }
    compare_headers(&rec.headers, &actual.headers, rule, &mut diffs);
    if ex.hijacked || rec.truncated || !rec.complete {
        return diffs;
    }
    if rec.body_kind != actual.body_kind {
        let msg = format!(
            "body is {} ({}) , recorded {} ({})",
            actual.body_kind,
            brief(&actual.body),
            rec.body_kind,
            brief(&rec.body)
        );
        diffs.push(Difference {
            at: "body".into(),
            message: msg,
        });
        return diffs;
    }
    let mut cmp = Comparer {
        rule,
        enums,
        diffs: &mut diffs,
    };
    match rec.body_kind.as_str() {
        "json" => cmp.value(&rec.body, &actual.body, "$"),
        "text" => cmp.text(&rec.body, &actual.body),
        "frames" => cmp.frames(&rec.body, &actual.body),
        _ => {}
    }
    diffs
}

fn compare_headers(
    rec: &serde_json::Map<String, Value>,
    act: &serde_json::Map<String, Value>,
    rule: &Rule,
    diffs: &mut Vec<Difference>,
) {
    for name in RESPONSE_HEADERS {
        let at = format!("header.{name}");
        if matches_any(&rule.ignore, &at) {
            continue;
        }
        match (rec.get(*name), act.get(*name)) {
            (Some(_), None) => diffs.push(Difference {
                at,
                message: "header missing".into(),
            }),
            (None, Some(a)) => diffs.push(Difference {
                at,
                message: format!("unexpected header {a}"),
            }),
            (Some(r), Some(a)) => {
                let presence_only = *name == "Server" || matches_any(&rule.ignore_value, &at);
                if !presence_only && r != a {
                    diffs.push(Difference {
                        at,
                        message: format!("{a} != recorded {r}"),
                    });
                }
            }
            (None, None) => {}
        }
    }
}

struct Comparer<'a> {
    rule: &'a Rule,
    enums: &'a EnumSets,
    diffs: &'a mut Vec<Difference>,
}

impl Comparer<'_> {
    fn push(&mut self, at: &str, message: String) {
        self.diffs.push(Difference {
            at: at.to_string(),
            message,
        });
    }

    fn absent_ok(&self, path: &str) -> bool {
        matches_any(&self.rule.ignore, path) || matches_any(&self.rule.optional, path)
    }

    fn value(&mut self, rec: &Value, act: &Value, path: &str) {
        if matches_any(&self.rule.ignore, path) {
            return;
        }
        if type_name(rec) != type_name(act) {
            self.push(
                path,
                format!(
                    "{} {} != recorded {} {}",
                    type_name(act),
                    brief(act),
                    type_name(rec),
                    brief(rec)
                ),
            );
            return;
        }
        match (rec, act) {
            (Value::Object(r), Value::Object(a)) => self.object(r, a, path),
            (Value::Array(r), Value::Array(a)) => self.array(r, a, path),
            _ => self.scalar(rec, act, path),
        }
    }

    /// Compares members by key; keys that are IDs (`Containers` of a
    /// network is keyed by container ID) are compared normalized, paired
    /// in order.
    fn object(
        &mut self,
        r: &serde_json::Map<String, Value>,
        a: &serde_json::Map<String, Value>,
        path: &str,
    ) {
        let mut a_by_key: HashMap<String, Vec<(&String, &Value)>> = HashMap::new();
        for (k, v) in a {
            a_by_key.entry(normalize(k)).or_default().push((k, v));
        }
        for (k, rv) in r {
            let p = format!("{path}.{}", normalize(k));
            let found = a_by_key
                .get_mut(&normalize(k))
                .and_then(|v| (!v.is_empty()).then(|| v.remove(0)));
            match found {
                Some((_, av)) => self.value(rv, av, &p),
                None if !self.absent_ok(&p) => {
                    self.push(&p, format!("missing (recorded {})", brief(rv)))
                }
                None => {}
            }
        }
        let mut extra: Vec<(&String, &Value)> = a_by_key.into_values().flatten().collect();
        extra.sort_by_key(|(k, _)| k.as_str());
        for (k, av) in extra {
            let p = format!("{path}.{}", normalize(k));
            if !self.absent_ok(&p) {
                self.push(&p, format!("unexpected key ({})", brief(av)));
            }
        }
    }

    fn array(&mut self, r: &[Value], a: &[Value], path: &str) {
        if r.len() != a.len() && matches_any(&self.rule.fixed_len, path) {
            self.push(path, format!("length {} != recorded {}", a.len(), r.len()));
        }
        for (i, (rv, av)) in pair_elements(r, a).into_iter().enumerate() {
            self.value(rv, av, &format!("{path}[{i}]"));
        }
    }

    fn scalar(&mut self, rec: &Value, act: &Value, path: &str) {
        if matches_any(&self.rule.ignore_value, path) {
            return;
        }
        if matches_any(&self.rule.enums, path) {
            let allowed = self.rule.allow.iter().any(|(p, vals)| {
                path_match(p, path) && vals.iter().any(|v| act.as_str() == Some(v.as_str()))
            });
            if !allowed && !self.enums.contains(path, act) {
                self.push(path, format!("{} is not a value recorded here", brief(act)));
            }
            return;
        }
        if scalar_text(rec) != scalar_text(act) {
            self.push(path, format!("{} != recorded {}", brief(act), brief(rec)));
        }
    }

    fn text(&mut self, rec: &Value, act: &Value) {
        if matches_any(&self.rule.ignore_value, "$") || matches_any(&self.rule.ignore, "$") {
            return;
        }
        let (r, a) = (
            normalize(rec.as_str().unwrap_or("")),
            normalize(act.as_str().unwrap_or("")),
        );
        if r != a {
            self.push("$", format!("text {:?} != recorded {:?}", a, r));
        }
    }

    fn frames(&mut self, rec: &Value, act: &Value) {
        let lines = |v: &Value| -> Vec<String> {
            let mut out: Vec<String> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "{}:{}",
                        f["stream"],
                        normalize(f["data"].as_str().unwrap_or(""))
                    )
                })
                .collect();
            out.sort();
            out
        };
        let (r, a) = (lines(rec), lines(act));
        if r != a && !matches_any(&self.rule.ignore_value, "$") {
            self.push("$", format!("stream frames {:?} != recorded {:?}", a, r));
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A short rendering of a value for messages.
pub fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn matches_any(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| path_match(p, path))
}

/// Matches a JSON path against a pattern (see the module docs).
pub fn path_match(pattern: &str, path: &str) -> bool {
    let pat = split_path(pattern);
    let segs = split_path(&generic_path(path));
    match_segments(&pat, &segs)
}

fn split_path(p: &str) -> Vec<String> {
    // "$.a[].b" -> ["$", "a", "[]", "b"]; "**" stays one segment.
    let mut out = Vec::new();
    for part in p.split('.') {
        let mut rest = part;
        while let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(rest[..i].to_string());
            }
            let end = rest[i..].find(']').map_or(rest.len(), |j| i + j + 1);
            out.push("[]".to_string());
            rest = &rest[end..];
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

fn match_segments(pat: &[String], segs: &[String]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((p, rest)) if p == "**" => (0..=segs.len()).any(|i| match_segments(rest, &segs[i..])),
        Some((p, rest)) => match segs.split_first() {
            Some((s, srest)) => glob(p, s) && match_segments(rest, srest),
            None => false,
        },
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !text.starts_with(part) {
                return false;
            }
            pos = part.len();
        } else if i == parts.len() - 1 {
            return text.len() >= pos + part.len() && text[pos..].ends_with(part);
        } else if let Some(j) = text[pos..].find(part) {
            pos += j + part.len();
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::record::format::RecordedRequest;
    use crate::record::format::RecordedResponse;

    fn ex(status: u16, body: Value) -> Exchange {
        Exchange {
            seq: 3,
            conn: 1,
            at_ms: 0,
            request: RecordedRequest {
                method: "GET".into(),
                path: "/v1.41/services/web".into(),
                headers: Default::default(),
                body: Value::Null,
                body_kind: "empty".into(),
                body_len: 0,
            },
            response: RecordedResponse {
                status,
                headers: serde_json::Map::from_iter([("Api-Version".to_string(), json!("1.41"))]),
                body,
                body_kind: "json".into(),
                body_len: 0,
                streamed: false,
                truncated: false,
                complete: true,
            },
            hijacked: false,
        }
    }

    fn actual(status: u16, body: Value) -> Actual {
        Actual {
            status,
            headers: serde_json::Map::from_iter([("Api-Version".to_string(), json!("1.41"))]),
            body,
            body_kind: "json".into(),
        }
    }

    #[test]
    fn normalizes_ids_times_tokens_addresses() {
        let s =
            "service ab3xkq9v0b1c2d3e4f5g6h7i8 at 2024-01-02T03:04:05.123456789Z on 10.0.0.2:2377";
        assert_eq!(normalize(s), "service <id> at <time> on <ip>:2377");
        assert_eq!(normalize("SWMTKN-1-0abc-def"), "<join-token>");
    }

    #[test]
    fn same_shape_with_other_ids_matches() {
        let e = ex(
            200,
            json!({"ID": "aaaaaaaaaaaaaaaaaaaaaaaaa", "CreatedAt": "2024-01-02T03:04:05Z", "Spec": {"Name": "web"}}),
        );
        let a = actual(
            200,
            json!({"ID": "bbbbbbbbbbbbbbbbbbbbbbbbb", "CreatedAt": "2025-01-02T03:04:05Z", "Spec": {"Name": "web"}}),
        );
        assert!(compare(&e, &a, &Rule::default(), &EnumSets::default()).is_empty());
    }

    #[test]
    fn reports_status_keys_types_and_values() {
        let e = ex(200, json!({"A": 1, "B": "x", "C": [1], "D": {"E": true}}));
        let a = actual(404, json!({"A": "1", "B": "y", "C": [1], "X": 0}));
        let diffs = compare(&e, &a, &Rule::default(), &EnumSets::default());
        let ats: Vec<&str> = diffs.iter().map(|d| d.at.as_str()).collect();
        assert_eq!(ats, vec!["status", "$.A", "$.B", "$.D", "$.X"]);
    }

    #[test]
    fn rules_ignore_enum_and_fixed_len() {
        let e = ex(
            200,
            json!([{"Status": {"State": "running"}, "N": [1, 2]}, {"Status": {"State": "pending"}, "N": []}]),
        );
        let a = actual(
            200,
            json!([{"Status": {"State": "pending"}, "N": [1]}, {"Status": {"State": "bogus"}, "N": []}]),
        );
        let rule = Rule {
            enums: vec!["**.Status.State".into()],
            fixed_len: vec!["$[].N".into()],
            ..Default::default()
        };
        let enums = EnumSets::from_exchanges(std::slice::from_ref(&e));
        let diffs = compare(&e, &a, &rule, &enums);
        let ats: Vec<&str> = diffs.iter().map(|d| d.at.as_str()).collect();
        assert_eq!(ats, vec!["$[0].N", "$[1].Status.State"]);
        let ignoring = Rule {
            ignore: vec!["$[].Status".into(), "$[].N".into()],
            ..Default::default()
        };
        assert!(compare(&e, &a, &ignoring, &enums).is_empty());
    }

    #[test]
    fn headers_compare_values_but_server_by_presence() {
        let mut e = ex(200, json!({}));
        e.response
            .headers
            .insert("Server".into(), json!("Docker/20.10"));
        let mut a = actual(200, json!({}));
        a.headers.insert("Server".into(), json!("shoal/0.1"));
        a.headers.insert("Api-Version".into(), json!("1.45"));
        a.headers.insert("Swarm".into(), json!("active/manager"));
        let diffs = compare(&e, &a, &Rule::default(), &EnumSets::default());
        let ats: Vec<&str> = diffs.iter().map(|d| d.at.as_str()).collect();
        assert_eq!(ats, vec!["header.Api-Version", "header.Swarm"]);
    }

    #[test]
    fn path_patterns() {
        assert!(path_match("$", "$"));
        assert!(path_match("**.CreatedAt", "$[3].CreatedAt"));
        assert!(path_match("$.Spec.*", "$.Spec.Name"));
        assert!(path_match("$[].Status", "$[12].Status"));
        assert!(!path_match("$.Spec", "$.Spec.Name"));
        assert!(glob("GET /services*", "GET /services?status=true"));
        assert!(!glob("GET /services*", "POST /services/create"));
        assert!(glob("*:*:header.Server", "04-services:3:header.Server"));
    }
}
