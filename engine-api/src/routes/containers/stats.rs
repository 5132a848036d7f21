//! `GET /containers/{id}/stats` and `GET /containers/{id}/top`.
//!
//! Stats come as dockerd sends them: with `stream` (the default) one JSON
//! object a second, each carrying the one before as `precpu_stats` and
//! `preread`, until the client goes (zeros while the container does not
//! run); with `stream=false` one object after two readings a second
//! apart, so the CLI can compute CPU use from it; with `one-shot` (API
//! 1.41+) a single reading at once. A container that is not running
//! answers `stream=false` with one object of zeros.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Extension;
use axum::Json;
use runtime::view::stats::BlkioEntry;
use runtime::view::stats::BlkioStats;
use runtime::view::stats::CpuStats;
use runtime::view::stats::Sample;
use runtime::view::ContainerInfo;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;
use time::OffsetDateTime;

use crate::body::query_bool;
use crate::error::ApiResult;
use crate::server::version::ApiVersion;
use crate::AppState;

/// dockerd's collection interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// Go's zero time, dockerd's `preread` before a previous reading exists.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn timestamp(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| ZERO_TIME.into())
}

/// An object without the members that are zero, empty or null (Go's
/// `omitempty`).
fn omit_empty(pairs: Vec<(&str, Value)>) -> Value {
    let m: Map<String, Value> = pairs
        .into_iter()
        .filter(|(_, v)| match v {
            Value::Null => false,
            Value::Number(n) => n.as_u64() != Some(0),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        })
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Value::Object(m)
}

fn cpu_json(c: Option<&CpuStats>) -> Value {
    let zero = CpuStats::default();
    let c = c.unwrap_or(&zero);
    let mut usage = json!({
        "total_usage": c.total,
        "usage_in_kernelmode": c.kernel,
        "usage_in_usermode": c.user,
    });
    if !c.percpu.is_empty() {
        usage["percpu_usage"] = json!(c.percpu);
    }
    let mut out = omit_empty(vec![
        ("system_cpu_usage", json!(c.system)),
        ("online_cpus", json!(c.online_cpus)),
    ]);
    out["cpu_usage"] = usage;
    out["throttling_data"] = json!({
        "periods": c.periods,
        "throttled_periods": c.throttled_periods,
        "throttled_time": c.throttled_time,
    });
    out
}

/// The eight counter lists of `blkio_stats`: dockerd fills all of them
/// (as lists, empty or not) from cgroup v1 but only the bytes, when
/// there are any, from v2; the rest are null.
fn blkio_stats(b: Option<&BlkioStats>) -> Value {
    let list = |entries: &[BlkioEntry], listed: bool| -> Value {
        if entries.is_empty() && !listed {
            return Value::Null;
        }
        entries
            .iter()
            .map(|e| json!({ "major": e.major, "minor": e.minor, "op": e.op, "value": e.value }))
            .collect()
    };
    let v1 = b.is_some_and(|b| b.v1);
    let none: &[BlkioEntry] = &[];
    let bytes = b.map_or(none, |b| &b.service_bytes[..]);
    let serviced = b.map_or(none, |b| &b.serviced[..]);
    json!({
        "io_service_bytes_recursive": list(bytes, v1),
        "io_serviced_recursive": list(serviced, v1),
        "io_queue_recursive": list(none, v1),
        "io_service_time_recursive": list(none, v1),
        "io_wait_time_recursive": list(none, v1),
        "io_merged_recursive": list(none, v1),
        "io_time_recursive": list(none, v1),
        "sectors_recursive": list(none, v1),
    })
}

/// One stats object: the reading `cur` (none: the zeros of a container
/// that does not run) with `pre` as its previous one.
pub fn render(c: &ContainerInfo, cur: Option<&Sample>, pre: Option<&Sample>) -> Value {
    let memory = cur.map_or(json!({}), |s| {
        let m = &s.memory;
        omit_empty(vec![
            ("usage", json!(m.usage)),
            ("max_usage", json!(m.max_usage)),
            ("stats", json!(m.stats)),
            ("failcnt", json!(m.failcnt)),
            ("limit", json!(m.limit)),
        ])
    });
    let mut out = json!({
        "name": format!("/{}", c.name),
        "id": c.id,
        "read": timestamp(cur.map(|s| s.read)),
        "preread": timestamp(pre.map(|s| s.read)),
        "pids_stats": cur.map_or(json!({}), |s| omit_empty(vec![
            ("current", json!(s.pids_current)),
            ("limit", json!(s.pids_limit)),
        ])),
        "blkio_stats": blkio_stats(cur.map(|s| &s.blkio)),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(cur.map(|s| &s.cpu)),
        "precpu_stats": cpu_json(pre.map(|s| &s.cpu)),
        "memory_stats": memory,
    });
    if let Some(s) = cur.filter(|s| !s.networks.is_empty()) {
        let nets: Map<String, Value> = s
            .networks
            .iter()
            .map(|(name, n)| {
                (
                    name.clone(),
                    json!({
                        "rx_bytes": n.rx_bytes,
                        "rx_packets": n.rx_packets,
                        "rx_errors": n.rx_errors,
                        "rx_dropped": n.rx_dropped,
                        "tx_bytes": n.tx_bytes,
                        "tx_packets": n.tx_packets,
                        "tx_errors": n.tx_errors,
                        "tx_dropped": n.tx_dropped,
                    }),
                )
            })
            .collect();
        out["networks"] = Value::Object(nets);
    }
    out
}

/// A reading of the container, or none once its process is gone.
async fn read(pid: u32) -> Option<Sample> {
    if pid == 0 {
        return None;
    }
    tokio::task::spawn_blocking(move || runtime::view::stats::sample(pid).ok())
        .await
        .ok()
        .flatten()
}

fn json_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /containers/{id}/stats`.
pub(crate) async fn stats(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let c = super::find(&s, &id).await?;
    let stream = q.get("stream").is_none_or(|_| query_bool(&q, "stream"));
    let one_shot = !stream && version.at_least(41) && query_bool(&q, "one-shot");
    let pid = if c.state.status.is_running() {
        c.state.pid
    } else {
        0
    };
    if !stream {
        let first = read(pid).await;
        let (pre, cur) = match first {
            Some(f) if !one_shot => {
                tokio::time::sleep(INTERVAL).await;
                (Some(f), read(pid).await)
            }
            f => (None, f),
        };
        let body = render(&c, cur.as_ref(), pre.as_ref().filter(|_| cur.is_some()));
        return Ok(json_response(Body::from(format!("{body}\n"))));
    }
    // Streaming: one object a second, each after the one before, until
    // the client goes; once the process is gone (or when it never ran)
    // the objects are zeros, as dockerd's collector publishes them.
    let frames = futures::stream::unfold(
        (c, None::<Sample>, true),
        move |(c, pre, first)| async move {
            if !first {
                tokio::time::sleep(INTERVAL).await;
            }
            let cur = read(pid).await;
            let line = format!("{}\n", render(&c, cur.as_ref(), pre.as_ref()));
            Some((Ok::<_, std::convert::Infallible>(line), (c, cur, false)))
        },
    );
    Ok(json_response(Body::from_stream(frames)))
}

/// `GET /containers/{id}/top`.
pub(crate) async fn top(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Value>> {
    let c = super::find(&s, &id).await?;
    let ps_args = q.get("ps_args").map_or("", String::as_str);
    let top = s.runtime.container_top(&c, ps_args).await?;
    Ok(Json(
        json!({ "Titles": top.titles, "Processes": top.processes }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lists_are_empty_on_v1_and_null_on_v2() {
        let v1 = BlkioStats {
            v1: true,
            ..Default::default()
        };
        let j = blkio_stats(Some(&v1));
        assert_eq!(j["io_service_bytes_recursive"], json!([]));
        assert_eq!(j["sectors_recursive"], json!([]));
        let v2 = BlkioStats {
            service_bytes: vec![BlkioEntry {
                major: 8,
                minor: 0,
                op: "read".into(),
                value: 4096,
            }],
            ..Default::default()
        };
        let j = blkio_stats(Some(&v2));
        assert_eq!(j["io_service_bytes_recursive"][0]["value"], 4096);
        assert!(j["io_serviced_recursive"].is_null());
        assert!(blkio_stats(None)["io_service_bytes_recursive"].is_null());
    }

    #[test]
    fn zeros_are_left_out_as_go_omits_them() {
        let j = omit_empty(vec![
            ("usage", json!(0)),
            ("limit", json!(5)),
            ("stats", json!({})),
        ]);
        assert_eq!(j, json!({ "limit": 5 }));
        let cpu = cpu_json(None);
        assert_eq!(cpu["cpu_usage"]["total_usage"], 0);
        assert!(cpu.get("system_cpu_usage").is_none());
        assert!(cpu["cpu_usage"].get("percpu_usage").is_none());
    }
}
