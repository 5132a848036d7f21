//! Producers of log streams: one container (`docker logs`), or every
//! container of a swarm service or task on this node (`docker service
//! logs`). Each reads the json-file logs already written, then, when
//! following, the lines written later; the HTTP body (see [`super::stream`])
//! encodes what arrives.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use runtime::logs::reader;
use runtime::logs::reader::Entry;
use runtime::logs::reader::Follower;
use runtime::logs::reader::ReadOptions;
use runtime::view::ContainerInfo;
use runtime::Containerd;
use tokio::sync::mpsc;

use super::stream::details;
use super::stream::LogFormat;
use super::stream::Tagged;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::AppState;

/// Lines buffered between the readers and the client.
const CHANNEL: usize = 256;
/// How often a followed service is checked for new task containers.
const DISCOVER: Duration = Duration::from_secs(1);

/// Reads a container's log off the async runtime (it is file I/O).
async fn backlog(c: &ContainerInfo, opts: ReadOptions) -> (Vec<Entry>, Follower) {
    let path = c.log_path.clone();
    let fallback = Follower::at_start(&path);
    tokio::task::spawn_blocking(move || reader::read(&path, &opts))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or((Vec::new(), fallback))
}

/// Follows a running container's log until its process exits (and the log
/// has settled) or the client goes away.
fn spawn_follow(
    rt: &Containerd,
    c: &ContainerInfo,
    follower: Follower,
    opts: ReadOptions,
    attrs: Arc<str>,
    tx: mpsc::Sender<Tagged>,
) {
    let rt = rt.clone();
    let id = c.id.clone();
    tokio::spawn(async move {
        let exited = async {
            let _ = rt.task_wait(&id).await;
        };
        reader::follow(follower, opts, exited, tx, move |entry| Tagged {
            entry,
            attrs: attrs.clone(),
        })
        .await;
    });
}

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
        let (lines, follower) = backlog(&c, opts).await;
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
            spawn_follow(&rt, &c, follower, opts, attrs, tx);
        }
    });
    format.response(rx)
}

/// Which task containers a swarm log stream covers.
#[derive(Debug, Clone)]
pub enum Selector {
    /// Every task of the service with this ID.
    Service(String),
    /// The task with this ID.
    Task(String),
}

impl Selector {
    fn matches(&self, c: &ContainerInfo) -> bool {
        match self {
            Selector::Service(id) => c.service_id() == id,
            Selector::Task(id) => c.task_id() == id,
        }
    }
}

/// dockerd's details of a task's line: which node, service and task.
fn swarm_attrs(c: &ContainerInfo) -> Arc<str> {
    Arc::from(details(&[
        ("com.docker.swarm.node.id", c.node_id()),
        ("com.docker.swarm.service.id", c.service_id()),
        ("com.docker.swarm.task.id", c.task_id()),
    ]))
}

/// The `tail` of a service or task log: `all` or a count (per task).
pub fn swarm_tail(raw: Option<&str>) -> Result<Option<usize>, ApiError> {
    let raw = raw.unwrap_or("");
    if raw.is_empty() || raw == "all" {
        return Ok(None);
    }
    let n: i64 = raw.parse().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "tail value must be a positive integer or \"all\"",
        )
    })?;
    if n < 0 {
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "negative tail values not supported",
        ));
    }
    Ok(Some(n as usize))
}

/// `docker service logs`: the lines of every task container of the
/// selection on this node, oldest first across tasks, `tail` applying per
/// task. With `follow`, the stream then stays open: running containers are
/// followed, and containers of tasks started later are picked up, until
/// the client hangs up.
pub async fn swarm(
    s: &AppState,
    selector: Selector,
    format: LogFormat,
    opts: ReadOptions,
    follow: bool,
) -> ApiResult<Response> {
    let env = super::node_env(s);
    // Logs are gathered from the nodes' engines; one whose containerd is
    // away has none to give, and the others' lines still come (dockerd
    // likewise skips nodes it cannot reach).
    let all = match s.runtime.container_infos(&env).await {
        Ok(all) => all,
        Err(e) if e.kind() == runtime::ErrorKind::Unavailable => {
            tracing::warn!(error = %e, "service logs: this node's containerd is not reachable");
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let mine: Vec<ContainerInfo> = all.into_iter().filter(|c| selector.matches(c)).collect();
    let (tx, rx) = mpsc::channel(CHANNEL);
    let rt = s.runtime.clone();
    tokio::spawn(async move {
        let mut merged: Vec<Tagged> = Vec::new();
        let mut followers = Vec::new();
        for c in &mine {
            let (lines, follower) = backlog(c, opts).await;
            let attrs = swarm_attrs(c);
            merged.extend(lines.into_iter().map(|entry| Tagged {
                entry,
                attrs: attrs.clone(),
            }));
            followers.push((c, follower, attrs));
        }
        merged.sort_by_key(|t| t.entry.time);
        for t in merged {
            if tx.send(t).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        // Later lines carry no tail: everything after this point is new.
        let live = ReadOptions { tail: None, ..opts };
        for (c, follower, attrs) in followers {
            if c.state.status.is_running() {
                spawn_follow(&rt, c, follower, live, attrs, tx.clone());
            }
        }
        let seen: HashSet<String> = mine.iter().map(|c| c.id.clone()).collect();
        discover(rt, env, selector, seen, live, tx).await;
    });
    Ok(format.response(rx))
}

/// Picks up the containers of tasks that start while a service log is
/// followed, until the client hangs up.
async fn discover(
    rt: Containerd,
    env: runtime::exec::NodeEnv,
    selector: Selector,
    mut seen: HashSet<String>,
    opts: ReadOptions,
    tx: mpsc::Sender<Tagged>,
) {
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(DISCOVER) => {}
        }
        let Ok(all) = rt.container_infos(&env).await else {
            continue;
        };
        for c in all.iter().filter(|c| selector.matches(c)) {
            // A container made but not started yet is looked at again later.
            if c.state.status == runtime::view::state::Status::Created || !seen.insert(c.id.clone())
            {
                continue;
            }
            let attrs = swarm_attrs(c);
            let follower = Follower::at_start(&c.log_path);
            if c.state.status.is_running() {
                spawn_follow(&rt, c, follower, opts, attrs, tx.clone());
                continue;
            }
            // Started and ended between two looks: all of it is new.
            let (lines, _) = backlog(c, opts).await;
            for entry in lines {
                let t = Tagged {
                    entry,
                    attrs: attrs.clone(),
                };
                if tx.send(t).await.is_err() {
                    return;
                }
            }
        }
    }
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
