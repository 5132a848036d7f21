//! Cluster events: what a manager's store commits, told as dockerd tells
//! them (`Type` service, node, secret, config or network; `Action` create,
//! update or remove; scope `swarm`). Updates of services and nodes say what
//! changed (`replicas.old`/`replicas.new`, `state.new`...), so the watcher
//! keeps the last seen version of each to compare with.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Actor;
use super::EventBus;
use super::Message;
use crate::model::Node;
use crate::model::Object;
use crate::model::Service;
use crate::store::EventAction;
use crate::store::ReadTx;
use crate::store::Store;
use crate::store::Watched;

/// The last seen services and nodes, for the old side of an update.
#[derive(Debug, Default)]
pub struct Seen {
    services: HashMap<String, Service>,
    nodes: HashMap<String, Node>,
}

impl Seen {
    /// What the store holds now.
    pub fn load(tx: &ReadTx<'_>) -> Self {
        Seen {
            services: tx
                .list::<Service>()
                .into_iter()
                .map(|s| (s.api.id.clone().unwrap_or_default(), s))
                .collect(),
            nodes: tx
                .list::<Node>()
                .into_iter()
                .map(|n| (n.api.id.clone().unwrap_or_default(), n))
                .collect(),
        }
    }

    /// The cluster event one store change makes, if any, remembering the
    /// new value. `now` stamps removals, which carry no time of their own.
    pub fn event(&mut self, action: EventAction, object: &Object, now: i64) -> Option<Message> {
        let verb = match action {
            EventAction::Create => "create",
            EventAction::Update => "update",
            EventAction::Remove => "remove",
            EventAction::Resync => return None,
        };
        let (kind, actor, created, updated) = match object {
            Object::Service(s) => {
                let id = s.api.id.clone().unwrap_or_default();
                let old = match action {
                    EventAction::Remove => self.services.remove(&id),
                    _ => self.services.insert(id.clone(), (**s).clone()),
                };
                // Marking a service for removal is shoal's own step; dockerd
                // shows only the removal that follows.
                if action == EventAction::Update && s.pending_delete {
                    return None;
                }
                let mut actor =
                    Actor::new(id).with("name", s.spec().name.clone().unwrap_or_default());
                if action == EventAction::Update {
                    if let Some(old) = &old {
                        service_changes(&mut actor, old, s);
                    }
                }
                ("service", actor, &s.api.created_at, &s.api.updated_at)
            }
            Object::Node(n) => {
                let id = n.api.id.clone().unwrap_or_default();
                let old = match action {
                    EventAction::Remove => self.nodes.remove(&id),
                    _ => self.nodes.insert(id.clone(), (**n).clone()),
                };
                let mut actor = Actor::new(id).with("name", node_name(n));
                if action == EventAction::Update {
                    if let Some(old) = &old {
                        node_changes(&mut actor, old, n);
                    }
                }
                ("node", actor, &n.api.created_at, &n.api.updated_at)
            }
            Object::Secret(s) => {
                let name = s.api.spec.as_ref().and_then(|x| x.name.clone());
                let actor = Actor::new(s.api.id.clone().unwrap_or_default())
                    .with("name", name.unwrap_or_default());
                ("secret", actor, &s.api.created_at, &s.api.updated_at)
            }
            Object::Config(c) => {
                let name = c.api.spec.as_ref().and_then(|x| x.name.clone());
                let actor = Actor::new(c.api.id.clone().unwrap_or_default())
                    .with("name", name.unwrap_or_default());
                ("config", actor, &c.api.created_at, &c.api.updated_at)
            }
            Object::Network(n) => {
                if action == EventAction::Update && n.pending_delete {
                    return None;
                }
                let actor = Actor::new(n.api.id.clone().unwrap_or_default())
                    .with("name", n.api.name.clone().unwrap_or_default());
                let updated = Some(n.updated_at.clone());
                let at = match action {
                    EventAction::Create => stamp(&n.api.created),
                    EventAction::Update => stamp(&updated),
                    _ => None,
                };
                return Some(Message::swarm("network", verb, actor, at.unwrap_or(now)));
            }
            Object::Cluster(_) | Object::Task(_) => return None,
        };
        let at = match action {
            EventAction::Create => stamp(created),
            EventAction::Update => stamp(updated),
            _ => None,
        };
        Some(Message::swarm(kind, verb, actor, at.unwrap_or(now)))
    }
}

/// An API timestamp in nanoseconds since the epoch.
fn stamp(ts: &Option<String>) -> Option<i64> {
    let t = time::OffsetDateTime::parse(
        ts.as_deref()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

fn node_name(n: &Node) -> String {
    let spec = n.api.spec.as_ref().and_then(|s| s.name.clone());
    match spec.filter(|s| !s.is_empty()) {
        Some(name) => name,
        None => n
            .api
            .description
            .as_ref()
            .and_then(|d| d.hostname.clone())
            .unwrap_or_default(),
    }
}

fn changed(actor: &mut Actor, what: &str, old: String, new: String) {
    if old != new {
        actor.attributes.insert(format!("{what}.old"), old);
        actor.attributes.insert(format!("{what}.new"), new);
    }
}

fn lower<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string().to_lowercase()).unwrap_or_default()
}

fn service_changes(actor: &mut Actor, old: &Service, new: &Service) {
    let image = |s: &Service| {
        s.spec()
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    changed(actor, "image", image(old), image(new));
    let replicas = |s: &Service| {
        s.spec()
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
            .map(|r| r.replicas.unwrap_or(1))
    };
    if let (Some(o), Some(n)) = (replicas(old), replicas(new)) {
        changed(actor, "replicas", o.to_string(), n.to_string());
    }
    let state = |s: &Service| s.api.update_status.as_ref().and_then(|u| u.state);
    match (state(old), state(new)) {
        (None, Some(n)) => {
            actor
                .attributes
                .insert("updatestate.new".into(), lower(Some(n)));
        }
        (Some(o), Some(n)) => changed(actor, "updatestate", lower(Some(o)), lower(Some(n))),
        _ => {}
    }
}

fn node_changes(actor: &mut Actor, old: &Node, new: &Node) {
    let availability = |n: &Node| lower(n.api.spec.as_ref().and_then(|s| s.availability));
    changed(actor, "availability", availability(old), availability(new));
    let role = |n: &Node| lower(n.role.or(n.api.spec.as_ref().and_then(|s| s.role)));
    changed(actor, "role", role(old), role(new));
    let state = |n: &Node| lower(n.api.status.as_ref().and_then(|s| s.state));
    changed(actor, "state", state(old), state(new));
    if let (Some(o), Some(n)) = (&old.api.manager_status, &new.api.manager_status) {
        let leader = |m: &crate::model::api::ManagerStatus| m.leader.unwrap_or(false).to_string();
        changed(actor, "leader", leader(o), leader(n));
        changed(
            actor,
            "reachability",
            lower(o.reachability),
            lower(n.reachability),
        );
    }
}

/// Publishes the cluster events of every commit from now on until `cancel`
/// fires. Runs on each manager (followers apply the same commits), as every
/// dockerd manager reports the cluster's events.
pub async fn run(store: Arc<Store>, bus: EventBus, cancel: CancellationToken) {
    let (mut seen, mut rx) = store.view_and_watch(Seen::load);
    while let Some(w) = Watched::next(&mut rx, &cancel).await {
        match w {
            Watched::Commit(c) => {
                for e in &c.events {
                    let Some(obj) = &e.object else {
                        // A snapshot replaced everything: start over from it.
                        seen = store.view(Seen::load);
                        continue;
                    };
                    if let Some(m) = seen.event(e.action, obj, super::now_nanos()) {
                        bus.publish(m);
                    }
                }
            }
            // Some commits were missed; their events are lost, as dockerd
            // loses those of a broken watch. Later updates compare afresh.
            Watched::Lagged => seen = store.view(Seen::load),
        }
    }
}

#[cfg(test)]
mod tests;
