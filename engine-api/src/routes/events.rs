//! `GET /events`: the daemon's event log as a stream of JSON objects, one a
//! line. `since`/`until` (seconds since the epoch, with an optional
//! fraction: the CLI turns durations and dates into these) replay what the
//! bounded backlog still holds; without `until` the stream follows new
//! events until the client leaves or the daemon stops.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use swarm::events::Message;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::filters::Filters;
use crate::AppState;

/// The events route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// A `since`/`until` value in nanoseconds since the epoch: `SECONDS` or
/// `SECONDS.FRACTION` (`None` when empty). dockerd's texts for bad ones.
pub fn parse_time(raw: &str) -> Result<Option<i64>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = |part: &str| {
        ApiError::bad_request(format!(
            "strconv.ParseInt: parsing \"{part}\": invalid syntax"
        ))
    };
    let (secs, frac) = match raw.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (raw, None),
    };
    let s: i64 = secs.parse().map_err(|_| bad(secs))?;
    let mut nanos = 0i64;
    if let Some(f) = frac {
        let digits: i64 = f.parse().map_err(|_| bad(f))?;
        // The fraction is read as nanoseconds scaled by its length, so
        // ".5" is half a second and ".000000001" one nanosecond.
        let len = i32::try_from(f.len()).unwrap_or(i32::MAX);
        nanos = if len <= 9 {
            digits.saturating_mul(10i64.pow((9 - len) as u32))
        } else {
            digits / 10i64.saturating_pow((len - 9) as u32)
        };
    }
    Ok(Some(s.saturating_mul(1_000_000_000).saturating_add(nanos)))
}

/// Whether `m` passes the request's filters (dockerd's rules: `type` and
/// `event` exact, object keys by ID or name prefix, `image` exact on ID or
/// name with or without tag, every `label` present).
pub fn include(f: &Filters, m: &Message) -> bool {
    let attr = |k: &str| m.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    // A bare `health_status` or `exec_start` names the family of actions
    // that carry a detail after a colon.
    let fuzzy_event = f
        .get("event")
        .any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start"));
    let event_ok = if fuzzy_event {
        f.prefix("event", &m.action)
    } else {
        f.exact("event", &m.action)
    };
    let by_name = |kind: &str| {
        // dockerd checks it against every event's ID and name, whatever
        // the event's type.
        !f.contains(kind)
            || (f.get(kind).any(|v| m.actor.id.starts_with(v.as_str()))
                || f.get(kind).any(|v| attr("name").starts_with(v.as_str())))
    };
    let image_name = if m.kind == "image" {
        attr("name")
    } else {
        attr("image")
    };
    let image_ok = !f.contains("image")
        || [
            m.actor.id.as_str(),
            image_name,
            strip_tag(&m.actor.id),
            strip_tag(image_name),
        ]
        .iter()
        .any(|c| f.get("image").any(|v| v == c));
    event_ok
        && f.exact("type", &m.kind)
        && f.exact("scope", &m.scope)
        && [
            "daemon",
            "container",
            "plugin",
            "volume",
            "network",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| by_name(k))
        && image_ok
        && labels_ok(f, m)
}

fn labels_ok(f: &Filters, m: &Message) -> bool {
    f.get("label").all(|want| match want.split_once('=') {
        Some((k, v)) => m.actor.attributes.get(k).is_some_and(|have| have == v),
        None => m.actor.attributes.contains_key(want.as_str()),
    })
}

/// `busybox:latest` -> `busybox`; a digest goes too; a registry port stays.
fn strip_tag(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(n, _)| n);
    match image.rfind(':') {
        Some(i) if !image[i + 1..].contains('/') => &image[..i],
        _ => image,
    }
}

fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn line(m: &Message) -> Result<bytes::Bytes, std::io::Error> {
    let mut v = serde_json::to_vec(m).map_err(std::io::Error::other)?;
    v.push(b'\n');
    Ok(v.into())
}

async fn events(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> Result<Response, ApiError> {
    let raw = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (since_raw, until_raw) = (raw("since"), raw("until"));
    let since = parse_time(&since_raw)?;
    let until = parse_time(&until_raw)?;
    if let (Some(u), s) = (until, since) {
        if u < s.unwrap_or(0) {
            return Err(ApiError::bad_request(format!(
                "`since` time ({since_raw}) cannot be after `until` time ({until_raw})"
            )));
        }
    }
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    let sub = s.events.subscribe();
    let past: Vec<Message> = swarm::events::replay(&sub.backlog, since, until)
        .into_iter()
        .filter(|m| include(&filters, m))
        .cloned()
        .collect();
    let only_past = until.is_some_and(|u| u <= now_nanos());
    let replayed = futures::stream::iter(past.into_iter().map(|m| line(&m)));
    if only_past {
        return Ok(json_stream(Body::from_stream(replayed)));
    }
    // Follow until `until`, the client's departure (the body is dropped) or
    // the daemon's stop.
    let deadline = until.map(|u| {
        let left = u.saturating_sub(now_nanos()).max(0);
        tokio::time::Instant::now() + Duration::from_nanos(left as u64)
    });
    let closed = s.events.closed();
    let state = (sub.rx, filters, deadline, closed);
    let live = futures::stream::unfold(state, |(mut rx, f, deadline, closed)| async move {
        let until = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until);
        loop {
            let m = tokio::select! {
                _ = closed.cancelled() => return None,
                _ = &mut until => return None,
                r = rx.recv() => match r {
                    Ok(m) => m,
                    // A follower that fell behind loses those events, as
                    // dockerd drops what a slow reader does not take.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                },
            };
            if include(&f, &m) {
                return Some((line(&m), (rx, f, deadline, closed)));
            }
        }
    });
    Ok(json_stream(Body::from_stream(futures::StreamExt::chain(
        replayed, live,
    ))))
}

fn json_stream(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests;
