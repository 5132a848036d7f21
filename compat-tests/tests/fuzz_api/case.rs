//! One request made from an operation: its path ID, query string, headers
//! and body, each valid or mutated, and how to send it again by hand.

use std::fmt::Write as _;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::mutate;
use super::shape::Kind;
use super::shape::Operation;
use super::shape::Param;
use super::shape::Place;
use super::values;
use super::values::word;

/// An object the run can name in a path.
#[derive(Debug, Clone)]
pub struct Obj {
    /// Full ID.
    pub id: String,
    /// Name (empty for tasks without one).
    pub name: String,
}

/// Live objects of one kind (`services`, `nodes`...), read before a batch.
pub type Live<'a> = &'a dyn Fn(&str) -> Vec<Obj>;

/// An object as inspected just before an update (`kind`, ID; the swarm for
/// kind `swarm`), so the request carries its current version and gets past
/// the version check to the spec.
pub type Current<'a> = &'a mut dyn FnMut(&str, &str) -> Option<Value>;

/// A request to send.
#[derive(Debug, Clone)]
pub struct Case {
    /// Number in the run, for the report.
    pub n: usize,
    /// The operation's `operationId`.
    pub op: String,
    /// HTTP method.
    pub method: String,
    /// Path and query as sent, version prefix included.
    pub uri: String,
    /// Extra headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// What was done to the valid request.
    pub what: Vec<String>,
}

impl Case {
    /// A shell command that sends this request again to `socket`. A body
    /// longer than a screen goes to a file in `dir`, named after the case.
    pub fn curl(&self, socket: &str, dir: &Path) -> String {
        let mut s = String::new();
        let mut data = "@-".to_string();
        if let Some(b) = &self.body {
            if b.len() > 2_000 {
                let file = dir.join(format!("fuzz-case-{}.body", self.n));
                match std::fs::write(&file, b) {
                    Ok(()) => data = format!("@{}", file.display()),
                    Err(e) => data = format!("@- # (could not write {}: {e})", file.display()),
                }
            } else {
                let _ = write!(s, "printf '%b' '{}' | ", shell_bytes(b));
            }
        }
        let _ = write!(s, "curl -sS -g --unix-socket {socket} -X {}", self.method);
        for (k, v) in &self.headers {
            let _ = write!(s, " -H '{k}: {}'", String::from_utf8_lossy(v));
        }
        if self.body.is_some() {
            let _ = write!(
                s,
                " -H 'Content-Type: application/json' --data-binary {data}"
            );
        }
        let _ = write!(s, " 'http://localhost{}'", self.uri);
        s
    }
}

/// Bytes as `printf '%b'` reads them inside single quotes (octal escapes
/// in the `\0NNN` form every `printf` takes).
fn shell_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            b'\'' | b'\\' => format!("\\0{c:03o}"),
            0x20..=0x7e => (c as char).to_string(),
            _ => format!("\\0{c:03o}"),
        })
        .collect()
}

/// Percent-encodes a query or path value, every byte outside the safe set.
pub fn enc(v: &[u8]) -> String {
    v.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The resource of an operation's path: `/services/{id}` is `services`.
pub fn kind(op: &Operation) -> &str {
    op.path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
}

/// The prefix a request carries: mostly the lowest API both engines speak.
fn prefix(rng: &mut ChaCha8Rng) -> &'static str {
    let all = [
        "/v1.41", "/v1.41", "/v1.41", "/v1.41", "", "/v1.24", "/v1.30", "/v1.44", "/v1.47",
    ];
    all.choose(rng).copied().unwrap_or("/v1.41")
}

/// Makes case `n` from `op`.
pub fn make(
    rng: &mut ChaCha8Rng,
    n: usize,
    op: &Operation,
    live: Live<'_>,
    current: Current<'_>,
) -> Case {
    let mut what = Vec::new();
    let mut path = op.path.clone();
    let mut target: Option<Obj> = None;
    if path.contains("{id}") {
        let (segment, label, obj) = path_id(rng, &live(kind(op)));
        what.push(label);
        target = obj;
        path = path.replace("{id}", &segment);
    }
    let updates = op.params.iter().any(|p| p.name == "version");
    let now = match (&target, kind(op)) {
        (_, "swarm") if updates => current("swarm", ""),
        (Some(o), k) if updates => current(k, &o.id),
        _ => None,
    };
    let version = now.as_ref().and_then(|v| v["Version"]["Index"].as_u64());
    let mut query: Vec<(String, String)> = Vec::new();
    let mut headers = Vec::new();
    for p in op
        .params
        .iter()
        .filter(|p| p.place != Place::Path && !p.skip)
    {
        let Some((value, label)) = param_value(rng, p, version) else {
            continue;
        };
        if let Some(l) = label {
            what.push(l);
        }
        match p.place {
            Place::Header => headers.push((p.name.clone(), value.into_bytes())),
            _ => query.push((p.name.clone(), value)),
        }
    }
    // Query-string oddities that no parameter's value shows.
    match rng.gen_range(0..12) {
        0 if !query.is_empty() => {
            let (k, _) = query.choose(rng).cloned().unwrap_or_default();
            let v = enc(word(rng, 0, 4).as_bytes());
            what.push(format!("{k} twice"));
            query.push((k, v));
        }
        1 => {
            what.push("unknown query parameter".into());
            query.push(("nope".into(), "1".into()));
        }
        2 => {
            what.push("bad bytes in the query string".into());
            query.push(("%FF%FE".into(), "%C0%80".into()));
        }
        _ => {}
    }
    let body = op.body.as_ref().map(|shape| {
        let mut valid = values::valid(rng, shape);
        if let Some(now) = &now {
            keep_identity(rng, kind(op), now, &mut valid);
        }
        let b = mutate::body(rng, &valid);
        what.push(format!("body: {}", b.what));
        b.bytes
    });
    let mut uri = format!("{}{}", prefix(rng), path);
    for (i, (k, v)) in query.iter().enumerate() {
        uri.push(if i == 0 { '?' } else { '&' });
        let _ = write!(uri, "{k}={v}");
    }
    Case {
        n,
        op: op.id.clone(),
        method: op.method.clone(),
        uri,
        headers,
        body,
        what,
    }
}

/// Makes an update's valid body one the route can take: what an update may
/// not change (a name, a service's mode, a secret's or config's data) is
/// taken from the object as it is.
fn keep_identity(rng: &mut ChaCha8Rng, kind: &str, now: &Value, body: &mut Value) {
    let spec = &now["Spec"];
    match kind {
        "services" => {
            body["Name"] = spec["Name"].clone();
            body["Mode"] = spec["Mode"].clone();
        }
        "secrets" | "configs" => {
            body["Name"] = spec["Name"].clone();
            if rng.gen_bool(0.8) {
                if let Some(o) = body.as_object_mut() {
                    o.remove("Data");
                    o.remove("Driver");
                    o.remove("Templating");
                }
            }
        }
        _ => {}
    }
}

/// A path segment for `{id}`: a live object by ID, name or prefix, or
/// something no object answers to.
fn path_id(rng: &mut ChaCha8Rng, live: &[Obj]) -> (String, String, Option<Obj>) {
    let obj = live.choose(rng).cloned();
    let roll = rng.gen_range(0..20);
    match (roll, obj) {
        (0..=8, Some(o)) => (o.id.clone(), "id: live".into(), Some(o)),
        (9..=11, Some(o)) if !o.name.is_empty() => {
            (enc(o.name.as_bytes()), "id: a name".into(), Some(o))
        }
        (12..=13, Some(o)) => {
            let cut = rng.gen_range(1..=o.id.len().min(8));
            (
                o.id[..cut].to_string(),
                format!("id: prefix of {cut}"),
                Some(o),
            )
        }
        (14, _) => (word(rng, 25, 25), "id: unknown".into(), None),
        _ => {
            let odd: &[&str] = &[
                "%FF%FE",
                "%00",
                "..",
                "%2E%2E",
                "%2F",
                "%20",
                "%C3%A9t%C3%A9",
                "%25",
                "*",
                "-",
                "a%0Ab",
                "%7B%7D",
                "null",
            ];
            let pick = if rng.gen_bool(0.1) {
                "y".repeat(rng.gen_range(300..5_000))
            } else {
                odd.choose(rng).copied().unwrap_or("-").to_string()
            };
            let label = format!("id: odd {}", &pick[..pick.len().min(16)]);
            (pick, label, None)
        }
    }
}

/// A value for `p` (already encoded for the query string), with a label
/// when it is not what a careful client sends; `None` leaves it out.
fn param_value(
    rng: &mut ChaCha8Rng,
    p: &Param,
    current: Option<u64>,
) -> Option<(String, Option<String>)> {
    let bad = rng.gen_bool(0.25);
    if !p.required && !bad && !rng.gen_bool(p.weight) {
        return None;
    }
    if p.name == "filters" {
        return Some(filters(rng, p, bad));
    }
    let label = |v: &str| Some(format!("{}={}", p.name, &v[..v.len().min(40)]));
    match &p.shape.kind {
        Kind::Bool { .. } if bad => {
            let v: &[u8] = [
                &b"yes"[..],
                b"2",
                b"",
                b"TRUE ",
                b"\xff",
                b"tru",
                b"on",
                b"-1",
            ]
            .choose(rng)
            .copied()
            .unwrap_or(b"");
            let v = enc(v);
            Some((v.clone(), label(&v)))
        }
        Kind::Bool { .. } => Some(([true, false][rng.gen_range(0..2)].to_string(), None)),
        Kind::Int { .. } if bad || current.is_none() => {
            let v = [
                "x",
                "-1",
                "18446744073709551616",
                "1.0",
                "+1",
                "",
                " 1",
                "0x10",
                "0",
            ]
            .choose(rng)
            .copied()
            .unwrap_or("");
            let v = enc(v.as_bytes());
            Some((v.clone(), label(&v)))
        }
        Kind::Int { .. } => Some((current.unwrap_or(0).to_string(), None)),
        Kind::Str {
            choices,
            format,
            example,
        } => {
            let v = if bad {
                let long = "x".repeat(1_000);
                let odd = enc([&b"\0"[..], b"\xff", long.as_bytes(), b"-1", b",,"]
                    .choose(rng)
                    .copied()
                    .unwrap_or(b""));
                return Some((odd.clone(), label(&odd)));
            } else {
                values::string(rng, choices, format, example.as_deref())
            };
            Some((enc(v.as_bytes()), None))
        }
        other => panic!("parameter {} has an unexpected shape {other:?}", p.name),
    }
}

/// A `filters` value: one of the route's names with values, in either form,
/// or something the route must refuse.
fn filters(rng: &mut ChaCha8Rng, p: &Param, bad: bool) -> (String, Option<String>) {
    if bad {
        let odd: &[&str] = &[
            "{",
            "[]",
            "\"x\"",
            "null",
            "{\"name\":\"x\"}",
            "{\"nope\":[\"a\"]}",
            "{\"name\":{\"a\":\"yes\"}}",
            "{\"name\":[1,null,{}]}",
            "{\"label\":[\"=\",\"a=\",\"=b\",\"\"]}",
            "{\"name\":[\"\\u0000\"]}",
            "{\"id\":[\"\"]}",
            "{\"desired-state\":[\"nonsense\"]}",
            "{\"mode\":[\"global-job\",\"x\"]}",
            "{\"role\":[\"king\"]}",
            "{\"membership\":[\"x\"]}",
            "{\"_up-to-date\":[\"maybe\"]}",
            "{\"dangling\":[\"maybe\"]}",
            "{\"service\":[\"nosuchservice\"]}",
            "{\"node\":[\"nosuchnode\"]}",
        ];
        let v = if rng.gen_bool(0.1) {
            format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000))
        } else {
            odd.choose(rng).copied().unwrap_or("{").to_string()
        };
        let label = Some(format!("filters={}", &v[..v.len().min(40)]));
        return (enc(v.as_bytes()), label);
    }
    let name = p.filter_names.choose(rng).cloned().unwrap_or_default();
    let value = match name.as_str() {
        "label" | "node.label" => format!("{}={}", word(rng, 1, 4), word(rng, 0, 4)),
        "mode" => ["replicated", "global", "replicated-job", "global-job"]
            .choose(rng)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        "role" => "manager".into(),
        "membership" => "accepted".into(),
        "desired-state" => ["running", "shutdown", "accepted"]
            .choose(rng)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        "dangling" | "_up-to-date" => "true".into(),
        "scope" => "swarm".into(),
        "driver" => "overlay".into(),
        "type" => "custom".into(),
        _ => word(rng, 0, 3),
    };
    let json = if rng.gen_bool(0.5) {
        serde_json::json!({ name: [value] })
    } else {
        serde_json::json!({ name: { value: true } })
    };
    (enc(json.to_string().as_bytes()), None)
}
