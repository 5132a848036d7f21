//! Log streams as dockerd writes them: each line optionally prefixed with
//! its RFC 3339 timestamp (nine fraction digits) and its details
//! (`key=value` pairs, sorted, comma-joined), and, unless the container
//! has a TTY, framed in the multiplexed format (an 8-byte header: stream
//! byte, three zero bytes, big-endian length).

use std::sync::Arc;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::header;
use axum::http::HeaderValue;
use axum::response::Response;
use runtime::logs::reader::Entry;
use runtime::logs::reader::Source;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::body::query_bool;
use crate::body::Query;
use crate::error::ApiError;
use crate::server::version::ApiVersion;

/// A line on its way to the client, with the details its source adds.
#[derive(Debug)]
pub struct Tagged {
    /// The line.
    pub entry: Entry,
    /// Its details (`com.docker.swarm.node.id=...,...`), empty for none.
    pub attrs: Arc<str>,
}

/// How lines are written out.
#[derive(Debug, Clone, Copy)]
pub struct LogFormat {
    /// Send stdout lines.
    pub stdout: bool,
    /// Send stderr lines.
    pub stderr: bool,
    /// Prefix the line's time.
    pub timestamps: bool,
    /// Prefix the line's details.
    pub details: bool,
    /// Frame lines (no TTY), else raw bytes.
    pub mux: bool,
    /// Announce the multiplexed content type (API 1.42 and later).
    pub mux_type: bool,
}

impl LogFormat {
    /// From the `stdout`, `stderr`, `timestamps` and `details` query
    /// values; a TTY container's log is raw.
    pub fn from_query(q: &Query, tty: bool, version: ApiVersion) -> Result<Self, ApiError> {
        let (stdout, stderr) = (query_bool(q, "stdout"), query_bool(q, "stderr"));
        if !stdout && !stderr {
            return Err(ApiError::bad_request(
                "must specify at least one of 'stdout' or 'stderr'",
            ));
        }
        Ok(LogFormat {
            stdout,
            stderr,
            timestamps: query_bool(q, "timestamps"),
            details: query_bool(q, "details"),
            mux: !tty,
            mux_type: !tty && version.at_least(42),
        })
    }

    /// The bytes for one line, or `None` when its stream is not wanted.
    pub fn encode(&self, t: &Tagged) -> Option<Bytes> {
        let e = &t.entry;
        let (wanted, stream_byte) = match e.source {
            Source::Stdout => (self.stdout, 1u8),
            Source::Stderr => (self.stderr, 2u8),
        };
        if !wanted {
            return None;
        }
        let mut line = Vec::with_capacity(e.line.len() + 64);
        if self.timestamps {
            line.extend_from_slice(fixed_nanos(e.time).as_bytes());
            line.push(b' ');
        }
        if self.details {
            line.extend_from_slice(t.attrs.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&e.line);
        if !self.mux {
            return Some(Bytes::from(line));
        }
        let mut out = Vec::with_capacity(line.len() + 8);
        out.extend_from_slice(&[stream_byte, 0, 0, 0]);
        out.extend_from_slice(&(line.len() as u32).to_be_bytes());
        out.extend_from_slice(&line);
        Some(Bytes::from(out))
    }

    /// The response: dockerd's content type, and a body that writes each
    /// line as it arrives and ends when the sender side is done. Dropping
    /// the body (the client hung up) closes the channel, which stops the
    /// producers.
    pub fn response(self, rx: mpsc::Receiver<Tagged>) -> Response {
        let lines = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                let t = rx.recv().await?;
                if let Some(b) = self.encode(&t) {
                    return Some((Ok::<_, std::convert::Infallible>(b), rx));
                }
            }
        });
        let mut r = Response::new(Body::from_stream(lines));
        let ct = if self.mux_type {
            "application/vnd.docker.multiplexed-stream"
        } else {
            "application/vnd.docker.raw-stream"
        };
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r
    }
}

/// Go's `RFC3339NanoFixed` in UTC: always nine fraction digits.
pub fn fixed_nanos(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// dockerd's log details: keys sorted, keys and values query-escaped.
pub fn details(pairs: &[(&str, &str)]) -> String {
    let mut v: Vec<(&str, &str)> = pairs.to_vec();
    v.sort();
    v.iter()
        .map(|(k, val)| format!("{}={}", query_escape(k), query_escape(val)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A `since`/`until` value: Unix seconds with an optional fraction
/// (`1700000000.123456789`), what the CLI sends.
pub fn parse_unix_time(key: &str, v: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    if v.is_empty() {
        return Ok(None);
    }
    let bad = |why: String| {
        ApiError::bad_request(format!(
            "invalid value for \"{key}\": invalid timestamp \"{v}\": {why}"
        ))
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs
        .parse()
        .map_err(|_| bad(format!("invalid seconds \"{secs}\": invalid syntax")))?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 20 {
        return Err(bad("invalid nanoseconds".into()));
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().unwrap_or(0);
    let t = OffsetDateTime::from_unix_timestamp(secs).map_err(|e| bad(e.to_string()))?
        + time::Duration::nanoseconds(nanos);
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(source: Source, text: &str) -> Tagged {
        Tagged {
            entry: Entry {
                source,
                time: OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(1500),
                line: text.as_bytes().to_vec(),
            },
            attrs: Arc::from("a=1,b=2"),
        }
    }

    fn fmt(mux: bool, timestamps: bool, details: bool) -> LogFormat {
        LogFormat {
            stdout: true,
            stderr: false,
            timestamps,
            details,
            mux,
            mux_type: mux,
        }
    }

    #[test]
    fn frames_and_prefixes() {
        let b = fmt(true, false, false)
            .encode(&entry(Source::Stdout, "hi\n"))
            .unwrap();
        assert_eq!(&b[..], b"\x01\0\0\0\0\0\0\x03hi\n");
        assert!(fmt(true, false, false)
            .encode(&entry(Source::Stderr, "x\n"))
            .is_none());
        let b = fmt(false, true, true)
            .encode(&entry(Source::Stdout, "hi\n"))
            .unwrap();
        assert_eq!(&b[..], b"1970-01-01T00:00:01.500000000Z a=1,b=2 hi\n");
    }

    #[test]
    fn details_sorted_and_escaped() {
        assert_eq!(details(&[("z", "1"), ("a", "x y/z")]), "a=x+y%2Fz,z=1");
    }

    #[test]
    fn unix_times() {
        let t = parse_unix_time("since", "10.5").unwrap().unwrap();
        assert_eq!(
            t,
            OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(10_500)
        );
        assert_eq!(parse_unix_time("since", "").unwrap(), None);
        let e = parse_unix_time("since", "x").unwrap_err();
        assert_eq!(
            e.message,
            "invalid value for \"since\": invalid timestamp \"x\": invalid seconds \"x\": invalid syntax"
        );
    }
}
