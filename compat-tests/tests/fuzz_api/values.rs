//! Valid values for a shape: what a careful client would send.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Map;
use serde_json::Value;

use super::shape::Kind;
use super::shape::Shape;

/// Below this depth optional members are added half the time; deeper, never,
/// so a valid body stays a few kilobytes.
const OPTIONAL_DEPTH: usize = 5;

/// A valid value for `shape`.
pub fn valid(rng: &mut ChaCha8Rng, shape: &Shape) -> Value {
    valid_at(rng, shape, 0)
}

fn valid_at(rng: &mut ChaCha8Rng, shape: &Shape, depth: usize) -> Value {
    match &shape.kind {
        Kind::Object {
            props,
            map_of,
            one_of,
        } => {
            let mut out = Map::new();
            // Of members that exclude each other, the first most often.
            let chosen = match one_of.as_slice() {
                [] => None,
                [first, ..] if rng.gen_bool(0.7) => Some(first.clone()),
                all => all.choose(rng).cloned(),
            };
            for (name, s, required) in props {
                let take = if one_of.contains(name) {
                    chosen.as_ref() == Some(name)
                } else {
                    *required || (depth < OPTIONAL_DEPTH && rng.gen_bool(s.weight()))
                };
                if take {
                    out.insert(name.clone(), valid_at(rng, s, depth + 1));
                }
            }
            if let Some(v) = map_of {
                for _ in 0..rng.gen_range(0..=3) {
                    out.insert(word(rng, 1, 10), valid_at(rng, v, depth + 1));
                }
            }
            Value::Object(out)
        }
        Kind::Array { items, max } => {
            let n = if depth < OPTIONAL_DEPTH {
                rng.gen_range(0..=*max.min(&3))
            } else {
                0
            };
            Value::Array((0..n).map(|_| valid_at(rng, items, depth + 1)).collect())
        }
        Kind::Str {
            choices,
            format,
            example,
        } => Value::String(string(rng, choices, format, example.as_deref())),
        Kind::Int {
            min,
            max,
            cap,
            example,
        } => {
            if let (Some(e), true) = (example, rng.gen_bool(0.5)) {
                return Value::from(*e);
            }
            let lo = min.unwrap_or(0);
            let hi = cap.or(*max).unwrap_or(lo + 100).max(lo);
            Value::from(rng.gen_range(lo..=hi))
        }
        Kind::Num { min, max } => {
            let lo = min.unwrap_or(0.0);
            let hi = max.unwrap_or(lo + 100.0);
            Value::from(rng.gen_range(lo..=hi))
        }
        Kind::Bool { fixed } => Value::Bool(fixed.unwrap_or_else(|| rng.gen_bool(0.5))),
    }
}

/// A string of the given kind (see the YAML's header for the formats).
pub fn string(
    rng: &mut ChaCha8Rng,
    choices: &[String],
    format: &str,
    example: Option<&str>,
) -> String {
    if let Some(c) = choices.choose(rng) {
        return c.clone();
    }
    if let (Some(e), true) = (example, rng.gen_bool(0.5)) {
        return e.to_string();
    }
    match format {
        // Names start with a letter so they never look like an ID prefix of
        // another object; the suffix keeps most of them unique.
        "name" => format!("fz{}", word(rng, 3, 10)),
        "image" => [
            "busybox:latest",
            "busybox",
            "localhost:5000/fuzz/app:1",
            "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ]
        .choose(rng)
        .map(|s| s.to_string())
        .unwrap_or_default(),
        "cidr" => format!(
            "10.{}.{}.0/24",
            rng.gen_range(128..250),
            rng.gen_range(0..255)
        ),
        "ip" => format!("127.0.{}.{}", rng.gen_range(0..255), rng.gen_range(1..255)),
        "ip-port" => format!("127.0.0.1:{}", rng.gen_range(20000..30000)),
        // Loopback only: a swarm may call an external CA's URL.
        "uri" => format!("https://127.0.0.1:{}/sign", rng.gen_range(20000..30000)),
        "base64" => {
            use base64::Engine;
            let n = rng.gen_range(1..64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
        "join-token" => format!("SWMTKN-1-{}-{}", word(rng, 50, 50), word(rng, 25, 25)),
        "unlock-key" => format!("SWMKEY-1-{}", word(rng, 43, 43)),
        _ => word(rng, 0, 12),
    }
}

/// Lower-case letters and digits, `min..=max` of them.
pub fn word(rng: &mut ChaCha8Rng, min: usize, max: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let n = rng.gen_range(min..=max);
    (0..n)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}
