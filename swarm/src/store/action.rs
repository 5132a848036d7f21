//! Store actions: the raft log payload, and how they are applied.

use serde::Deserialize;
use serde::Serialize;

use super::Event;
use super::EventAction;
use super::Tables;
use crate::model::Kind;
use crate::model::Object;
use crate::model::Service;
use crate::model::StoreObject;

/// One change in a transaction. Versions are assigned at apply time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoreAction {
    /// Create the object.
    Create(Object),
    /// Replace the object.
    Update(Object),
    /// Remove the object of this kind and ID.
    Remove(Kind, String),
}

/// Whether an update changes what other transactions read of its kind (see
/// `check`): a service's status (update and job status, its VIPs) changes
/// with every task the leader schedules and is read by no call but the
/// one that writes that service, which its version checks; its spec,
/// published ports and pending removal are read by others.
fn read_relevant(t: &Tables, o: &Object) -> bool {
    let Object::Service(new) = o else {
        return true;
    };
    let Some(old) = t.get::<Service>(new.id()) else {
        return true;
    };
    fn ports(s: &Service) -> Option<&Vec<crate::model::api::EndpointPortConfig>> {
        s.api.endpoint.as_ref()?.ports.as_ref()
    }
    old.api.spec != new.api.spec
        || ports(old) != ports(new)
        || old.pending_delete != new.pending_delete
}

/// Applies `actions` (one committed entry) at raft `index`; returns the events.
///
/// Deterministic: every replica applying the same entry ends in the same state.
/// Actions were validated by the leader's transaction; a remove of a missing
/// object is skipped.
pub fn apply_actions(t: &mut Tables, index: u64, actions: &[StoreAction]) -> Vec<Event> {
    let mut events = Vec::with_capacity(actions.len());
    for a in actions {
        match a {
            StoreAction::Create(o) | StoreAction::Update(o) => {
                if matches!(a, StoreAction::Create(_)) || read_relevant(t, o) {
                    t.mark_changed(o.kind(), index);
                }
                let mut o = o.clone();
                set_version(&mut o, index);
                let action = if matches!(a, StoreAction::Create(_)) {
                    EventAction::Create
                } else {
                    EventAction::Update
                };
                t.put(o.clone());
                events.push(Event {
                    action,
                    object: Some(o),
                });
            }
            StoreAction::Remove(kind, id) => {
                t.mark_changed(*kind, index);
                if let Some(o) = t.remove(*kind, id) {
                    events.push(Event {
                        action: EventAction::Remove,
                        object: Some(o),
                    });
                }
            }
        }
    }
    events
}

fn set_version(o: &mut Object, index: u64) {
    use crate::model::StoreObject;
    match o {
        Object::Cluster(x) => x.set_version(index),
        Object::Node(x) => x.set_version(index),
        Object::Service(x) => x.set_version(index),
        Object::Task(x) => x.set_version(index),
        Object::Secret(x) => x.set_version(index),
        Object::Config(x) => x.set_version(index),
        Object::Network(x) => x.set_version(index),
    }
}
