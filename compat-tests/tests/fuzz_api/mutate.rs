//! Mutations of a valid body: what a careless or hostile client sends.
//!
//! A mutation works on the JSON value where it can; what no JSON value can
//! hold (numbers past 64 bits, invalid UTF-8, nesting thousands deep, two
//! members of one name) goes in as raw bytes that replace a placeholder
//! string after serialization.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use serde_json::Value;

use super::values::word;

/// A body ready to send, and what was done to it.
#[derive(Debug, Clone)]
pub struct Body {
    /// The bytes on the wire.
    pub bytes: Vec<u8>,
    /// The mutation, for the report (`valid` when none).
    pub what: String,
}

/// Raw fragments a mutation puts into the serialized body.
struct Raw(Vec<Vec<u8>>);

impl Raw {
    /// A placeholder string standing for `bytes`.
    fn hold(&mut self, bytes: impl Into<Vec<u8>>) -> Value {
        self.0.push(bytes.into());
        Value::String(format!("\u{1}RAW{}\u{1}", self.0.len() - 1))
    }

    /// `v` serialized with every placeholder replaced by its bytes.
    fn render(&self, v: &Value) -> Vec<u8> {
        let mut out = serde_json::to_vec(v).expect("serialize");
        for (i, raw) in self.0.iter().enumerate() {
            let needle = format!("\"\\u0001RAW{i}\\u0001\"").into_bytes();
            if let Some(at) = find(&out, &needle) {
                out.splice(at..at + needle.len(), raw.iter().copied());
            }
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One step into a JSON value.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn show(path: &[Step]) -> String {
    if path.is_empty() {
        return "the body".into();
    }
    path.iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index(i) => format!("[{i}]"),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                here.push(Step::Key(k.clone()));
                paths(x, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// A spot in `v`: the root or any member or item below it.
fn spot(rng: &mut ChaCha8Rng, v: &Value) -> Vec<Step> {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    all.choose(rng).cloned().unwrap_or_default()
}

/// Numbers Go's decoder refuses for some field or that sit at an edge.
const ODD_NUMBERS: &[&str] = &[
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775808",
    "9223372036854775807",
    "-9223372036854775809",
    "-9223372036854775808",
    "-1",
    "-0",
    "1.5",
    "1e400",
    "-1e400",
    "1e308",
    "0.0000001",
    "4294967296",
    "2147483648",
    "65536",
];

/// Strings that have broken parsers elsewhere.
fn odd_string(rng: &mut ChaCha8Rng, raw: &mut Raw) -> Value {
    let pick = rng.gen_range(0..14);
    match pick {
        0 => Value::String("x".repeat(rng.gen_range(4_096..200_000))),
        1 => Value::String(String::new()),
        2 => Value::String(" ".into()),
        3 => Value::String("\u{0}\u{1}\u{7f}\n\r\t".into()),
        4 => Value::String("\u{202e}\u{fffd}\u{1f600}é日本".into()),
        5 => Value::String("../../../../etc/passwd".into()),
        6 => Value::String("%s%n%x{{.}}${HOME}".into()),
        7 => Value::String("a=b=c,d==e!=f".into()),
        8 => Value::String("-".into()),
        9 => Value::String("\u{0}".repeat(100)),
        10 => Value::String("\\\"'`;|&$()".into()),
        11 => raw.hold(b"\"a\xff\xfeb\xc0\"".to_vec()),
        12 => raw.hold(b"\"\\ud800\\udfff\\u00\"".to_vec()),
        _ => Value::String(word(rng, 1, 64).to_uppercase()),
    }
}

/// A value of another JSON type than `v`.
fn other_type(rng: &mut ChaCha8Rng, v: &Value) -> Value {
    let candidates = [
        json!("text"),
        json!(7),
        json!(-3.25),
        json!(true),
        json!([1, "two", null]),
        json!({"K": "v"}),
        json!([]),
        json!({}),
    ];
    let differ: Vec<&Value> = candidates
        .iter()
        .filter(|c| std::mem::discriminant(*c) != std::mem::discriminant(v))
        .collect();
    differ
        .choose(rng)
        .map(|c| (*c).clone())
        .unwrap_or(Value::Null)
}

fn recase(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (f(k), recase(x, f))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|x| recase(x, f)).collect()),
        x => x.clone(),
    }
}

fn nesting(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let depth = [64, 1_000, 10_000, 100_000][rng.gen_range(0..4)];
    if rng.gen_bool(0.5) {
        let mut s = "[".repeat(depth);
        s.push_str(&"]".repeat(depth));
        s.into_bytes()
    } else {
        let mut s = "{\"A\":".repeat(depth);
        s.push('1');
        s.push_str(&"}".repeat(depth));
        s.into_bytes()
    }
}

/// The valid body `v` (a third of the time) or one mutation of it.
pub fn body(rng: &mut ChaCha8Rng, v: &Value) -> Body {
    let mut raw = Raw(Vec::new());
    let mut v = v.clone();
    let kind = rng.gen_range(0..16);
    let what = match kind {
        0..=4 => "valid".to_string(),
        5 => {
            let p = spot(rng, &v);
            let old = at_mut(&mut v, &p).clone();
            *at_mut(&mut v, &p) = other_type(rng, &old);
            format!("wrong type at {}", show(&p))
        }
        6 => {
            let p = spot(rng, &v);
            match p.split_last() {
                Some((Step::Key(k), parent)) => {
                    if let Some(m) = at_mut(&mut v, parent).as_object_mut() {
                        m.remove(k);
                    }
                }
                Some((Step::Index(i), parent)) => {
                    if let Some(a) = at_mut(&mut v, parent).as_array_mut() {
                        a.remove(*i);
                    }
                }
                None => v = json!({}),
            }
            format!("removed {}", show(&p))
        }
        7 => {
            let p = spot(rng, &v);
            let key = ["Unknown", "id", "ID", "Spec", "__proto__", "", "Name"]
                .choose(rng)
                .map(|k| k.to_string())
                .unwrap_or_default();
            let extra = other_type(rng, &Value::Null);
            match at_mut(&mut v, &p) {
                Value::Object(m) => {
                    m.insert(key.clone(), extra);
                }
                Value::Array(a) => a.push(extra),
                _ => {}
            }
            format!("extra member {key:?} at {}", show(&p))
        }
        8 => {
            let (name, f): (&str, &dyn Fn(&str) -> String) = match rng.gen_range(0..3) {
                0 => ("lower", &|k: &str| k.to_lowercase()),
                1 => ("upper", &|k: &str| k.to_uppercase()),
                _ => ("snake", &|k: &str| {
                    k.chars()
                        .enumerate()
                        .map(|(i, c)| {
                            if i % 2 == 0 {
                                c.to_ascii_lowercase()
                            } else {
                                c
                            }
                        })
                        .collect()
                }),
            };
            v = recase(&v, f);
            format!("keys in {name} case")
        }
        9 => {
            let p = spot(rng, &v);
            *at_mut(&mut v, &p) = Value::Null;
            format!("null at {}", show(&p))
        }
        10 => {
            let p = spot(rng, &v);
            let n = ODD_NUMBERS.choose(rng).copied().unwrap_or("-1");
            *at_mut(&mut v, &p) = raw.hold(n);
            format!("number {n} at {}", show(&p))
        }
        11 => {
            let p = spot(rng, &v);
            *at_mut(&mut v, &p) = odd_string(rng, &mut raw);
            format!("odd string at {}", show(&p))
        }
        12 => {
            let p = spot(rng, &v);
            *at_mut(&mut v, &p) = raw.hold(nesting(rng));
            format!("deep nesting at {}", show(&p))
        }
        13 => {
            // A member twice: Go's decoder keeps the last one.
            let mut text = serde_json::to_vec(&v).expect("serialize");
            if text.first() == Some(&b'{') {
                let dup = format!("\"Name\":\"{}\",", word(rng, 1, 8));
                text.splice(1..1, dup.bytes());
            }
            return Body {
                bytes: text,
                what: "a member twice".into(),
            };
        }
        14 => {
            let text = serde_json::to_vec(&v).expect("serialize");
            let cut = rng.gen_range(0..text.len().max(1));
            return Body {
                bytes: text[..cut].to_vec(),
                what: format!("cut at byte {cut}"),
            };
        }
        _ => {
            let whole: &[&[u8]] = &[
                b"",
                b"  \n",
                b"null",
                b"[]",
                b"1",
                b"\"s\"",
                b"{}{}",
                b"{} trailing",
                b"\xef\xbb\xbf{}",
                b"{\"Name\":}",
                b"{,}",
                b"\xff\xfe",
                b"{\"Name\":\"a\"",
            ];
            let pick = whole.choose(rng).copied().unwrap_or(b"");
            return Body {
                bytes: pick.to_vec(),
                what: format!("whole body {:?}", String::from_utf8_lossy(pick)),
            };
        }
    };
    Body {
        bytes: raw.render(&v),
        what,
    }
}
