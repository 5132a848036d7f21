//! Request decoding as dockerd does it: JSON bodies (Content-Type not checked)
//! by Go's rules ([`crate::gojson`]), Go-like error texts, and Docker's boolean
//! query values.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::Request;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; malformed input is a 400 with the decoder's message.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                // axum stops reading at its default limit, so memory stays
                // bounded; dockerd reads any size, but raft stores no object
                // over 1.5 MiB anyway.
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is too large: at most {JSON_BODY_LIMIT} bytes of JSON are read"),
                ),
                _ => ApiError::bad_request(e.to_string()),
            })?;
        decode(&bytes).map(JsonBody)
    }
}

/// The most a JSON request body may hold: axum's default limit, above the
/// largest secret or config dockerd accepts (1000 KiB, 4/3 of it once in
/// base64) and any spec raft can store.
pub const JSON_BODY_LIMIT: usize = 2 << 20;

/// dockerd's text for a request body with no JSON value at all (Go's
/// decoder meets `io.EOF` before the first token).
pub const EMPTY_BODY: &str = "got EOF while reading request body";

/// Decodes a request body as dockerd's Go decoder reads it (keys in any
/// case, unknown ones ignored, `null` as the zero value: [`crate::gojson`])
/// and words failures as dockerd does: an empty body is [`EMPTY_BODY`], a
/// truncated one `unexpected EOF`, other errors keep the decoder's text.
/// Every route that reads a JSON body goes through here.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let trimmed = bytes.iter().all(|b| b.is_ascii_whitespace());
    if trimmed {
        return Err(ApiError::bad_request(EMPTY_BODY));
    }
    // Go's decoder reads invalid UTF-8 in a string as U+FFFD, one per
    // bad byte; valid input (nearly all) is decoded in place.
    let fixed;
    let bytes = match std::str::from_utf8(bytes) {
        Ok(_) => bytes,
        Err(_) => {
            fixed = replace_invalid_utf8(bytes);
            fixed.as_bytes()
        }
    };
    crate::gojson::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            ApiError::bad_request("unexpected EOF")
        } else {
            ApiError::bad_request(e.to_string())
        }
    })
}

/// `bytes` with every byte that is not part of valid UTF-8 replaced by
/// U+FFFD, as Go's `utf8.DecodeRune` steps over them one at a time.
pub fn replace_invalid_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 16);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                out.extend(std::iter::repeat_n('\u{FFFD}', bad));
                bytes = &rest[bad..];
            }
        }
    }
}

/// Query parameters.
pub type Query = HashMap<String, String>;

/// Docker's lenient boolean query values (moby `httputils.BoolValue`): a
/// missing value, `0`, `no`, `false` and `none` (any case, spaces trimmed)
/// are false and anything else is true, so a bad value is never refused.
pub fn query_bool(q: &Query, key: &str) -> bool {
    q.get(key).is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
    })
}

/// Go's `strconv.ParseBool`: the only spellings it accepts.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// How a route words its refusal of a value `strconv.ParseBool` rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadBool {
    /// `invalid value for KEY: V: strconv.ParseBool: parsing "V": invalid
    /// syntax` (the route wraps Go's error: `status`, `insertDefaults`,
    /// `verbose`).
    Wrapped,
    /// `invalid value for KEY: V` (the route drops Go's error: the
    /// `rotate*` flags of `/swarm/update`).
    Bare,
}

/// A strict boolean query value as the routes that use Go's
/// `strconv.ParseBool` read it: absent or empty is `None`, a value Go rejects
/// is dockerd's 400 worded as `style` says.
pub fn query_strict_bool(q: &Query, key: &str, style: BadBool) -> Result<Option<bool>, ApiError> {
    let Some(v) = q.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    parse_go_bool(v).map(Some).ok_or_else(|| {
        ApiError::bad_request(match style {
            BadBool::Wrapped => format!(
                "invalid value for {key}: {v}: strconv.ParseBool: parsing \"{v}\": invalid syntax"
            ),
            BadBool::Bare => format!("invalid value for {key}: {v}"),
        })
    })
}

/// Which object's `?version=N` is read: dockerd words a bad one per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOf {
    /// `POST /swarm/update`.
    Swarm,
    /// `POST /services/{id}/update`.
    Service,
    /// `POST /nodes/{id}/update`.
    Node,
    /// `POST /secrets/{id}/update`.
    Secret,
    /// `POST /configs/{id}/update`.
    Config,
}

/// `?version=N` of an update; a missing or bad value is dockerd's 400 for
/// that route (moby `api/server/router/swarm/cluster_routes.go`).
pub fn query_version(q: &Query, of: VersionOf) -> Result<u64, ApiError> {
    let raw = q.get("version").map(String::as_str).unwrap_or("");
    // Go's ParseUint takes no sign; Rust's parse would take a `+`.
    let parsed = if raw.starts_with('+') {
        Err(None)
    } else {
        raw.parse::<u64>().map_err(|e| Some(*e.kind()))
    };
    parsed.map_err(|kind| {
        let why = match kind {
            Some(std::num::IntErrorKind::PosOverflow) => "value out of range",
            _ => "invalid syntax",
        };
        let go = format!("strconv.ParseUint: parsing \"{raw}\": {why}");
        ApiError::bad_request(match of {
            VersionOf::Swarm => format!("invalid swarm version '{raw}': {go}"),
            VersionOf::Service => format!("invalid service version '{raw}': {go}"),
            VersionOf::Node => format!("invalid node version '{raw}': {go}"),
            // These two routes drop Go's error.
            VersionOf::Secret => "invalid secret version".into(),
            VersionOf::Config => "invalid config version".into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_json_is_unexpected_eof() {
        let e = decode::<serde_json::Value>(b"{\"Name\": ").unwrap_err();
        assert_eq!(e.message, "unexpected EOF");
        let e = decode::<serde_json::Value>(b"").unwrap_err();
        assert_eq!(e.message, "got EOF while reading request body");
        let e = decode::<serde_json::Value>(b" \n").unwrap_err();
        assert_eq!(e.message, "got EOF while reading request body");
    }

    #[test]
    fn invalid_utf8_in_strings_is_read_as_go_reads_it() {
        let v: serde_json::Value = decode(b"{\"Name\":\"a\xff\xfeb\xe2\x82\"}").unwrap();
        assert_eq!(v["Name"], "a\u{FFFD}\u{FFFD}b\u{FFFD}\u{FFFD}");
        // Outside a string it is still a syntax error.
        assert_eq!(
            decode::<serde_json::Value>(b"{\xff: 1}")
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(replace_invalid_utf8("héllo".as_bytes()), "héllo");
    }

    #[test]
    fn bools() {
        let mut q = Query::new();
        q.insert("force".into(), "1".into());
        q.insert("x".into(), "false".into());
        assert!(query_bool(&q, "force"));
        assert!(!query_bool(&q, "x"));
        assert!(!query_bool(&q, "missing"));
        // Lenient: Go's BoolValue takes any other text as true, and `none`
        // (with spaces around) as false.
        q.insert("y".into(), "AAA".into());
        q.insert("z".into(), " None ".into());
        assert!(query_bool(&q, "y"));
        assert!(!query_bool(&q, "z"));
    }

    #[test]
    fn strict_bools_refuse_what_go_refuses() {
        let mut q = Query::new();
        for (v, want) in [
            ("1", true),
            ("T", true),
            ("True", true),
            ("f", false),
            ("FALSE", false),
        ] {
            q.insert("status".into(), v.into());
            assert_eq!(
                query_strict_bool(&q, "status", BadBool::Wrapped).unwrap(),
                Some(want),
                "{v}"
            );
        }
        q.insert("status".into(), "".into());
        assert_eq!(
            query_strict_bool(&q, "status", BadBool::Wrapped).unwrap(),
            None
        );
        for v in ["AAA", "yes", "tRUE", "2", " true"] {
            q.insert("insertDefaults".into(), v.into());
            let e = query_strict_bool(&q, "insertDefaults", BadBool::Wrapped).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(
                e.message,
                format!("invalid value for insertDefaults: {v}: strconv.ParseBool: parsing \"{v}\": invalid syntax")
            );
        }
        q.insert("rotateWorkerToken".into(), "yes".into());
        let e = query_strict_bool(&q, "rotateWorkerToken", BadBool::Bare).unwrap_err();
        assert_eq!(e.message, "invalid value for rotateWorkerToken: yes");
    }

    #[test]
    fn versions_are_worded_per_route() {
        let mut q = Query::new();
        let msg = |q: &Query, of| query_version(q, of).unwrap_err().message;
        assert_eq!(
            msg(&q, VersionOf::Service),
            "invalid service version '': strconv.ParseUint: parsing \"\": invalid syntax"
        );
        q.insert("version".into(), "+3".into());
        assert_eq!(
            msg(&q, VersionOf::Node),
            "invalid node version '+3': strconv.ParseUint: parsing \"+3\": invalid syntax"
        );
        q.insert("version".into(), "99999999999999999999".into());
        assert_eq!(
            msg(&q, VersionOf::Swarm),
            "invalid swarm version '99999999999999999999': strconv.ParseUint: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(msg(&q, VersionOf::Secret), "invalid secret version");
        assert_eq!(msg(&q, VersionOf::Config), "invalid config version");
        q.insert("version".into(), "42".into());
        assert_eq!(query_version(&q, VersionOf::Config).unwrap(), 42);
    }
}
