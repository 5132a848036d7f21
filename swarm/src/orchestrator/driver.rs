//! The orchestrator driver: watches commits, reconciles the services they
//! touched, and commits the resulting actions in one transaction per batch.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::global;
use super::jobs;
use super::reaper;
use super::replicated;
use super::Action;
use super::Plan;
use crate::model::api;
use crate::model::api::TaskState;
use crate::model::Node;
use crate::model::Object;
use crate::model::Service;
use crate::model::Task;
use crate::store::Store;
use crate::store::Tx;
use crate::store::Watched;

/// How long the orchestrator waits after a change for more before a pass.
const BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// Starts the orchestrator loop in `set`; it stops when `cancel` fires.
pub fn spawn_all(store: Arc<Store>, set: &mut JoinSet<()>, cancel: CancellationToken) {
    set.spawn(run(store, cancel));
}

const DEFAULT_HISTORY: i64 = 5;

/// Whether tasks on this node must move elsewhere: it is gone, down or drained.
fn node_lost(nodes: &[Node], id: &str) -> bool {
    match nodes.iter().find(|n| n.api.id.as_deref() == Some(id)) {
        None => true,
        Some(n) => {
            let down = n.api.status.as_ref().and_then(|st| st.state) == Some(api::NodeState::DOWN);
            let drained = n.api.spec.as_ref().and_then(|sp| sp.availability)
                == Some(api::NodeSpecAvailabilityEnum::DRAIN);
            down || drained
        }
    }
}

/// Shuts down current tasks of a slot-based service whose node was lost, and
/// marks the copies so the reconciler refills their slots at once.
fn evict(tasks: &mut [Task], nodes: &[Node]) -> Vec<Action> {
    let mut out = Vec::new();
    for t in tasks.iter_mut() {
        let lost = t.node_id().is_some_and(|n| node_lost(nodes, n));
        if lost && super::is_wanted(t) && super::is_alive(t) {
            t.api.desired_state = Some(TaskState::SHUTDOWN);
            out.push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
        }
    }
    out
}

fn plan_for(tx: &Tx<'_>, s: &Service, nodes: &[Node], now: time::OffsetDateTime) -> Plan {
    let mut owned = tx.tasks_by_service(s.api.id.as_deref().unwrap_or(""));
    let mode = s.spec().mode.clone().unwrap_or_default();
    let global = mode.global.is_some() || mode.global_job.is_some();
    // Global services decide per node themselves.
    let evicted = if global {
        Vec::new()
    } else {
        evict(&mut owned, nodes)
    };
    let tasks: Vec<&Task> = owned.iter().collect();
    let now_str = tx.now().to_string();
    let mut plan = if global {
        global::reconcile(s, &tasks, nodes, now, &now_str)
    } else if mode.replicated_job.is_some() {
        jobs::reconcile(s, &tasks, now, &now_str)
    } else {
        replicated::reconcile(s, &tasks, now, &now_str)
    };
    plan.actions.splice(0..0, evicted);
    let limit = tx
        .cluster()
        .and_then(|c| c.api.spec?.orchestration?.task_history_retention_limit)
        .unwrap_or(DEFAULT_HISTORY);
    plan.actions.extend(reaper::trim(&tasks, limit));
    plan
}

fn apply(tx: &mut Tx<'_>, a: Action) -> crate::Result<()> {
    match a {
        Action::Create(t) => tx.create(*t),
        Action::Shutdown(id) => match tx.get::<Task>(&id) {
            Some(mut t)
                if t.desired_state() < TaskState::SHUTDOWN
                    || t.desired_state() == TaskState::COMPLETE =>
            {
                t.api.desired_state = Some(TaskState::SHUTDOWN);
                tx.update(t)
            }
            _ => Ok(()),
        },
        Action::Delete(id) => match tx.get::<Task>(&id) {
            Some(_) => tx.delete::<Task>(&id),
            None => Ok(()),
        },
        Action::Bless(id, v) => match tx.get::<Task>(&id) {
            Some(mut t) if t.spec_version != v => {
                t.spec_version = v;
                tx.update(t)
            }
            _ => Ok(()),
        },
        Action::UpdateStatus(sid, st) => match tx.get::<Service>(&sid) {
            Some(mut s) => {
                s.api.update_status = Some(st);
                tx.update(s)
            }
            None => Ok(()),
        },
    }
}

/// Reconciles `dirty` services (all when `None`); returns restart wake-ups.
async fn pass(
    store: &Store,
    dirty: Option<&HashSet<String>>,
) -> crate::Result<Vec<(Duration, String)>> {
    store
        .update(|tx| {
            let now = time::OffsetDateTime::now_utc();
            let nodes = tx.list::<Node>();
            let ids: Vec<String> = match dirty {
                Some(d) => d.iter().cloned().collect(),
                None => tx
                    .list::<Service>()
                    .into_iter()
                    .filter_map(|s| s.api.id)
                    .collect(),
            };
            let mut wakes = Vec::new();
            for sid in ids {
                let actions = match tx.get::<Service>(&sid) {
                    Some(s) => {
                        let plan = plan_for(tx, &s, &nodes, now);
                        if let Some(d) = plan.wake_after {
                            wakes.push((d, sid.clone()));
                        }
                        plan.actions
                    }
                    None => {
                        let owned = tx.tasks_by_service(&sid);
                        reaper::orphans(&owned.iter().collect::<Vec<_>>())
                    }
                };
                for a in actions {
                    apply(tx, a)?;
                }
            }
            Ok(wakes)
        })
        .await
}

fn touched(c: &crate::store::Commit, dirty: &mut HashSet<String>) -> bool {
    let mut all = false;
    for e in &c.events {
        match &e.object {
            Some(Object::Service(s)) => {
                dirty.insert(s.api.id.clone().unwrap_or_default());
            }
            Some(Object::Task(t)) => {
                dirty.insert(t.service_id().to_string());
            }
            Some(Object::Node(_)) | Some(Object::Cluster(_)) | None => all = true,
            _ => {}
        }
    }
    all
}

async fn run(store: Arc<Store>, cancel: CancellationToken) {
    let mut rx = store.subscribe();
    let mut all = true;
    let mut dirty: HashSet<String> = HashSet::new();
    let mut wakes: BTreeMap<Instant, String> = BTreeMap::new();
    loop {
        let scope = if all { None } else { Some(&dirty) };
        match pass(&store, scope).await {
            Ok(ws) => {
                for (d, sid) in ws {
                    wakes.insert(Instant::now() + d, sid);
                }
            }
            Err(e) => tracing::warn!(error = %e, "orchestrator pass failed"),
        }
        all = false;
        dirty.clear();
        let next_wake = wakes.keys().next().copied();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async { match next_wake { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                let due: Vec<Instant> = wakes.range(..=now).map(|(k, _)| *k).collect();
                for k in due {
                    if let Some(sid) = wakes.remove(&k) {
                        dirty.insert(sid);
                    }
                }
            }
            w = Watched::next(&mut rx, &cancel) => match w {
                Some(Watched::Commit(c)) => all |= touched(&c, &mut dirty),
                Some(Watched::Lagged) => all = true,
                None => return,
            }
        }
        let Some(rest) = Watched::burst(&mut rx, &cancel, BATCH_DELAY).await else {
            return;
        };
        for w in rest {
            match w {
                Watched::Commit(c) => all |= touched(&c, &mut dirty),
                Watched::Lagged => all = true,
            }
        }
    }
}
