//! Paths whose percent-escapes are not UTF-8, such as `/networks/%FF%FE`.
//!
//! Go's router takes a path segment of any bytes, the lookup finds no object
//! and dockerd answers its own "not found", writing each bad byte back as
//! U+FFFD. axum's `Path` extractor refuses such a segment instead, with a
//! plain-text 400 and no `message`. So before routing, each byte of an
//! escape run that is not part of valid UTF-8 becomes an escaped U+FFFD,
//! and the handler answers as for any other unknown name.

use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use percent_encoding::percent_decode;
use percent_encoding::utf8_percent_encode;
use percent_encoding::NON_ALPHANUMERIC;

/// Middleware: rewrites the request's path as the module says.
pub async fn lossy_path(mut req: Request, next: Next) -> Response {
    if let Some(uri) = fixed_uri(req.uri()) {
        *req.uri_mut() = uri;
    }
    next.run(req).await
}

fn fixed_uri(uri: &Uri) -> Option<Uri> {
    let path = fixed_path(uri.path())?;
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

/// `path` with its non-UTF-8 escape runs replaced, or `None` when it has none.
fn fixed_path(path: &str) -> Option<String> {
    if !path.contains('%') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len() + 16);
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i + 2 < bytes.len()
            && bytes[i] == b'%'
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            i += 3;
        }
        if i == start {
            // Not an escape: the path is ASCII, so one byte is one char.
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let run = &path[start..i];
        let decoded: Vec<u8> = percent_decode(run.as_bytes()).collect();
        if std::str::from_utf8(&decoded).is_ok() {
            out.push_str(run);
        } else {
            changed = true;
            let text = crate::body::replace_invalid_utf8(&decoded);
            out.extend(utf8_percent_encode(&text, NON_ALPHANUMERIC));
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_become_escaped_replacement_characters() {
        assert_eq!(
            fixed_path("/networks/%FF%FE").as_deref(),
            Some("/networks/%EF%BF%BD%EF%BF%BD")
        );
        // Good escapes around a bad byte keep their meaning, `/` included.
        assert_eq!(
            fixed_path("/secrets/a%C3%A9%FF%2Fb").as_deref(),
            Some("/secrets/a%C3%A9%EF%BF%BD%2Fb")
        );
    }

    #[test]
    fn valid_paths_are_left_alone() {
        assert_eq!(fixed_path("/services/web"), None);
        assert_eq!(fixed_path("/services/%C3%A9t%C3%A9/update"), None);
        assert_eq!(fixed_path("/services/100%"), None);
        assert_eq!(fixed_path("/services/%zz%F"), None);
    }
}
