//! API versions: the range served, the `/v1.NN/` prefix, and dockerd's errors.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;

use crate::error::ApiError;

/// Oldest API version served.
pub const MIN: ApiVersion = ApiVersion(24);
/// Newest API version served (the stock CLI's own).
pub const MAX: ApiVersion = ApiVersion(50);

/// A `1.NN` API version (major is always 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32);

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "1.{}", self.0)
    }
}

impl ApiVersion {
    /// Parses `1.NN`.
    pub fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.split_once('.')?;
        if major != "1" {
            return None;
        }
        minor.parse().ok().map(ApiVersion)
    }

    /// Whether this version is at least `1.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= minor
    }
}

/// Splits `/v1.NN/rest` into the version text and `/rest`.
fn split_prefix(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let slash = rest.find('/')?;
    let (ver, tail) = rest.split_at(slash);
    ver.contains('.').then_some((ver, tail))
}

/// Middleware: strips the version prefix, checks the range, records the
/// version in request extensions, and adds dockerd's headers to responses.
pub async fn negotiate(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut version = MAX;
    if let Some((ver, tail)) = split_prefix(&path) {
        let Some(v) = ApiVersion::parse(ver) else {
            return ApiError::not_found("page not found").into_response();
        };
        if v > MAX {
            return with_version_headers(
                ApiError::bad_request(format!(
                    "client version {v} is too new. Maximum supported API version is {MAX}"
                ))
                .into_response(),
            );
        }
        if v < MIN {
            let body = format!(
                "client version {v} is too old. Minimum supported API version is {MIN}, please upgrade your client to a newer version\n"
            );
            let mut r = (StatusCode::BAD_REQUEST, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return with_version_headers(r);
        }
        version = v;
        let new_path = match req.uri().query() {
            Some(q) => format!("{tail}?{q}"),
            None => tail.to_string(),
        };
        if let Ok(uri) = new_path.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(version);
    let r = next.run(req).await;
    // dockerd's router answers unknown routes outside its middlewares.
    if r.extensions().get::<Unrouted>().is_some() {
        return r;
    }
    let mut r = with_version_headers(r);
    r.headers_mut()
        .insert("Docker-Experimental", HeaderValue::from_static("false"));
    r
}

/// Marks the answer to a route that does not exist.
#[derive(Clone, Copy)]
struct Unrouted;

/// The headers dockerd's version middleware sets on every answer, its
/// version errors included (which go out before the experimental one is
/// set).
fn with_version_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(MAX_STR));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("shoal/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    r
}

const MAX_STR: &str = "1.50";

/// The body-less 404 dockerd gives for unknown routes.
pub async fn page_not_found() -> Response {
    let mut r = ApiError::not_found("page not found").into_response();
    r.extensions_mut().insert(Unrouted);
    r
}

/// An empty 200 body (dockerd's answer to several POSTs).
pub fn empty_ok() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_split() {
        assert_eq!(split_prefix("/v1.41/services"), Some(("1.41", "/services")));
        assert_eq!(split_prefix("/services"), None);
        assert_eq!(split_prefix("/v1.41"), None);
        assert_eq!(ApiVersion::parse("1.41"), Some(ApiVersion(41)));
        assert_eq!(ApiVersion::parse("2.0"), None);
        assert_eq!(MAX.to_string(), MAX_STR);
    }
}
