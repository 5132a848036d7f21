use super::*;
use crate::model::api;
use crate::model::api::TaskState;

fn service(replicas: i64) -> Service {
    let mut s = Service::default();
    s.api.id = Some("svc".into());
    s.spec_version = 1;
    s.api.spec = Some(api::ServiceSpec {
        name: Some("web".into()),
        task_template: Some(api::TaskSpec {
            container_spec: Some(api::TaskSpecContainerSpec {
                image: Some("busybox".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(api::ServiceSpecMode {
            replicated: Some(api::ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    s
}

fn task(s: &Service, id: &str, slot: i64, state: TaskState) -> Task {
    let mut t = new_task(s, Some(slot), None, "2026-01-01T00:00:00Z");
    t.api.id = Some(id.into());
    t.api.status.as_mut().unwrap().state = Some(state);
    t
}

const NOW: time::OffsetDateTime = time::macros::datetime!(2026-01-01 00:01:00 UTC);

fn plan_at(s: &Service, tasks: &[&Task], now: time::OffsetDateTime) -> Plan {
    let nodes = [crate::scheduler::pipeline::ready_node("n1", &[], 1, 1)];
    let pass = Pass {
        now,
        now_str: "now",
        nodes: &nodes,
    };
    reconcile(s, tasks, &pass, &mut update::Run::default())
}

fn creates(p: &Plan) -> Vec<i64> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(t) => t.api.slot,
            _ => None,
        })
        .collect()
}

#[test]
fn scale_up_fills_missing_slots() {
    let s = service(3);
    let t1 = task(&s, "a", 1, TaskState::RUNNING);
    let p = plan_at(&s, &[&t1], NOW);
    assert_eq!(creates(&p), vec![2, 3]);
}

#[test]
fn scale_down_shuts_down_highest_slots() {
    let s = service(1);
    let ts: Vec<Task> = (1..=3)
        .map(|i| task(&s, &format!("t{i}"), i, TaskState::RUNNING))
        .collect();
    let refs: Vec<&Task> = ts.iter().collect();
    let p = plan_at(&s, &refs, NOW);
    assert_eq!(
        p.actions,
        vec![Action::Shutdown("t2".into()), Action::Shutdown("t3".into())]
    );
}

#[test]
fn failed_task_is_replaced_in_its_slot() {
    let s = service(1);
    let t = task(&s, "t1", 1, TaskState::FAILED);
    let p = plan_at(&s, &[&t], NOW);
    assert_eq!(p.actions[0], Action::Shutdown("t1".into()));
    assert_eq!(creates(&p), vec![1]);
}

#[test]
fn dirty_tasks_replaced_within_parallelism() {
    let mut s = service(3);
    let ts: Vec<Task> = (1..=3)
        .map(|i| task(&s, &format!("t{i}"), i, TaskState::RUNNING))
        .collect();
    s.api
        .spec
        .as_mut()
        .unwrap()
        .task_template
        .as_mut()
        .unwrap()
        .force_update = Some(1);
    s.spec_version = 2;
    s.api.update_status = Some(api::ServiceUpdateStatus {
        state: Some(api::ServiceUpdateStatusStateEnum::UPDATING),
        ..Default::default()
    });
    let refs: Vec<&Task> = ts.iter().collect();
    let p = plan_at(&s, &refs, NOW);
    assert_eq!(
        creates(&p),
        vec![1],
        "parallelism 1 replaces one task at a time"
    );
    // Once nothing is out of date, the update completes.
    let fresh: Vec<Task> = (1..=3)
        .map(|i| task(&s, &format!("n{i}"), i, TaskState::RUNNING))
        .collect();
    let refs: Vec<&Task> = fresh.iter().collect();
    let p = plan_at(&s, &refs, NOW);
    assert!(
        matches!(&p.actions[..], [Action::UpdateStatus(_, st)] if st.state == Some(api::ServiceUpdateStatusStateEnum::COMPLETED))
    );
}

#[test]
fn scale_only_change_blesses_tasks() {
    let mut s = service(1);
    let t = task(&s, "t1", 1, TaskState::RUNNING);
    s.spec_version = 2;
    let p = plan_at(&s, &[&t], NOW);
    assert_eq!(p.actions, vec![Action::Bless("t1".into(), 2)]);
}

#[test]
fn a_replacement_waits_its_restart_delay_listed_and_ready() {
    let mut s = service(1);
    if let Some(tt) = s.api.spec.as_mut().and_then(|sp| sp.task_template.as_mut()) {
        tt.restart_policy = Some(api::TaskSpecRestartPolicy {
            delay: Some(10_000_000_000),
            ..Default::default()
        });
    }
    // Failed 5 s before NOW: 5 s of its 10 s delay are left.
    let mut failed = task(&s, "t1", 1, TaskState::FAILED);
    failed.api.status.as_mut().unwrap().timestamp = Some("2026-01-01T00:00:55Z".into());
    let p = plan_at(&s, &[&failed], NOW);
    let held = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Create(t) => Some(t.as_ref().clone()),
            _ => None,
        })
        .expect("the replacement is made at once");
    assert_eq!(held.desired_state(), TaskState::READY);
    assert_eq!(held.start_after.as_deref(), Some("2026-01-01T00:01:05Z"));
    assert!(p.actions.contains(&Action::Shutdown("t1".into())));
    assert_eq!(p.wake_after, Some(std::time::Duration::from_secs(5)));

    // Held through the delay, started once it is over.

    failed.api.desired_state = Some(TaskState::SHUTDOWN);
    let mut held = held;
    held.api.id = Some("t2".into());
    let before = plan_at(&s, &[&failed, &held], NOW + time::Duration::seconds(4));
    assert!(!before.actions.contains(&Action::Start("t2".into())));
    assert_eq!(before.wake_after, Some(std::time::Duration::from_secs(1)));
    let after = plan_at(&s, &[&failed, &held], NOW + time::Duration::seconds(5));
    assert!(after.actions.contains(&Action::Start("t2".into())));
    assert!(creates(&after).is_empty());
}
