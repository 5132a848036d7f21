//! Images in and out as tars: `docker save` (`GET /images/get`,
//! `GET /images/{name}/get`) and `docker import`
//! (`POST /images/create?fromSrc=-`), plus the multi-valued query
//! parameters (`names`, `changes`) those calls send.

use axum::body::Body;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use futures::StreamExt;
use runtime::images::ImportOptions;

use crate::error::ApiError;
use crate::error::ApiResult;
use crate::AppState;

/// Every value of `key` in a raw query string, in order.
pub fn query_all(raw: Option<&str>, key: &str) -> Result<Vec<String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(pairs
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect())
}

/// The first value of `key`, empty when absent.
fn query_one(raw: Option<&str>, key: &str) -> Result<String, ApiError> {
    Ok(query_all(raw, key)?.into_iter().next().unwrap_or_default())
}

/// `docker save`: the archive of `names`, streamed as `application/x-tar`.
pub async fn save(st: &AppState, names: &[String]) -> ApiResult<Response> {
    let file = st.runtime.image_save(names).await?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `docker import` from the request body (`fromSrc=-`). Answers dockerd's
/// JSON stream: one `{"status":"sha256:..."}` line.
pub async fn import(st: &AppState, raw_query: Option<&str>, body: Body) -> ApiResult<Response> {
    let src = query_one(raw_query, "fromSrc")?;
    if src != "-" {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "importing an image from a URL is not supported",
        ));
    }
    let repo = query_one(raw_query, "repo")?;
    let tag = query_one(raw_query, "tag")?;
    let name = match (repo.is_empty(), tag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(repo),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let changes = query_all(raw_query, "changes")?;
    // A bad change is refused before the import starts, and the client's
    // upload is read to its end first: answering mid-upload would close
    // the connection under a client still writing (it sees a broken pipe,
    // not the error).
    let mut config = runtime::images::changes::empty_config();
    if let Err(e) = runtime::images::changes::apply(&mut config, &changes) {
        drain(body).await;
        return Err(e.into());
    }
    let opts = ImportOptions {
        name,
        changes,
        message: query_one(raw_query, "message")?,
        source: src,
    };
    let id = st
        .runtime
        .image_import(body.into_data_stream(), opts)
        .await?;
    let line = format!("{{\"status\":{}}}\r\n", serde_json::Value::from(id));
    Ok(([(header::CONTENT_TYPE, "application/json")], line).into_response())
}

/// Reads and drops what is left of a request body, up to
/// [`DRAIN_LIMIT`] bytes or [`DRAIN_TIME`].
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    while read < DRAIN_LIMIT {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len(),
            _ => break,
        }
    }
}

/// How much of a refused upload is read before answering.
const DRAIN_LIMIT: usize = 1 << 30;
/// How long a refused upload is read before answering.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_in_order() {
        let q = Some("names=a%3A1&x=y&names=b&changes=CMD+%5B%22sh%22%5D");
        assert_eq!(query_all(q, "names").unwrap(), vec!["a:1", "b"]);
        assert_eq!(query_all(q, "changes").unwrap(), vec!["CMD [\"sh\"]"]);
        assert!(query_all(None, "names").unwrap().is_empty());
    }
}
