//! Properties of the API edge's request decoding (`engine_api::body::decode`,
//! Go's `encoding/json` rules), over every JSON body the stock CLI sent a
//! real dockerd in the recorded scenarios (`api-fixtures/scenarios`):
//!
//! - keys re-cased at random decode to the same value (Go matches struct
//!   fields case-insensitively; map keys such as labels are data and kept);
//! - unknown members added anywhere change nothing;
//! - any mutation of the bytes (truncated, bytes flipped, or nested deeply)
//!   is answered with a value or a 400, never a panic.

use std::path::Path;

use engine_api::body::decode;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use swarm::model::api;

/// A recorded request body and the route it went to.
#[derive(Debug, Clone)]
struct Recorded {
    route: &'static str,
    body: Value,
}

/// The routes with JSON bodies in the recordings, by the type their body
/// decodes into.
fn route_of(method: &str, path: &str) -> Option<&'static str> {
    if method != "POST" {
        return None;
    }
    let path = path.split('?').next()?;
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => rest.split_once('/').map_or(path, |(_, p)| p),
        None => path.trim_start_matches('/'),
    };
    let parts: Vec<&str> = path.split('/').collect();
    Some(match parts.as_slice() {
        ["services", "create"] | ["services", _, "update"] => "service",
        ["swarm", "init"] => "swarm-init",
        ["swarm", "update"] => "swarm-spec",
        ["secrets", "create"] | ["secrets", _, "update"] => "secret",
        ["configs", "create"] | ["configs", _, "update"] => "config",
        ["networks", "create"] => "network",
        ["nodes", _, "update"] => "node",
        _ => return None,
    })
}

fn corpus() -> Vec<Recorded> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api-fixtures/scenarios");
    let mut out = Vec::new();
    for scenario in std::fs::read_dir(&dir).expect("scenarios") {
        let file = scenario.expect("entry").path().join("traffic.jsonl");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let ex: Value = serde_json::from_str(line).expect("recorded exchange");
            let req = &ex["request"];
            // Large bodies are recorded as a placeholder the replay
            // expands; the small ones are enough here.
            if req["body_kind"] != "json"
                || !req["body"].is_object()
                || line.contains("$shoal_repeat")
            {
                continue;
            }
            let method = req["method"].as_str().unwrap_or("");
            let path = req["path"].as_str().unwrap_or("");
            if let Some(route) = route_of(method, path) {
                out.push(Recorded {
                    route,
                    body: req["body"].clone(),
                });
            }
        }
    }
    assert!(out.len() >= 50, "the recordings hold {} bodies", out.len());
    let decoding = out
        .iter()
        .filter(|r| decoded(r.route, &serde_json::to_vec(&r.body).unwrap()).is_ok())
        .count();
    // A few are the error scenarios' deliberately bad bodies.
    assert!(
        decoding * 10 >= out.len() * 9,
        "{decoding} of {} decode",
        out.len()
    );
    out
}

/// Decodes `bytes` as `T` and renders the result as JSON, or the 400's text.
fn as_t<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<Value, String> {
    decode::<T>(bytes)
        .map(|v| serde_json::to_value(v).expect("serializable"))
        .map_err(|e| format!("{e:?}"))
}

/// Decodes into the type of `route`.
fn decoded(route: &str, bytes: &[u8]) -> Result<Value, String> {
    match route {
        "service" => as_t::<api::ServiceSpec>(bytes),
        "swarm-init" => as_t::<api::SwarmInitRequest>(bytes),
        "swarm-spec" => as_t::<api::SwarmSpec>(bytes),
        "secret" => as_t::<api::SecretSpec>(bytes),
        "config" => as_t::<api::ConfigSpec>(bytes),
        "network" => as_t::<api::NetworkCreateRequest>(bytes),
        "node" => as_t::<api::NodeSpec>(bytes),
        other => panic!("no type for {other}"),
    }
}

/// Members whose keys are data (labels, driver options...), not fields.
const MAPS: [&str; 6] = [
    "Labels",
    "Options",
    "DriverOpts",
    "Sysctls",
    "Annotations",
    "Headers",
];

/// Re-cases field keys (ASCII letters only) with the bits of `seed`,
/// leaving the keys of data maps alone.
fn recase(v: &Value, seed: &mut u64) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, inner)| {
                    let inner = if MAPS.contains(&k.as_str()) {
                        inner.clone()
                    } else {
                        recase(inner, seed)
                    };
                    let key: String = k
                        .chars()
                        .map(|c| {
                            *seed = seed.rotate_left(1) ^ 0x9e37_79b9_7f4a_7c15;
                            if *seed & 1 == 1 {
                                c.to_ascii_lowercase()
                            } else {
                                c.to_ascii_uppercase()
                            }
                        })
                        .collect();
                    (key, inner)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| recase(x, seed)).collect()),
        other => other.clone(),
    }
}

/// Adds a member no type has to every object that is not a data map.
fn with_unknown(v: &Value, name: &str) -> Value {
    match v {
        Value::Object(m) => {
            let mut out: serde_json::Map<String, Value> = m
                .iter()
                .map(|(k, inner)| {
                    let inner = if MAPS.contains(&k.as_str()) {
                        inner.clone()
                    } else {
                        with_unknown(inner, name)
                    };
                    (k.clone(), inner)
                })
                .collect();
            out.insert(
                name.to_string(),
                serde_json::json!({"nested": [1, "x", null]}),
            );
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| with_unknown(x, name)).collect()),
        other => other.clone(),
    }
}

fn any_recorded() -> impl Strategy<Value = Recorded> {
    let all = corpus();
    (0..all.len()).prop_map(move |i| all[i].clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn keys_in_any_case_decode_the_same(r in any_recorded(), seed in any::<u64>()) {
        let plain = serde_json::to_vec(&r.body).unwrap();
        let mut s = seed;
        let recased = serde_json::to_vec(&recase(&r.body, &mut s)).unwrap();
        // The recordings hold refused bodies too (bad enum values): those
        // stay refused, the rest decode to the same value.
        match decoded(r.route, &plain) {
            Ok(want) => prop_assert_eq!(decoded(r.route, &recased), Ok(want)),
            Err(_) => prop_assert!(decoded(r.route, &recased).is_err()),
        }
    }

    #[test]
    fn unknown_members_change_nothing(r in any_recorded(), name in "[A-Za-z][A-Za-z0-9_]{0,12}") {
        // The prefix keeps a made-up name from being a field of the type.
        let added = with_unknown(&r.body, &format!("Zz{name}"));
        let plain = serde_json::to_vec(&r.body).unwrap();
        let bytes = serde_json::to_vec(&added).unwrap();
        prop_assert_eq!(decoded(r.route, &bytes), decoded(r.route, &plain));
    }

    #[test]
    fn mangled_bytes_get_a_value_or_a_400(
        r in any_recorded(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        depth in 0usize..400,
    ) {
        let mut bytes = serde_json::to_vec(&r.body).unwrap();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        // Deep nesting around the body: past serde_json's limit of 128 it
        // must be refused, not overflow the stack.
        let mut nested = "[".repeat(depth).into_bytes();
        nested.extend_from_slice(&bytes);
        nested.extend(std::iter::repeat_n(b']', depth));
        for input in [&bytes, &nested] {
            // Returning at all (a value or a 400) is the property: a panic
            // fails it.
            let _ = decoded(r.route, input);
        }
    }
}

#[test]
fn arbitrary_bytes_and_huge_nesting_are_refused_cleanly() {
    let deep = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    for route in ["service", "swarm-init", "secret", "network", "node"] {
        assert!(decoded(route, deep.as_bytes()).is_err());
        assert!(decoded(route, b"\xff\xfe{\"Name\":\"\xc3\x28\"}").is_err());
        assert!(decoded(route, b"").is_err());
    }
}
