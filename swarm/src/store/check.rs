//! Whether a transaction that a non-leader manager built on its own copy of
//! the store may be committed by the leader as it is.
//!
//! swarmkit runs every control-API call on the leader. shoal runs the call
//! where it arrives, on that manager's applied state, and hands only the
//! resulting actions to the leader, which commits them if every object they
//! write is still as the transaction read it: nothing it updates has a newer
//! `Version.Index`, nothing it creates exists, and no name it claims was
//! taken meanwhile. Otherwise the manager catches up and runs the call
//! again, so the outcome (and every error text) is the one the call gives on
//! the current state, as if it had run on the leader.
//!
//! What a call read matters too (two services must not publish one port, a
//! secret must not go while a new service takes it): nothing of the kinds
//! users write through the API (the cluster, services, secrets, configs,
//! networks) may have changed after the state the transaction was built on.
//! Tasks and nodes change all the time and are not held to that; the calls
//! that write them are checked object by object.

use super::tables::Table;
use super::StoreAction;
use super::Tables;
use crate::model::Kind;
use crate::model::Object;

fn fresh<T: Table>(t: &Tables, o: &T) -> bool {
    if t.get::<T>(o.id()).is_some() {
        return false;
    }
    match o.name() {
        Some(name) => !t.iter::<T>().any(|x| x.name() == Some(name)),
        None => true,
    }
}

fn current<T: Table>(t: &Tables, o: &T) -> bool {
    t.get::<T>(o.id())
        .is_some_and(|cur| cur.version() == o.version())
}

fn holds(t: &Tables, o: &Object, create: bool) -> bool {
    macro_rules! check {
        ($x:expr) => {
            if create {
                fresh(t, &**$x)
            } else {
                current(t, &**$x)
            }
        };
    }
    match o {
        Object::Cluster(x) => check!(x),
        Object::Node(x) => check!(x),
        Object::Service(x) => check!(x),
        Object::Task(x) => check!(x),
        Object::Secret(x) => check!(x),
        Object::Config(x) => check!(x),
        Object::Network(x) => check!(x),
    }
}

/// The kinds a transaction is assumed to have read all of.
const READ_KINDS: [Kind; 5] = [
    Kind::Cluster,
    Kind::Service,
    Kind::Secret,
    Kind::Config,
    Kind::Network,
];

/// Whether `actions`, built on the state at index `base`, can be applied to
/// `t` as their transaction meant them.
pub fn still_valid(t: &Tables, base: u64, actions: &[StoreAction]) -> bool {
    if READ_KINDS.iter().any(|k| t.changed_at(*k) > base) {
        return false;
    }
    actions.iter().all(|a| match a {
        StoreAction::Create(o) => holds(t, o, true),
        StoreAction::Update(o) => holds(t, o, false),
        // Removing what is already gone changes nothing.
        StoreAction::Remove(..) => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::api;
    use crate::model::Secret;
    use crate::model::StoreObject;

    fn secret(id: &str, name: &str, version: u64) -> Secret {
        let mut s = Secret::default();
        s.api.id = Some(id.into());
        s.api.spec = Some(api::SecretSpec {
            name: Some(name.into()),
            ..Default::default()
        });
        s.set_version(version);
        s
    }

    #[test]
    fn creates_need_a_free_id_and_name_and_updates_the_read_version() {
        let mut t = Tables::default();
        t.put(secret("a", "one", 5).into_object());
        let create =
            |id: &str, name: &str| vec![StoreAction::Create(secret(id, name, 0).into_object())];
        assert!(still_valid(&t, 5, &create("b", "two")));
        assert!(!still_valid(&t, 5, &create("a", "two")), "the ID exists");
        assert!(
            !still_valid(&t, 5, &create("b", "one")),
            "the name is taken"
        );
        let update = |v| vec![StoreAction::Update(secret("a", "one", v).into_object())];
        assert!(still_valid(&t, 5, &update(5)));
        assert!(!still_valid(&t, 5, &update(4)), "written since it was read");
        let gone = [StoreAction::Update(secret("gone", "x", 1).into_object())];
        assert!(!still_valid(&t, 5, &gone));
        let remove = [StoreAction::Remove(Kind::Secret, "gone".into())];
        assert!(still_valid(&t, 5, &remove));
    }

    #[test]
    fn a_change_to_a_read_kind_after_the_base_makes_it_stale() {
        let mut t = Tables::default();
        t.mark_changed(Kind::Service, 7);
        t.mark_changed(Kind::Task, 9);
        let create = vec![StoreAction::Create(secret("b", "two", 0).into_object())];
        assert!(still_valid(&t, 7, &create), "tasks changing does not count");
        assert!(
            !still_valid(&t, 6, &create),
            "a service changed after the base"
        );
    }

    #[test]
    fn a_service_status_written_by_the_leader_leaves_other_calls_valid() {
        use crate::model::Service;
        use crate::store::apply_actions;
        let mut t = Tables::default();
        let mut svc = Service::default();
        svc.api.id = Some("s".into());
        svc.api.spec = Some(api::ServiceSpec {
            name: Some("web".into()),
            ..Default::default()
        });
        apply_actions(&mut t, 5, &[StoreAction::Create(svc.clone().into_object())]);
        let create = vec![StoreAction::Create(secret("b", "two", 0).into_object())];
        let mut status = t.get::<Service>("s").unwrap().clone();
        status.api.update_status = Some(api::ServiceUpdateStatus::default());
        apply_actions(&mut t, 6, &[StoreAction::Update(status.into_object())]);
        assert!(
            still_valid(&t, 5, &create),
            "an update status is read by no other call"
        );
        let mut spec = t.get::<Service>("s").unwrap().clone();
        spec.api.spec.as_mut().unwrap().labels = Some([("a".into(), "b".into())].into());
        apply_actions(&mut t, 7, &[StoreAction::Update(spec.into_object())]);
        assert!(!still_valid(&t, 6, &create), "a spec change is");
    }
}
