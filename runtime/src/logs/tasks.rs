//! The logs of this node's task containers for a swarm log subscription
//! (`docker service logs` and `docker service ps`'s task logs): the lines
//! already written, oldest first per container; when following, the lines
//! written later and those of containers of tasks that start later, until
//! the subscriber hangs up.

use std::collections::HashSet;
use std::time::Duration;

use swarm::exec::LogMessage;
use swarm::exec::LogOptions;
use swarm::exec::LogSelector;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::reader;
use super::reader::Entry;
use super::reader::Follower;
use super::reader::ReadOptions;
use super::reader::Source;
use crate::exec::NodeEnv;
use crate::view::ContainerInfo;
use crate::Containerd;

/// How often a followed selection is checked for new task containers.
const DISCOVER: Duration = Duration::from_secs(1);

/// Reads a container's log off the async runtime (it is file I/O).
pub async fn backlog(c: &ContainerInfo, opts: ReadOptions) -> (Vec<Entry>, Follower) {
    let path = c.log_path.clone();
    let fallback = Follower::at_start(&path);
    tokio::task::spawn_blocking(move || reader::read(&path, &opts))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or((Vec::new(), fallback))
}

/// Follows a running container's log until its process exits (and the log
/// has settled) or the receiver of `tx` goes away; each line through `wrap`.
pub fn spawn_follow<T: Send + 'static>(
    rt: &Containerd,
    c: &ContainerInfo,
    follower: Follower,
    opts: ReadOptions,
    tx: mpsc::Sender<T>,
    wrap: impl Fn(Entry) -> T + Send + 'static,
) {
    let rt = rt.clone();
    let id = c.id.clone();
    tokio::spawn(async move {
        let exited = async {
            let _ = rt.task_wait(&id).await;
        };
        reader::follow(follower, opts, exited, tx, wrap).await;
    });
}

fn matches(sel: &LogSelector, c: &ContainerInfo) -> bool {
    match sel {
        LogSelector::Service(id) => c.service_id() == id,
        LogSelector::Task(id) => c.task_id() == id,
    }
}

/// A line of container `c` as the broker carries it.
fn message_of(c: &ContainerInfo) -> impl Fn(Entry) -> LogMessage + Send + 'static {
    let (node, service, task) = (
        c.node_id().to_string(),
        c.service_id().to_string(),
        c.task_id().to_string(),
    );
    move |e: Entry| LogMessage {
        node_id: node.clone(),
        service_id: service.clone(),
        task_id: task.clone(),
        stderr: e.source == Source::Stderr,
        time_nanos: e.time.unix_timestamp_nanos(),
        line: e.line,
    }
}

fn read_options(opts: &LogOptions) -> ReadOptions {
    ReadOptions {
        tail: opts.tail,
        since: opts
            .since_nanos
            .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok()),
        until: None,
    }
}

/// Sends the selected task containers' lines to `tx` (see the module doc).
pub async fn task_logs(
    rt: &Containerd,
    env: &NodeEnv,
    sel: &LogSelector,
    opts: &LogOptions,
    tx: mpsc::Sender<LogMessage>,
) -> crate::Result<()> {
    let read = read_options(opts);
    let mine: Vec<ContainerInfo> = rt
        .container_infos(env)
        .await?
        .into_iter()
        .filter(|c| matches(sel, c))
        .collect();
    let mut merged: Vec<LogMessage> = Vec::new();
    let mut followers = Vec::new();
    for c in &mine {
        let (lines, follower) = backlog(c, read).await;
        let wrap = message_of(c);
        merged.extend(lines.into_iter().map(&wrap));
        followers.push((c, follower));
    }
    merged.sort_by_key(|m| m.time_nanos);
    for m in merged {
        if tx.send(m).await.is_err() {
            return Ok(());
        }
    }
    if !opts.follow {
        return Ok(());
    }
    // Later lines carry no tail: everything after this point is new.
    let live = ReadOptions { tail: None, ..read };
    for (c, follower) in followers {
        if c.state.status.is_running() {
            spawn_follow(rt, c, follower, live, tx.clone(), message_of(c));
        }
    }
    let seen: HashSet<String> = mine.iter().map(|c| c.id.clone()).collect();
    discover(rt, env, sel, seen, live, tx).await;
    Ok(())
}

/// Picks up the containers of tasks that start while a selection is
/// followed, until the receiver of `tx` goes away.
async fn discover(
    rt: &Containerd,
    env: &NodeEnv,
    sel: &LogSelector,
    mut seen: HashSet<String>,
    opts: ReadOptions,
    tx: mpsc::Sender<LogMessage>,
) {
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(DISCOVER) => {}
        }
        let Ok(all) = rt.container_infos(env).await else {
            continue;
        };
        for c in all.iter().filter(|c| matches(sel, c)) {
            // A container made but not started yet is looked at again later.
            if c.state.status == crate::view::state::Status::Created || !seen.insert(c.id.clone()) {
                continue;
            }
            let follower = Follower::at_start(&c.log_path);
            if c.state.status.is_running() {
                spawn_follow(rt, c, follower, opts, tx.clone(), message_of(c));
                continue;
            }
            // Started and ended between two looks: all of it is new.
            let (lines, _) = backlog(c, opts).await;
            let wrap = message_of(c);
            for entry in lines {
                if tx.send(wrap(entry)).await.is_err() {
                    return;
                }
            }
        }
    }
}
