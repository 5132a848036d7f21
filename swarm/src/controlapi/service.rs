//! Services: create, inspect, list (with status), update, rollback, remove.

use super::refs;
use super::resolve::resolve;
pub use super::service_spec::normalize;
pub use super::service_spec::with_defaults;
use super::validate;
use crate::allocator::ports;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api;
use crate::model::new_id;
use crate::model::Kind;
use crate::model::Network;
use crate::model::Service;
use crate::model::StoreObject;
use crate::model::Task;
use crate::store::Store;
use crate::store::Tx;

/// A random `adjective_name` like the ones dockerd gives unnamed services.
pub fn random_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "quirky", "serene", "vibrant", "witty", "zealous",
    ];
    const NAMES: &[&str] = &[
        "lovelace", "hopper", "turing", "curie", "noether", "ritchie", "thompson", "knuth",
        "hamilton", "liskov", "dijkstra", "torvalds", "babbage", "shannon", "goldberg", "perlman",
    ];
    let a = ADJ[rand::random::<usize>() % ADJ.len()];
    let n = NAMES[rand::random::<usize>() % NAMES.len()];
    format!("{a}_{n}")
}

/// Resolves network references (by name or ID, as `stack deploy` and SDKs
/// send names) to network IDs in the spec that is stored, as dockerd does
/// before it hands a spec to swarmkit (moby `daemon/cluster`
/// `populateNetworkID`): the task template's list, or the deprecated
/// service-level `Networks` when the template has none (then the
/// service-level list is kept as sent).
fn resolve_networks(tx: &Tx<'_>, spec: &mut api::ServiceSpec) -> Result<()> {
    let view = tx.base_view();
    let template = spec
        .task_template
        .as_mut()
        .and_then(|t| t.networks.as_mut())
        .filter(|l| !l.is_empty());
    let list = match template {
        Some(l) => l,
        None => match spec.networks.as_mut() {
            Some(l) => l,
            None => return Ok(()),
        },
    };
    for n in list.iter_mut() {
        let target = n.target.clone().unwrap_or_default();
        let net = resolve::<Network>(&view, &target)
            .map_err(|_| Error::not_found(Kind::Network, &target))?;
        n.target = Some(net.id().to_string());
    }
    Ok(())
}

/// The ingress ports in use by other services: (port, protocol) -> (name, id).
/// Computes `Endpoint` for a spec: published ports (assigning dynamic ones
/// from 30000-32767) and the endpoint spec; refuses ports in use.
fn endpoint(
    tx: &Tx<'_>,
    id: &str,
    spec: &api::ServiceSpec,
    prev: Option<&api::ServiceEndpoint>,
) -> Result<api::ServiceEndpoint> {
    // By reference: the write transaction has changed no service yet here.
    let stored: Vec<&Service> = tx.base_view().tables().iter::<Service>().collect();
    ports::check_published_ports(stored.iter().copied(), id, spec)?;
    let previous = prev.and_then(|e| e.ports.clone()).unwrap_or_default();
    let published = ports::assign_ports(stored.iter().copied(), id, spec, &previous)?;
    let networks = spec.networks.iter().flatten().count()
        + spec
            .task_template
            .as_ref()
            .map_or(0, |t| t.networks.iter().flatten().count());
    let allocated = !published.is_empty() || networks > 0;
    Ok(api::ServiceEndpoint {
        spec: Some(crate::allocator::vip::endpoint_spec_view(spec, allocated)),
        ports: (!published.is_empty()).then_some(published),
        virtual_ips: prev.and_then(|e| e.virtual_ips.clone()),
    })
}

/// `POST /services/create`; returns the new ID.
/// `registry_auth` is the request's `X-Registry-Auth`, kept for the nodes'
/// image pulls.
pub async fn create(
    store: &Store,
    spec: api::ServiceSpec,
    registry_auth: Option<String>,
) -> Result<String> {
    let mut spec = normalize(spec);
    if spec.name.as_deref().unwrap_or("").is_empty() {
        spec.name = Some(random_name());
    }
    refs::check_config_targets(&spec)?;
    validate::service_spec(&spec)?;
    let id = new_id();
    store
        .update(|tx| {
            refs::check_exist(tx, &spec)?;
            resolve_networks(tx, &mut spec)?;
            let mut s = Service::default();
            s.api.id = Some(id.clone());
            s.api.endpoint = Some(endpoint(tx, &id, &spec, None)?);
            if crate::orchestrator::is_job_spec(&spec) {
                // The first run of a job is iteration 0 (shown as `{}`).
                s.api.job_status = Some(api::ServiceJobStatus {
                    job_iteration: Some(api::ObjectVersion { index: None }),
                    last_execution: Some(tx.now().to_string()),
                });
            }
            s.api.spec = Some(spec.clone());
            s.spec_version = 1;
            s.registry_auth = registry_auth.clone();
            tx.create(s)
        })
        .await?;
    Ok(id)
}

/// `GET /services/{id}` (ID, name or prefix).
pub fn get(store: &Store, input: &str) -> Result<Service> {
    store.view(|tx| resolve::<Service>(tx, input))
}

/// `GET /services`.
pub fn list(store: &Store) -> Vec<Service> {
    store.view(|tx| tx.list::<Service>())
}

/// How `update` was asked to change the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// Replace the spec with the one given.
    Replace,
    /// `rollback=previous`: go back to the previous spec.
    Rollback,
}

fn mode_name(spec: &api::ServiceSpec) -> &'static str {
    let m = spec.mode.clone().unwrap_or_default();
    if m.global.is_some() {
        "global"
    } else if m.replicated_job.is_some() {
        "replicated-job"
    } else if m.global_job.is_some() {
        "global-job"
    } else {
        "replicated"
    }
}

/// `POST /services/{id}/update?version=N[&rollback=previous]`. New
/// registry credentials replace the kept ones; without, they stay (or
/// follow the spec on rollback), as dockerd does.
pub async fn update(
    store: &Store,
    input: &str,
    version: u64,
    spec: api::ServiceSpec,
    kind: UpdateKind,
    registry_auth: Option<String>,
) -> Result<()> {
    let spec = normalize(spec);
    store
        .update(|tx| {
            let mut s = resolve::<Service>(&tx.base_view(), input)?;
            let cur = s.spec().clone();
            // swarmkit judges the request's spec first and meets a stale
            // version only when it writes: a bad body is refused as such
            // whatever the version says.
            refs::check_config_targets(&spec)?;
            validate::service_spec(&spec)?;
            refs::check_exist(tx, &spec)?;
            if mode_name(&spec) != mode_name(&cur) {
                return Err(Error::new(
                    ErrorKind::Unimplemented,
                    "rpc error: code = Unimplemented desc = service mode change is not allowed",
                ));
            }
            if spec.name != cur.name {
                return Err(Error::new(
                    ErrorKind::Unimplemented,
                    "rpc error: code = Unimplemented desc = renaming services is not supported",
                ));
            }
            let mut next = match kind {
                UpdateKind::Replace => spec.clone(),
                UpdateKind::Rollback => s.previous_spec.clone().ok_or_else(|| {
                    Error::precondition(format!("service {} does not have a previous spec", s.id()))
                })?,
            };
            resolve_networks(tx, &mut next)?;
            let id = s.id().to_string();
            s.api.endpoint = Some(endpoint(tx, &id, &next, s.api.endpoint.as_ref())?);
            // Every update of a job runs it again, as in swarmkit, whether
            // the spec changed or not.
            if let Some(js) = s.api.job_status.as_mut() {
                let it = js.job_iteration.get_or_insert_with(Default::default);
                it.index = Some(it.index.unwrap_or(0) + 1);
                js.last_execution = Some(tx.now().to_string());
                s.spec_version += 1;
            } else if next != cur {
                s.spec_version += 1;
            }
            // A rollback is marked at once. A normal update that makes tasks
            // out of date is marked `updating` in the same write (swarmkit
            // clears the status and lets its updater set it a moment later;
            // doing both at once spares clients a version bump to race
            // with). Any other update clears it, as swarmkit does: a scale
            // leaves no status, and an unchanged update restarts a paused one.
            let template_changed = next.task_template != cur.task_template
                || ports::host_ports(&next) != ports::host_ports(&cur);
            let job = s.api.job_status.is_some();
            s.api.update_status = match kind {
                // A job has no rolling update to report on.
                _ if job => None,
                UpdateKind::Replace if template_changed => Some(api::ServiceUpdateStatus {
                    state: Some(api::ServiceUpdateStatusStateEnum::UPDATING),
                    started_at: Some(tx.now().to_string()),
                    completed_at: None,
                    message: Some("update in progress".into()),
                }),
                UpdateKind::Replace => None,
                UpdateKind::Rollback => Some(api::ServiceUpdateStatus {
                    state: Some(api::ServiceUpdateStatusStateEnum::ROLLBACK_STARTED),
                    started_at: Some(tx.now().to_string()),
                    completed_at: None,
                    message: Some("manually requested rollback".into()),
                }),
            };
            s.previous_spec = Some(cur);
            s.api.spec = Some(next);
            let prev_auth = s.registry_auth.clone();
            s.registry_auth = match (kind, registry_auth.clone()) {
                (_, Some(a)) => Some(a),
                (UpdateKind::Rollback, None) => s.previous_registry_auth.clone(),
                (UpdateKind::Replace, None) => prev_auth.clone(),
            };
            s.previous_registry_auth = prev_auth;
            if s.version() != version {
                return Err(Error::out_of_sequence());
            }
            tx.update(s)
        })
        .await
}

/// `DELETE /services/{id}`: removes the service; its tasks are told to go
/// (tasks that never reached a node are deleted at once).
pub async fn remove(store: &Store, input: &str) -> Result<()> {
    store
        .update(|tx| {
            let s = resolve::<Service>(&tx.base_view(), input)?;
            for mut t in tx.tasks_by_service(s.id()) {
                if t.node_id().is_none() || t.state() < api::TaskState::ASSIGNED {
                    tx.delete::<Task>(t.id())?;
                } else if t.desired_state() != api::TaskState::REMOVE {
                    t.api.desired_state = Some(api::TaskState::REMOVE);
                    tx.update(t)?;
                }
            }
            tx.delete::<Service>(s.id())
        })
        .await
}

/// `ServiceStatus` for `GET /services?status=true`, as dockerd counts it.
pub fn status(s: &Service, tasks: &[&Task], ready_nodes: usize) -> api::ServiceServiceStatus {
    let running = tasks
        .iter()
        .filter(|t| {
            t.state() == api::TaskState::RUNNING && t.desired_state() <= api::TaskState::RUNNING
        })
        .count() as u64;
    let completed = tasks
        .iter()
        .filter(|t| t.state() == api::TaskState::COMPLETE)
        .count() as u64;
    let mode = s.spec().mode.clone().unwrap_or_default();
    let desired = if let Some(r) = mode.replicated {
        r.replicas.unwrap_or(1).max(0) as u64
    } else if let Some(j) = mode.replicated_job {
        let total = j.total_completions.unwrap_or(0).max(0) as u64;
        let mc = j.max_concurrent.unwrap_or(1).max(0) as u64;
        mc.min(total.saturating_sub(completed))
    } else if mode.global.is_some() {
        tasks
            .iter()
            .filter(|t| t.desired_state() <= api::TaskState::RUNNING)
            .count() as u64
    } else {
        ready_nodes as u64
    };
    api::ServiceServiceStatus {
        running_tasks: Some(running),
        desired_tasks: Some(desired),
        completed_tasks: Some(completed),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
