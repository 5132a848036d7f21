//! Request decoding as dockerd does it: JSON bodies (Content-Type not checked),
//! Go-like error texts, and Docker's boolean query values.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::Request;
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
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        decode(&bytes).map(JsonBody)
    }
}

/// Decodes JSON the way dockerd reports failures: an empty or truncated body
/// is `unexpected EOF`, other syntax errors keep the decoder's text.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let trimmed = bytes.iter().all(|b| b.is_ascii_whitespace());
    if trimmed {
        return Err(ApiError::bad_request("unexpected EOF"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            ApiError::bad_request("unexpected EOF")
        } else {
            ApiError::bad_request(e.to_string())
        }
    })
}

/// Query parameters.
pub type Query = HashMap<String, String>;

/// Docker's boolean query values: `1`, `true`, `True` and friends are true.
pub fn query_bool(q: &Query, key: &str) -> bool {
    q.get(key).is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        !(v.is_empty() || v == "0" || v == "false" || v == "no")
    })
}

/// `?version=N` of an update; a missing or bad value is dockerd's 400.
pub fn query_version(q: &Query) -> Result<u64, ApiError> {
    let raw = q.get("version").map(String::as_str).unwrap_or("");
    raw.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid swarm object version '{raw}': strconv.ParseUint: parsing \"{raw}\": invalid syntax"
        ))
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
        assert_eq!(e.message, "unexpected EOF");
    }

    #[test]
    fn bools() {
        let mut q = Query::new();
        q.insert("force".into(), "1".into());
        q.insert("x".into(), "false".into());
        assert!(query_bool(&q, "force"));
        assert!(!query_bool(&q, "x"));
        assert!(!query_bool(&q, "missing"));
    }
}
