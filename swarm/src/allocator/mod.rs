//! The allocator: IPAM pools, service VIPs, published ports and the default
//! ingress network; it moves tasks from `new` to `pending` once their network
//! attachments are in place.
//!
//! The decision core is [`allocate_all`], a synchronous pass over one write
//! transaction: everything it decides is derived from the store alone (the
//! lowest free subnet, address, VXLAN ID and port), so a pass over an
//! already-allocated store writes nothing. [`run`] is the leader-only driver:
//! one pass at start, then one per commit that touches what it allocates (and
//! a full pass after a lagged watch).

pub mod ipam;
pub mod network;
pub mod ports;
pub mod vip;

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use ports::check_published_ports;

use crate::error::Result;
use crate::model::api;
use crate::model::Network;
use crate::model::Node;
use crate::model::Object;
use crate::model::Service;
use crate::model::Task;
use crate::store::Commit;
use crate::store::Store;
use crate::store::Tx;
use crate::store::Watched;

/// How long the allocator waits after a change for more before a pass.
const BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// The status message of a task waiting for the scheduler.
pub const PENDING_MESSAGE: &str = "pending task scheduling";

/// Runs the allocator until `cancel` fires. Called from the leader's loop set.
pub async fn run(store: Arc<Store>, cancel: CancellationToken) {
    let mut rx = store.subscribe();
    // `None`: every service; otherwise only these (new tasks are always seen).
    let mut scope: Option<HashSet<String>> = None;
    let mut dirty = true;
    loop {
        if dirty {
            if let Err(e) = store.update(|tx| allocate_scoped(tx, scope.as_ref())).await {
                tracing::warn!(error = %e, "allocator pass failed");
            }
        }
        scope = Some(HashSet::new());
        dirty = false;
        let Some(first) = Watched::next(&mut rx, &cancel).await else {
            return;
        };
        let Some(rest) = Watched::burst(&mut rx, &cancel, BATCH_DELAY).await else {
            return;
        };
        for w in std::iter::once(first).chain(rest) {
            match w {
                Watched::Commit(c) => dirty |= widen(&c, &mut scope),
                Watched::Lagged => {
                    dirty = true;
                    scope = None;
                }
            }
        }
    }
}

/// Whether a commit may need allocation work; widens `scope` by the
/// services it touched (to all of them for network or cluster changes).
fn widen(c: &Commit, scope: &mut Option<HashSet<String>>) -> bool {
    let mut relevant = false;
    for e in &c.events {
        match &e.object {
            Some(Object::Task(t)) => relevant |= t.state() == api::TaskState::NEW,
            Some(Object::Node(n)) => relevant |= n.ingress_address.is_none(),
            Some(Object::Service(s)) => {
                relevant = true;
                if let Some(ids) = scope.as_mut() {
                    ids.insert(s.api.id.clone().unwrap_or_default());
                }
            }
            None | Some(Object::Network(_) | Object::Cluster(_)) => {
                relevant = true;
                *scope = None;
            }
            Some(_) => {}
        }
    }
    relevant
}

/// One allocation pass; returns how many objects it wrote. Failures of one
/// object (an exhausted pool, a port clash) are logged and skip that object.
pub fn allocate_all(tx: &mut Tx<'_>) -> Result<usize> {
    allocate_scoped(tx, None)
}

/// An allocation pass over the services in `services` (all when `None`),
/// every unallocated network and every new task.
pub fn allocate_scoped(tx: &mut Tx<'_>, services: Option<&HashSet<String>>) -> Result<usize> {
    let Some(cluster) = tx.cluster() else {
        return Ok(0);
    };
    let mut written = 0;
    let mut networks = tx.list::<Network>();
    networks.sort_by(|a, b| a.api.created.cmp(&b.api.created));
    if !networks.iter().any(network::is_ingress) {
        let mut ing = network::ingress_network();
        network::allocate_network(&networks, Some(&cluster), &mut ing)?;
        tx.create(ing.clone())?;
        networks.push(ing);
        written += 1;
    }
    for i in 0..networks.len() {
        if network::is_allocated(&networks[i]) {
            continue;
        }
        let mut n = networks[i].clone();
        match network::allocate_network(&networks, Some(&cluster), &mut n) {
            Ok(()) => {
                tx.update(n.clone())?;
                networks[i] = n;
                written += 1;
            }
            Err(e) => {
                tracing::warn!(network = %n.api.name.as_deref().unwrap_or(""), error = %e, "network allocation failed")
            }
        }
    }
    let scope = services;
    // Read the untouched store by reference: cloning every task and service
    // on each pass made loading many services quadratic.
    let base = tx.base_view();
    let tables = base.tables();
    let new_tasks: Vec<Task> = tables
        .iter::<Task>()
        .filter(|t| {
            t.state() == api::TaskState::NEW && t.desired_state() <= api::TaskState::COMPLETE
        })
        .cloned()
        .collect();
    let mut book = vip::AddressBook::build(
        &networks,
        tables.iter::<Service>(),
        tables.iter::<Task>(),
        tables.iter::<Node>(),
    );
    written += allocate_nodes(tx, &mut book, &networks, tables.iter::<Node>())?;
    let services_in_scope = scope.is_none_or(|ids| !ids.is_empty());
    if new_tasks.is_empty() && !services_in_scope {
        return Ok(written);
    }
    if services_in_scope {
        let mut stored: Vec<&Service> = tables.iter::<Service>().collect();
        stored.sort_by(|a, b| a.api.created_at.cmp(&b.api.created_at));
        written += allocate_services(tx, &mut book, &networks, &stored, scope)?;
    }
    written += allocate_tasks(tx, &mut book, &networks, new_tasks)?;
    Ok(written)
}

/// Gives every node without one its address on the ingress network (its
/// routing-mesh source, see [`crate::model::Node::ingress_address`]).
fn allocate_nodes<'x>(
    tx: &mut Tx<'_>,
    book: &mut vip::AddressBook,
    networks: &[Network],
    nodes: impl Iterator<Item = &'x Node>,
) -> Result<usize> {
    let Some(ing) = networks
        .iter()
        .find(|n| network::is_ingress(n) && network::is_allocated(n))
    else {
        return Ok(0);
    };
    let ing = ing.api.id.as_deref().unwrap_or("");
    let mut written = 0;
    for n in nodes.filter(|n| n.ingress_address.is_none()) {
        // This transaction's copy: the node may have changed in it.
        let Some(mut node) = tx.get::<Node>(n.api.id.as_deref().unwrap_or("")) else {
            continue;
        };
        let Some(addr) = book.allocate(ing) else {
            tracing::warn!("the ingress network has no address left for a node");
            break;
        };
        node.ingress_address = Some(addr);
        tx.update(node)?;
        written += 1;
    }
    Ok(written)
}

fn allocate_services(
    tx: &mut Tx<'_>,
    book: &mut vip::AddressBook,
    networks: &[Network],
    stored: &[&Service],
    scope: Option<&HashSet<String>>,
) -> Result<usize> {
    // Services rewritten in this pass; their new ports count for the next.
    let mut updated: Vec<Service> = Vec::new();
    for svc in stored {
        let id = svc.api.id.as_deref().unwrap_or("");
        if svc.pending_delete || scope.is_some_and(|ids| !ids.contains(id)) {
            continue;
        }
        let others = stored
            .iter()
            .copied()
            .filter(|o| !updated.iter().any(|u| u.api.id == o.api.id))
            .chain(updated.iter());
        match vip::desired_endpoint(book, networks, others, svc) {
            Ok(ep) if svc.api.endpoint.as_ref() != Some(&ep) => {
                let mut s = (*svc).clone();
                s.api.endpoint = Some(ep);
                tx.update(s.clone())?;
                updated.push(s);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(service = %svc.name(), error = %e, "service allocation failed")
            }
        }
    }
    Ok(updated.len())
}

fn allocate_tasks(
    tx: &mut Tx<'_>,
    book: &mut vip::AddressBook,
    networks: &[Network],
    mut tasks: Vec<Task>,
) -> Result<usize> {
    tasks.sort_by(|a, b| a.api.created_at.cmp(&b.api.created_at));
    let mut written = 0;
    for mut t in tasks {
        // This transaction's view: the service pass above may have changed it.
        let svc = tx.get::<Service>(t.service_id());
        if svc.as_ref().is_some_and(|s| s.pending_delete) {
            continue;
        }
        t.networks = vip::task_attachments(book, networks, svc.as_ref(), &t);
        t.api.status = Some(api::TaskStatus {
            timestamp: Some(tx.now().to_string()),
            state: Some(api::TaskState::PENDING),
            message: Some(PENDING_MESSAGE.to_string()),
            ..t.api.status.clone().unwrap_or_default()
        });
        tx.update(t)?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
