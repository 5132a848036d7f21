//! The orchestrator driver: watches commits, reconciles the services they
//! touched, and commits the resulting actions in one transaction per batch
//! (in raft entries of a bounded size: `Store::update_batched`).
//! It owns the updater's memory of each update in progress
//! ([`update::Run`]) and the wake-ups the reconcilers ask for (restart
//! delays, update delays, monitoring periods, held stop-first starts).

use std::collections::BTreeSet;
use std::collections::HashMap;
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
use super::update;
use super::Action;
use super::Pass;
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

/// The updater's memory, one run per service with an update in progress.
type Runs = HashMap<String, update::Run>;

fn plan_for(
    tx: &Tx<'_>,
    s: &Service,
    nodes: &[Node],
    now: time::OffsetDateTime,
    runs: &mut Runs,
) -> Plan {
    let sid = s.api.id.clone().unwrap_or_default();
    let mut owned = tx.tasks_by_service(&sid);
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
    let pass = Pass {
        now,
        now_str: &now_str,
        nodes,
    };
    let run = runs.entry(sid.clone()).or_default();
    let mut plan = if global {
        global::reconcile(s, &tasks, &pass, run)
    } else if mode.replicated_job.is_some() {
        jobs::reconcile(s, &tasks, now, &now_str)
    } else {
        replicated::reconcile(s, &tasks, &pass, run)
    };
    if run.is_idle() {
        runs.remove(&sid);
    }
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
        Action::Remove(id) => match tx.get::<Task>(&id) {
            Some(mut t) if t.desired_state() != TaskState::REMOVE => {
                t.api.desired_state = Some(TaskState::REMOVE);
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
        Action::Start(id) => match tx.get::<Task>(&id) {
            Some(mut t) if t.desired_state() < TaskState::RUNNING => {
                t.api.desired_state = Some(TaskState::RUNNING);
                tx.update(t)
            }
            _ => Ok(()),
        },
        Action::Rollback(sid, message) => match tx.get::<Service>(&sid) {
            Some(s) => match rolled_back(s, message) {
                Some(s) => tx.update(s),
                None => Ok(()),
            },
            None => Ok(()),
        },
    }
}

/// The service put back on its previous spec by a failed update, as
/// swarmkit's updater does it: the previous spec is used up, the status
/// says why. `None` when there is no previous spec to go back to (swarmkit
/// then leaves the service as it is).
pub(super) fn rolled_back(mut s: Service, message: String) -> Option<Service> {
    let prev = s.previous_spec.take()?;
    s.api.spec = Some(prev);
    s.spec_version += 1;
    let st = s.api.update_status.get_or_insert_with(Default::default);
    st.state = Some(api::ServiceUpdateStatusStateEnum::ROLLBACK_STARTED);
    st.message = Some(message);
    st.completed_at = None;
    Some(s)
}

/// Reconciles `dirty` services (all when `None`); returns, for every service
/// reconciled, when to look at it again (restart delays, update delays and
/// monitoring periods), which replaces any earlier wake-up of that service.
async fn pass(
    store: &Store,
    dirty: Option<&HashSet<String>>,
    runs: &mut Runs,
) -> crate::Result<Vec<(String, Option<Duration>)>> {
    store
        .update_batched(|tx| {
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
                        let plan = plan_for(tx, &s, &nodes, now, runs);
                        wakes.push((sid.clone(), plan.wake_after));
                        plan.actions
                    }
                    None => {
                        runs.remove(&sid);
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
    let mut wakes: BTreeSet<(Instant, String)> = BTreeSet::new();
    let mut wake_of: HashMap<String, Instant> = HashMap::new();
    let mut runs = Runs::new();
    loop {
        let scope = if all { None } else { Some(&dirty) };
        match pass(&store, scope, &mut runs).await {
            Ok(ws) => {
                for (sid, d) in ws {
                    if let Some(at) = wake_of.remove(&sid) {
                        wakes.remove(&(at, sid.clone()));
                    }
                    if let Some(d) = d {
                        let at = Instant::now() + d;
                        wakes.insert((at, sid.clone()));
                        wake_of.insert(sid, at);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "orchestrator pass failed"),
        }
        all = false;
        dirty.clear();
        let next_wake = wakes.first().map(|(at, _)| *at);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async { match next_wake { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                let now = Instant::now();
                while let Some((at, _)) = wakes.first() {
                    if *at > now {
                        break;
                    }
                    if let Some((_, sid)) = wakes.pop_first() {
                        wake_of.remove(&sid);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::api::ServiceUpdateStatusStateEnum as U;

    fn spec(image: &str) -> api::ServiceSpec {
        let mut s = crate::orchestrator::sim::spec(1, image);
        s.name = Some("web".into());
        s
    }

    #[tokio::test]
    async fn rollback_and_start_are_committed() {
        let store = Store::in_memory();
        let mut s = Service::default();
        s.api.id = Some("svc".into());
        s.api.spec = Some(spec("app:2"));
        s.previous_spec = Some(spec("app:1"));
        s.spec_version = 2;
        s.api.update_status = Some(api::ServiceUpdateStatus {
            state: Some(U::UPDATING),
            started_at: Some("2026-01-01T00:00:00Z".into()),
            message: Some("update in progress".into()),
            completed_at: None,
        });
        let mut t = crate::orchestrator::new_task(&s, Some(1), None, "now");
        t.api.id = Some("t1".into());
        t.api.desired_state = Some(TaskState::READY);
        store
            .update(|tx| {
                tx.create(s.clone())?;
                tx.create(t.clone())
            })
            .await
            .unwrap();
        store
            .update(|tx| {
                apply(tx, Action::Start("t1".into()))?;
                apply(tx, Action::Rollback("svc".into(), "why".into()))
            })
            .await
            .unwrap();
        let (s, t) = store.view(|tx| {
            (
                tx.get::<Service>("svc").unwrap().clone(),
                tx.get::<Task>("t1").unwrap().clone(),
            )
        });
        assert_eq!(t.desired_state(), TaskState::RUNNING);
        assert_eq!(s.api.spec, Some(spec("app:1")));
        assert_eq!(s.previous_spec, None);
        assert_eq!(s.spec_version, 3);
        let st = s.api.update_status.unwrap();
        assert_eq!(st.state, Some(U::ROLLBACK_STARTED));
        assert_eq!(st.message.as_deref(), Some("why"));
        assert_eq!(st.started_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        // Without a previous spec there is nothing to go back to.
        store
            .update(|tx| apply(tx, Action::Rollback("svc".into(), "again".into())))
            .await
            .unwrap();
        let again = store.view(|tx| tx.get::<Service>("svc").unwrap().clone());
        assert_eq!(again.spec_version, 3);
    }
}
