//! The cassette line format: one recorded HTTP exchange per JSON line.
//!
//! A line looks like
//!
//! ```json
//! {"seq":3,"conn":1,"at_ms":120,
//!  "request":{"method":"GET","path":"/v1.41/nodes?filters=...","headers":{},"body":null,"body_kind":"empty"},
//!  "response":{"status":200,"headers":{"Api-Version":"1.41"},"body":[...],"body_kind":"json",
//!              "streamed":false,"truncated":false,"complete":true},
//!  "hijacked":false}
//! ```
//!
//! Bodies are stored in the most readable form that still allows a replay:
//! JSON bodies as JSON values, UTF-8 text as a string, Docker's multiplexed
//! stdout/stderr stream as a list of frames, anything else as base64. The
//! `body_kind` field says which form was used, so a JSON body that happens to
//! be a string (`POST /swarm/init` answers `"nodeid"`) is never confused with
//! a text body.

use base64::Engine;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Map;
use serde_json::Value;

/// Request headers worth keeping, in the spelling used in the cassette.
pub const REQUEST_HEADERS: &[&str] = &["Content-Type", "X-Registry-Auth", "Upgrade", "Connection"];

/// Response headers worth keeping, in the spelling used in the cassette.
pub const RESPONSE_HEADERS: &[&str] = &[
    "Api-Version",
    "Builder-Version",
    "Cache-Control",
    "Content-Type",
    "Docker-Experimental",
    "Ostype",
    "Pragma",
    "Server",
    "Swarm",
    "Upgrade",
];

/// Key of the object that stands for a long repetitive string (see [`scrub`]).
pub const REPEAT_KEY: &str = "$shoal_repeat";

/// Strings longer than this are candidates for repeat compression.
const REPEAT_MIN_LEN: usize = 4096;

/// One recorded exchange: a request and what the daemon answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exchange {
    /// Order in which the requests reached the proxy, from 1.
    pub seq: u64,
    /// Client connection number, from 1; requests of one connection share it.
    #[serde(default)]
    pub conn: u64,
    /// Milliseconds since the recorder started, when the request arrived.
    #[serde(default)]
    pub at_ms: u64,
    /// What the client sent.
    pub request: RecordedRequest,
    /// What the daemon answered (status 502 with no headers when it could
    /// not be reached).
    pub response: RecordedResponse,
    /// The connection was upgraded (`101`, `Upgrade: tcp`) and then carried
    /// raw bytes both ways; the body fields are then empty.
    #[serde(default)]
    pub hijacked: bool,
}

/// The request half of an [`Exchange`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path with query string, exactly as sent.
    pub path: String,
    /// Headers of note. `X-Registry-Auth` is stored as `present`, never its value.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// The body in the form named by `body_kind`.
    #[serde(default)]
    pub body: Value,
    /// One of `empty`, `json`, `text`, `base64`, `omitted`.
    #[serde(default = "kind_empty")]
    pub body_kind: String,
    /// Size of the body in bytes.
    #[serde(default)]
    pub body_len: u64,
}

/// The response half of an [`Exchange`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers of note.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// The body (up to the capture cap) in the form named by `body_kind`.
    #[serde(default)]
    pub body: Value,
    /// One of `empty`, `json`, `text`, `base64`, `frames`.
    #[serde(default = "kind_empty")]
    pub body_kind: String,
    /// Bytes of body seen (may be more than were kept).
    #[serde(default)]
    pub body_len: u64,
    /// The body had no `Content-Length` (chunked or read to end).
    #[serde(default)]
    pub streamed: bool,
    /// Only the first part of the body was kept.
    #[serde(default)]
    pub truncated: bool,
    /// The body ended normally (false: the client hung up first).
    #[serde(default = "yes")]
    pub complete: bool,
}

fn kind_empty() -> String {
    "empty".to_string()
}

fn yes() -> bool {
    true
}

/// A body in its cassette form: the value and the name of its form.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBody {
    /// The value stored under `body`.
    pub value: Value,
    /// The name stored under `body_kind`.
    pub kind: &'static str,
}

/// Turns raw body bytes into their cassette form.
///
/// `content_type` picks the form: JSON is tried first whenever the type
/// mentions json or the bytes look like JSON; the multiplexed stream of
/// `logs`/`attach` becomes frames; valid UTF-8 becomes text; anything else
/// base64. `truncated` bodies are never parsed as JSON (they would not be
/// valid) but are kept as text or base64.
pub fn encode_body(bytes: &[u8], content_type: Option<&str>, truncated: bool) -> EncodedBody {
    if bytes.is_empty() {
        return EncodedBody {
            value: Value::Null,
            kind: "empty",
        };
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if !truncated {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let looks_json = matches!(first, Some(b'{' | b'[' | b'"'));
        if ct.contains("json") || looks_json {
            if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
                return EncodedBody {
                    value: v,
                    kind: "json",
                };
            }
        }
    }
    let is_multiplexed =
        ct.contains("multiplexed-stream") || (ct.is_empty() && looks_multiplexed(bytes));
    if is_multiplexed {
        if let Some(frames) = decode_frames(bytes) {
            return EncodedBody {
                value: Value::Array(frames),
                kind: "frames",
            };
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => EncodedBody {
            value: Value::String(s.to_string()),
            kind: "text",
        },
        Err(_) => EncodedBody {
            value: Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            kind: "base64",
        },
    }
}

/// Turns a cassette body back into bytes, for replaying a request.
///
/// Returns `None` for an `omitted` body (the replayer must supply it).
pub fn decode_body(value: &Value, kind: &str) -> Option<Vec<u8>> {
    match kind {
        "empty" => Some(Vec::new()),
        "json" => {
            let expanded = expand_repeats(value);
            serde_json::to_vec(&expanded).ok()
        }
        "text" => Some(value.as_str().unwrap_or("").as_bytes().to_vec()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or(""))
            .ok(),
        "frames" => Some(encode_frames(value)),
        _ => None,
    }
}

/// A multiplexed stream starts with a stream byte 0-2 and three zero bytes.
fn looks_multiplexed(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0] <= 2 && bytes[1..4] == [0, 0, 0]
}

/// Splits Docker's stdout/stderr multiplexed stream into
/// `{"stream": n, "data": "..."}` frames; a last, cut frame is kept as far as
/// it goes. `None` when the bytes are not such a stream.
fn decode_frames(bytes: &[u8]) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 8 || rest[0] > 2 || rest[1..4] != [0, 0, 0] {
            return None;
        }
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        let data = String::from_utf8_lossy(&rest[8..end]).into_owned();
        let mut frame = Map::new();
        frame.insert("stream".into(), Value::from(rest[0]));
        frame.insert("data".into(), Value::String(data));
        out.push(Value::Object(frame));
        rest = &rest[end..];
    }
    Some(out)
}

fn encode_frames(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in value.as_array().into_iter().flatten() {
        let stream = frame.get("stream").and_then(Value::as_u64).unwrap_or(1) as u8;
        let data = frame.get("data").and_then(Value::as_str).unwrap_or("");
        out.push(stream);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data.as_bytes());
    }
    out
}

/// The save-time scrub hook: called on every exchange just before it is
/// written.
///
/// It keeps every value (secret data included: the fixtures are made from
/// throw-away test data) and only makes the file smaller: a long string that
/// is one short unit repeated (the 600 000-byte secret of the oversize
/// scenarios) becomes `{"$shoal_repeat": {"unit": "YWFh", "count": 200000,
/// "tail": ""}}`, which [`decode_body`] expands again.
pub fn scrub(exchange: &mut Exchange) {
    if exchange.request.body_kind == "json" {
        compress_repeats(&mut exchange.request.body);
    }
}

fn compress_repeats(value: &mut Value) {
    match value {
        Value::String(s) if s.len() >= REPEAT_MIN_LEN => {
            if let Some((unit, count, tail)) = find_repeat(s) {
                let mut inner = Map::new();
                inner.insert("unit".into(), Value::String(unit.to_string()));
                inner.insert("count".into(), Value::from(count));
                inner.insert("tail".into(), Value::String(tail.to_string()));
                let mut outer = Map::new();
                outer.insert(REPEAT_KEY.into(), Value::Object(inner));
                *value = Value::Object(outer);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(compress_repeats),
        Value::Object(map) => map.values_mut().for_each(compress_repeats),
        _ => {}
    }
}

/// Finds the shortest unit (up to 64 bytes) whose repetition makes up `s`,
/// except for a tail shorter than 8 bytes.
fn find_repeat(s: &str) -> Option<(&str, usize, &str)> {
    let bytes = s.as_bytes();
    for unit_len in 1..=64usize {
        if !s.is_char_boundary(unit_len) {
            continue;
        }
        let unit = &bytes[..unit_len];
        let count = bytes
            .chunks_exact(unit_len)
            .take_while(|c| *c == unit)
            .count();
        let covered = count * unit_len;
        if bytes.len() - covered < 8 && count > 1 && s.is_char_boundary(covered) {
            return Some((&s[..unit_len], count, &s[covered..]));
        }
    }
    None
}

/// Undoes [`scrub`]'s repeat compression anywhere inside `value`.
pub fn expand_repeats(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            if let (1, Some(Value::Object(inner))) = (map.len(), map.get(REPEAT_KEY)) {
                let unit = inner.get("unit").and_then(Value::as_str).unwrap_or("");
                let count = inner.get("count").and_then(Value::as_u64).unwrap_or(0) as usize;
                let tail = inner.get("tail").and_then(Value::as_str).unwrap_or("");
                return Value::String(format!("{}{}", unit.repeat(count), tail));
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), expand_repeats(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(expand_repeats).collect()),
        other => other.clone(),
    }
}

/// Reads a whole cassette (one exchange per line; blank lines skipped).
pub fn parse_lines(text: &str) -> anyhow::Result<Vec<Exchange>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: Exchange =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        out.push(ex);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Exchange {
        let enc = encode_body(br#"{"ID":"abc"}"#, Some("application/json"), false);
        Exchange {
            seq: 1,
            conn: 1,
            at_ms: 5,
            request: RecordedRequest {
                method: "POST".into(),
                path: "/v1.41/secrets/create".into(),
                headers: Map::from_iter([("Content-Type".to_string(), json!("application/json"))]),
                body: json!({"Name": "s1", "Data": "YWFh"}),
                body_kind: "json".into(),
                body_len: 30,
            },
            response: RecordedResponse {
                status: 201,
                headers: Map::new(),
                body: enc.value,
                body_kind: enc.kind.into(),
                body_len: 12,
                streamed: false,
                truncated: false,
                complete: true,
            },
            hijacked: false,
        }
    }

    #[test]
    fn line_format_has_documented_keys() {
        let line = serde_json::to_string(&sample()).unwrap();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        for key in ["seq", "conn", "at_ms", "request", "response", "hijacked"] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["method", "path", "headers", "body", "body_kind", "body_len"] {
            assert!(v["request"].get(key).is_some(), "missing request.{key}");
        }
        for key in [
            "status",
            "headers",
            "body",
            "body_kind",
            "streamed",
            "truncated",
            "complete",
        ] {
            assert!(v["response"].get(key).is_some(), "missing response.{key}");
        }
        assert_eq!(v["response"]["body"], json!({"ID": "abc"}));
        let back = parse_lines(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], sample());
    }

    #[test]
    fn json_string_body_is_json_not_text() {
        let enc = encode_body(b"\"v593r\"\n", Some("application/json"), false);
        assert_eq!(enc.kind, "json");
        assert_eq!(enc.value, json!("v593r"));
        let text = encode_body(b"OK", Some("text/plain; charset=utf-8"), false);
        assert_eq!(text.kind, "text");
        assert_eq!(decode_body(&text.value, text.kind).unwrap(), b"OK");
    }

    #[test]
    fn binary_and_truncated_bodies() {
        let enc = encode_body(&[0xff, 0xfe, 0x00, 0x10], None, false);
        assert_eq!(enc.kind, "base64");
        assert_eq!(
            decode_body(&enc.value, enc.kind).unwrap(),
            vec![0xff, 0xfe, 0x00, 0x10]
        );
        let cut = encode_body(br#"{"a":"#, Some("application/json"), true);
        assert_eq!(cut.kind, "text");
    }

    #[test]
    fn multiplexed_frames_round_trip() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 6];
        raw.extend_from_slice(b"hello\n");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        raw.extend_from_slice(b"err\n");
        let enc = encode_body(&raw, None, false);
        assert_eq!(enc.kind, "frames");
        assert_eq!(
            enc.value,
            json!([{"stream": 1, "data": "hello\n"}, {"stream": 2, "data": "err\n"}])
        );
        assert_eq!(decode_body(&enc.value, enc.kind).unwrap(), raw);
    }

    #[test]
    fn scrub_compresses_and_decode_expands_repeats() {
        let data = "YWFh".repeat(200_000) + "YQ==";
        let mut ex = sample();
        ex.request.body = json!({"Name": "big", "Data": data.clone()});
        scrub(&mut ex);
        let stored = serde_json::to_string(&ex).unwrap();
        assert!(
            stored.len() < 1000,
            "not compressed: {} bytes",
            stored.len()
        );
        assert_eq!(ex.request.body["Data"][REPEAT_KEY]["unit"], json!("YWFh"));
        let bytes = decode_body(&ex.request.body, "json").unwrap();
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["Data"], json!(data));
        assert_eq!(back["Name"], json!("big"));
    }

    #[test]
    fn scrub_keeps_short_and_irregular_strings() {
        let mut ex = sample();
        let mut x: u32 = 12345;
        let irregular: String = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                char::from(b'a' + ((x >> 16) % 26) as u8)
            })
            .collect();
        ex.request.body = json!({"Data": irregular.clone(), "Short": "aaaa"});
        scrub(&mut ex);
        assert_eq!(ex.request.body["Data"], json!(irregular));
        assert_eq!(ex.request.body["Short"], json!("aaaa"));
    }
}
