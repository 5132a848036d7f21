//! Captures: rebinding what an earlier response created.
//!
//! A recording is full of values the daemon made up: object IDs, node IDs,
//! join tokens, unlock keys, `Version.Index` numbers. When a scenario is
//! replayed, the daemon makes up different ones, and later requests must use
//! those. [`Bindings`] learns `recorded -> actual` pairs by walking each
//! recorded response body beside the actual one, and rewrites later request
//! paths, queries and bodies with them.
//!
//! Versions are handled apart: `?version=N` is replaced by the actual
//! version of the object only when `N` was the latest recorded version of that
//! object (a deliberately stale version stays stale).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// What an ID-like value looks like: swarm IDs (25 base36), local IDs
/// (64 hex), join tokens and unlock keys.
fn id_like() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([a-z0-9]{25}|[0-9a-f]{64}|SWMTKN-1-[A-Za-z0-9-]+|SWMKEY-1-[A-Za-z0-9+/=]+)$")
            .expect("static regex")
    })
}

/// A swarm ID anywhere in a text.
fn id_token() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\b[a-z0-9]{25}\b").expect("static regex"))
}

/// Recorded-to-actual value pairs and object versions on both sides.
#[derive(Debug, Default, Clone)]
pub struct Bindings {
    values: HashMap<String, String>,
    recorded_versions: HashMap<String, u64>,
    actual_versions: HashMap<String, u64>,
}

impl Bindings {
    /// Number of learned value pairs.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing was learned yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The actual value bound to a recorded one, if any.
    pub fn get(&self, recorded: &str) -> Option<&str> {
        self.values.get(recorded).map(String::as_str)
    }

    /// Learns from one exchange: `path` is the request path (recorded form),
    /// `recorded` and `actual` the two response bodies (JSON). Call after
    /// every successful response, in order.
    pub fn learn(&mut self, path: &str, recorded: &Value, actual: &Value) {
        self.walk(recorded, actual, "");
        let is_swarm = path_without_version(path).starts_with("/swarm");
        collect_versions(recorded, is_swarm, &mut self.recorded_versions);
        collect_versions(actual, is_swarm, &mut self.actual_versions);
    }

    /// Binds a pair; the first binding of a recorded value wins (objects
    /// are first seen in the response that created them, which is never
    /// ambiguous, while later list pairings may be).
    fn bind(&mut self, recorded: &str, actual: &str) {
        if recorded != actual && !recorded.is_empty() && !actual.is_empty() {
            self.values
                .entry(recorded.to_string())
                .or_insert_with(|| actual.to_string());
        }
    }

    /// Learns from two multiplexed log streams: the ID-like tokens of
    /// frames paired by their normalized text (`service logs` details carry
    /// node, service and task IDs).
    pub fn learn_frames(&mut self, recorded: &Value, actual: &Value) {
        let sorted = |v: &Value| -> Vec<String> {
            let mut out: Vec<String> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| f["data"].as_str().unwrap_or("").to_string())
                .collect();
            out.sort_by_key(|d| super::matcher::normalize(d));
            out
        };
        for (r, a) in sorted(recorded).iter().zip(sorted(actual).iter()) {
            let tokens = |s: &str| -> Vec<String> {
                id_token()
                    .find_iter(s)
                    .map(|m| m.as_str().to_string())
                    .collect()
            };
            for (rt, at) in tokens(r).iter().zip(tokens(a).iter()) {
                self.bind(rt, at);
            }
        }
    }

    fn walk(&mut self, rec: &Value, act: &Value, key: &str) {
        match (rec, act) {
            (Value::String(r), Value::String(a)) => {
                let keyed = key.ends_with("ID")
                    || key.ends_with("Id")
                    || key == "Worker"
                    || key == "Manager";
                if id_like().is_match(r) || (keyed && !r.contains(' ')) {
                    self.bind(r, a);
                }
            }
            (Value::Object(r), Value::Object(a)) => {
                for (k, rv) in r {
                    if let Some(av) = a.get(k) {
                        self.walk(rv, av, k);
                    }
                }
            }
            (Value::Array(r), Value::Array(a)) => {
                for (rv, av) in pair_elements(r, a) {
                    self.walk(rv, av, key);
                }
            }
            _ => {}
        }
    }

    /// Rewrites a recorded request path (with query) for the replay.
    pub fn rewrite_path(&self, path: &str) -> String {
        let mut out = self.replace_all(path);
        if let Some(v) = self.rewrite_version(path) {
            out = replace_query_value(&out, "version", &v.to_string());
        }
        out
    }

    /// Rewrites every string (and object key) of a recorded JSON body.
    pub fn rewrite_json(&self, body: &Value) -> Value {
        match body {
            Value::String(s) => Value::String(self.replace_all(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.rewrite_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.replace_all(k), self.rewrite_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn replace_all(&self, s: &str) -> String {
        let mut keys: Vec<&String> = self
            .values
            .keys()
            .filter(|k| s.contains(k.as_str()))
            .collect();
        if keys.is_empty() {
            return s.to_string();
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        let mut out = s.to_string();
        for k in keys {
            out = out.replace(k.as_str(), &self.values[k]);
        }
        out
    }

    /// The actual version to send instead of the recorded `version=N`, when
    /// N was the latest recorded version of the object the path names.
    fn rewrite_version(&self, recorded_path: &str) -> Option<u64> {
        let recorded_n: u64 = query_value(recorded_path, "version")?.parse().ok()?;
        let object = object_key(recorded_path)?;
        let latest = *self.recorded_versions.get(&object)?;
        if latest != recorded_n {
            return None;
        }
        let actual_key = self.get(&object).map(str::to_string).unwrap_or(object);
        self.actual_versions.get(&actual_key).copied()
    }
}

/// Pairs array elements: by name when every element has one (lists come
/// back in any order), otherwise by index.
pub fn pair_elements<'a>(rec: &'a [Value], act: &'a [Value]) -> Vec<(&'a Value, &'a Value)> {
    let names_r: Option<Vec<String>> = rec.iter().map(element_name).collect();
    let names_a: Option<Vec<String>> = act.iter().map(element_name).collect();
    if let (Some(nr), Some(na)) = (names_r, names_a) {
        let unique = |v: &Vec<String>| {
            let mut s = v.clone();
            s.sort();
            s.dedup();
            s.len() == v.len()
        };
        if unique(&nr) && unique(&na) {
            let mut out = Vec::new();
            for (i, n) in nr.iter().enumerate() {
                if let Some(j) = na.iter().position(|m| m == n) {
                    out.push((&rec[i], &act[j]));
                }
            }
            return out;
        }
    }
    let (mut r, mut a): (Vec<&Value>, Vec<&Value>) = (rec.iter().collect(), act.iter().collect());
    if rec
        .iter()
        .chain(act.iter())
        .all(|v| v.get("CreatedAt").is_some())
    {
        // Tasks: no names, and lists come in map order. Slot, then what the
        // task runs, then creation order pairs them across runs.
        r.sort_by_key(|v| task_order(v));
        a.sort_by_key(|v| task_order(v));
    }
    r.into_iter().zip(a).collect()
}

fn task_order(v: &Value) -> (i64, String, String) {
    let slot = v.get("Slot").and_then(Value::as_i64).unwrap_or(-1);
    let args = v
        .pointer("/Spec/ContainerSpec/Args")
        .map(Value::to_string)
        .unwrap_or_default();
    let created = v
        .get("CreatedAt")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (slot, args, created)
}

/// A stable name for a list element: `Spec.Name`, `Name`, or a string element itself.
pub fn element_name(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => m
            .get("Spec")
            .and_then(|s| s.get("Name"))
            .or_else(|| m.get("Name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// Records `Version.Index` of every object in `v` under its ID and its name
/// (and under `swarm` for the body of `GET /swarm`).
fn collect_versions(v: &Value, is_swarm: bool, out: &mut HashMap<String, u64>) {
    match v {
        Value::Object(m) => {
            let index = m
                .get("Version")
                .and_then(|x| x.get("Index"))
                .and_then(Value::as_u64);
            if let Some(index) = index {
                if is_swarm && m.contains_key("JoinTokens") {
                    out.insert("swarm".into(), index);
                }
                if let Some(id) = m.get("ID").and_then(Value::as_str) {
                    out.insert(id.to_string(), index);
                }
                if let Some(name) = element_name(v) {
                    out.insert(name, index);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| collect_versions(i, is_swarm, out)),
        _ => {}
    }
}

/// Strips a `/v1.NN` prefix.
pub fn path_without_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            if rest[..i].chars().all(|c| c.is_ascii_digit() || c == '.') {
                return &rest[i..];
            }
        }
    }
    path
}

/// The object an update path names: `swarm` for `/swarm/update`, else the
/// ID or name in `/kind/<x>/update`.
fn object_key(path: &str) -> Option<String> {
    let p = path_without_version(path);
    let p = p.split('?').next().unwrap_or(p);
    let parts: Vec<&str> = p.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["swarm", "update"] => Some("swarm".into()),
        [_, x, "update"] => Some((*x).to_string()),
        _ => None,
    }
}

/// The raw value of `key` in the query string of `path`.
pub fn query_value<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    let q = path.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

fn replace_query_value(path: &str, key: &str, value: &str) -> String {
    let Some((base, q)) = path.split_once('?') else {
        return path.to_string();
    };
    let parts: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == key => format!("{k}={value}"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn binds_ids_and_rewrites_paths_queries_and_bodies() {
        let mut b = Bindings::default();
        let rid = "aaaaaaaaaaaaaaaaaaaaaaaaa";
        let aid = "bbbbbbbbbbbbbbbbbbbbbbbbb";
        b.learn(
            "/v1.41/services/create",
            &json!({"ID": rid}),
            &json!({"ID": aid}),
        );
        assert_eq!(b.get(rid), Some(aid));
        let path = format!("/v1.41/tasks?filters=%7B%22service%22%3A%7B%22{rid}%22%3Atrue%7D%7D");
        assert!(b.rewrite_path(&path).contains(aid));
        let body = json!({"TaskTemplate": {"Networks": [{"Target": rid}]}, "x": {rid: true}});
        let out = b.rewrite_json(&body);
        assert_eq!(out["TaskTemplate"]["Networks"][0]["Target"], json!(aid));
        assert_eq!(out["x"][aid], json!(true));
    }

    #[test]
    fn json_string_bodies_and_tokens_bind() {
        let mut b = Bindings::default();
        b.learn(
            "/v1.41/swarm/init",
            &json!("n1n1n1n1n1n1n1n1n1n1n1n1n"),
            &json!("n2n2n2n2n2n2n2n2n2n2n2n2n"),
        );
        assert_eq!(
            b.get("n1n1n1n1n1n1n1n1n1n1n1n1n"),
            Some("n2n2n2n2n2n2n2n2n2n2n2n2n")
        );
        b.learn(
            "/v1.41/swarm",
            &json!({"JoinTokens": {"Worker": "SWMTKN-1-abc-def"}}),
            &json!({"JoinTokens": {"Worker": "SWMTKN-1-xyz-uvw"}}),
        );
        assert_eq!(b.get("SWMTKN-1-abc-def"), Some("SWMTKN-1-xyz-uvw"));
    }

    #[test]
    fn lists_pair_by_name() {
        let mut b = Bindings::default();
        let rec = json!([{"ID": "r1r1r1r1r1r1r1r1r1r1r1r1r", "Spec": {"Name": "a"}}, {"ID": "r2r2r2r2r2r2r2r2r2r2r2r2r", "Spec": {"Name": "b"}}]);
        let act = json!([{"ID": "a2a2a2a2a2a2a2a2a2a2a2a2a", "Spec": {"Name": "b"}}, {"ID": "a1a1a1a1a1a1a1a1a1a1a1a1a", "Spec": {"Name": "a"}}]);
        b.learn("/v1.41/services", &rec, &act);
        assert_eq!(
            b.get("r1r1r1r1r1r1r1r1r1r1r1r1r"),
            Some("a1a1a1a1a1a1a1a1a1a1a1a1a")
        );
        assert_eq!(
            b.get("r2r2r2r2r2r2r2r2r2r2r2r2r"),
            Some("a2a2a2a2a2a2a2a2a2a2a2a2a")
        );
    }

    #[test]
    fn versions_follow_latest_get_but_stale_stays_stale() {
        let mut b = Bindings::default();
        let rid = "r1r1r1r1r1r1r1r1r1r1r1r1r";
        let aid = "a1a1a1a1a1a1a1a1a1a1a1a1a";
        b.learn(
            "/v1.41/services/web",
            &json!({"ID": rid, "Version": {"Index": 20}, "Spec": {"Name": "web"}}),
            &json!({"ID": aid, "Version": {"Index": 7}, "Spec": {"Name": "web"}}),
        );
        let p = b.rewrite_path(&format!(
            "/v1.41/services/{rid}/update?registryAuthFrom=spec&version=20"
        ));
        assert_eq!(
            p,
            format!("/v1.41/services/{aid}/update?registryAuthFrom=spec&version=7")
        );
        let by_name = b.rewrite_path("/v1.41/services/web/update?version=20");
        assert_eq!(by_name, "/v1.41/services/web/update?version=7");
        let stale = b.rewrite_path(&format!("/v1.41/services/{rid}/update?version=1"));
        assert_eq!(stale, format!("/v1.41/services/{aid}/update?version=1"));
        b.learn(
            "/v1.41/swarm",
            &json!({"ID": "c", "JoinTokens": {}, "Version": {"Index": 11}}),
            &json!({"ID": "d", "JoinTokens": {}, "Version": {"Index": 3}}),
        );
        let sw = b.rewrite_path("/v1.41/swarm/update?rotateWorkerToken=false&version=11");
        assert_eq!(sw, "/v1.41/swarm/update?rotateWorkerToken=false&version=3");
    }

    #[test]
    fn strips_version_prefix() {
        assert_eq!(path_without_version("/v1.41/services"), "/services");
        assert_eq!(path_without_version("/_ping"), "/_ping");
        assert_eq!(path_without_version("/volumes"), "/volumes");
    }
}
