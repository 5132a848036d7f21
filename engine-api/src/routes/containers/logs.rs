//! Producers of log streams: one container on this node (`docker logs`),
//! or every task container of a swarm service or task on every node
//! (`docker service logs`, through the leader's log broker). Each gives the
//! lines already written, then, when following, the lines written later;
//! the HTTP body (see [`super::stream`]) encodes what arrives.

use std::sync::Arc;

use axum::response::Response;
use runtime::logs::reader;
use runtime::logs::reader::Entry;
use runtime::logs::reader::ReadOptions;
use runtime::logs::tasks;
use runtime::view::ContainerInfo;
use tokio::sync::mpsc;

use super::stream::details;
use super::stream::LogFormat;
use super::stream::Tagged;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::AppState;

/// Lines buffered between the readers and the client.
const CHANNEL: usize = 256;

/// `docker logs`: the container's lines; with `follow`, also the later
/// ones while it runs.
pub async fn container(
    s: &AppState,
    c: ContainerInfo,
    format: LogFormat,
    opts: ReadOptions,
    follow: bool,
) -> Response {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let rt = s.runtime.clone();
    tokio::spawn(async move {
        let (lines, follower) = tasks::backlog(&c, opts).await;
        // Details of a task container's own lines: none (an empty prefix).
        let attrs: Arc<str> = Arc::from("");
        for entry in lines {
            let t = Tagged {
                entry,
                attrs: attrs.clone(),
            };
            if tx.send(t).await.is_err() {
                return;
            }
        }
        if follow && c.state.status.is_running() {
            tasks::spawn_follow(&rt, &c, follower, opts, tx, move |entry| Tagged {
                entry,
                attrs: attrs.clone(),
            });
        }
    });
    format.response(rx)
}

/// Which task containers a swarm log stream covers.
pub use swarm::exec::LogSelector as Selector;

/// dockerd's details of a task's line: which node, service and task.
fn swarm_attrs(m: &swarm::exec::LogMessage) -> Arc<str> {
    Arc::from(details(&[
        ("com.docker.swarm.node.id", m.node_id.as_str()),
        ("com.docker.swarm.service.id", m.service_id.as_str()),
        ("com.docker.swarm.task.id", m.task_id.as_str()),
    ]))
}

fn tagged(m: swarm::exec::LogMessage) -> Tagged {
    let attrs = swarm_attrs(&m);
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(m.time_nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Tagged {
        entry: Entry {
            source: if m.stderr {
                reader::Source::Stderr
            } else {
                reader::Source::Stdout
            },
            time,
            line: m.line,
        },
        attrs,
    }
}

/// The `tail` of a service or task log: `all` or a count (per task).
/// A bad one gets dockerd's text with a 400 where dockerd answers 500
/// (api-fixtures/KNOWN_DIFFERENCES.md).
pub fn swarm_tail(raw: Option<&str>) -> Result<Option<usize>, ApiError> {
    let raw = raw.unwrap_or("");
    if raw.is_empty() || raw == "all" {
        return Ok(None);
    }
    let n: i64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request("tail value must be a positive integer or \"all\""))?;
    if n < 0 {
        return Err(ApiError::bad_request("negative tail values not supported"));
    }
    Ok(Some(n as usize))
}

/// `docker service logs`: the lines of every task container of the
/// selection, on every node, through the leader's log broker: oldest first
/// across tasks, `tail` applying per task. With `follow`, the stream then
/// stays open: running containers are followed, and containers of tasks
/// started later are picked up wherever they start, until the client hangs
/// up.
pub async fn swarm(
    s: &AppState,
    selector: Selector,
    format: LogFormat,
    opts: ReadOptions,
    follow: bool,
) -> ApiResult<Response> {
    let m = s.node.manager()?;
    let options = swarm::exec::LogOptions {
        tail: opts.tail,
        since_nanos: opts.since.map(|t| t.unix_timestamp_nanos()),
        follow,
    };
    let mut lines = m.subscribe_logs(selector, options).await?;
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        if follow {
            while let Some(l) = lines.recv().await {
                if tx.send(tagged(l)).await.is_err() {
                    return;
                }
            }
            return;
        }
        // Every node's lines, then one order across them.
        let mut all = Vec::new();
        while let Some(l) = lines.recv().await {
            all.push(l);
        }
        all.sort_by_key(|l| l.time_nanos);
        for l in all {
            if tx.send(tagged(l)).await.is_err() {
                return;
            }
        }
    });
    Ok(format.response(rx))
}

/// `GET /services/{id}/logs` and `GET /tasks/{id}/logs` once the object is
/// resolved: the query read as dockerd reads it, then [`swarm`]. `tty` is
/// whether the task template asks for a terminal (a raw stream then).
pub async fn swarm_request(
    s: &AppState,
    q: &crate::body::Query,
    version: crate::server::version::ApiVersion,
    selector: Selector,
    tty: bool,
) -> ApiResult<Response> {
    let format = LogFormat::from_query(q, tty, version)?;
    let since = super::stream::parse_unix_time("since", q.get("since").map_or("", String::as_str))?;
    let tail = swarm_tail(q.get("tail").map(String::as_str))?;
    let opts = ReadOptions {
        tail,
        since,
        until: None,
    };
    swarm(
        s,
        selector,
        format,
        opts,
        crate::body::query_bool(q, "follow"),
    )
    .await
}
