//! The updater's rules, each played on a simulated service with a clock the
//! test moves (see `orchestrator::sim`).

use super::*;
use crate::model::api::ServiceSpecUpdateConfigFailureActionEnum as F;
use crate::model::api::ServiceSpecUpdateConfigOrderEnum as O;
use crate::orchestrator::sim::spec;
use crate::orchestrator::sim::Sim;
use crate::orchestrator::slot;

const SEC: i64 = 1_000_000_000;

fn update_config(parallelism: i64, delay_s: i64) -> api::ServiceSpecUpdateConfig {
    api::ServiceSpecUpdateConfig {
        parallelism: Some(parallelism),
        delay: Some(delay_s * SEC),
        failure_action: Some(F::PAUSE),
        monitor: Some(5 * SEC),
        max_failure_ratio: Some(0.0),
        order: Some(O::STOP_FIRST),
    }
}

fn with(replicas: i64, uc: api::ServiceSpecUpdateConfig) -> Sim {
    let mut sp = spec(replicas, "app:1");
    sp.update_config = Some(uc);
    Sim::running(sp)
}

fn image(v: &str) -> impl FnOnce(&mut api::ServiceSpec) + '_ {
    move |sp| {
        sp.task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .image = Some(v.into());
    }
}

/// Runs passes, letting the nodes act after each, until neither a pass nor
/// the nodes change anything; returns how many tasks each pass created.
fn converge(sim: &mut Sim) -> Vec<usize> {
    let mut created = Vec::new();
    for _ in 0..50 {
        let acts = sim.pass();
        let moved = sim.settle(TaskState::RUNNING);
        if acts.is_empty() && !moved {
            return created;
        }
        if !acts.is_empty() {
            created.push(Sim::created(&acts));
        }
    }
    panic!("no convergence: {:?}", sim.log);
}

fn slots_without_running_task(sim: &Sim) -> usize {
    let slots: BTreeSet<i64> = sim.tasks.iter().filter_map(|t| t.api.slot).collect();
    slots
        .iter()
        .filter(|slot| {
            !sim.tasks.iter().any(|t| {
                t.api.slot == Some(**slot)
                    && t.state() == TaskState::RUNNING
                    && t.desired_state() <= TaskState::RUNNING
            })
        })
        .count()
}

#[test]
fn config_defaults_follow_swarmkit_and_dockerd() {
    let sim = Sim::running(spec(1, "app:1"));
    assert_eq!(Config::of(&sim.s), Config::default());
    let mut sp = spec(1, "app:1");
    sp.update_config = Some(api::ServiceSpecUpdateConfig {
        monitor: Some(0),
        ..Default::default()
    });
    let sim = Sim::running(sp);
    let c = Config::of(&sim.s);
    assert_eq!(
        c.parallelism, 0,
        "a given config without parallelism is unlimited"
    );
    assert_eq!(
        c.monitor,
        Duration::from_secs(5),
        "monitor 0 means the default"
    );
    assert_eq!(c.failure_action, FailureAction::Pause);
}

#[test]
fn parallelism_replaces_in_batches_and_completes_after_monitor() {
    let mut sim = with(4, update_config(2, 0));
    sim.update(image("app:2"));
    let mut per_pass = Vec::new();
    for _ in 0..12 {
        let acts = sim.pass();
        per_pass.push(Sim::created(&acts));
        assert!(slots_without_running_task(&sim) <= 2, "{:?}", sim.log);
        sim.settle(TaskState::RUNNING);
        assert!(slots_without_running_task(&sim) <= 2, "{:?}", sim.log);
    }
    assert_eq!(per_pass.iter().sum::<usize>(), 4);
    assert_eq!(per_pass[0], 2, "{per_pass:?}");
    assert_eq!(
        per_pass.iter().filter(|n| **n > 0).count(),
        2,
        "{per_pass:?}"
    );
    assert_eq!(sim.old_alive(), Vec::<String>::new());
    // Every task runs the new spec, but the update is watched for one more
    // monitoring period before it completes.
    assert_eq!(sim.status().0, Some(U::UPDATING));
    assert_eq!(sim.wake, Some(Duration::from_secs(5)));
    sim.advance(4.9);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::UPDATING));
    sim.advance(0.1);
    sim.pass();
    assert_eq!(
        sim.status(),
        (Some(U::COMPLETED), "update completed".to_string())
    );
}

#[test]
fn delay_separates_batches() {
    let mut sim = with(2, update_config(1, 10));
    sim.update(image("app:2"));
    assert_eq!(
        converge(&mut sim),
        vec![1, 0],
        "the first slot, then its start"
    );
    // The replacement runs from now on; the worker waits 10 s.
    let acts = sim.pass();
    assert_eq!(Sim::created(&acts), 0);
    assert_eq!(sim.wake, Some(Duration::from_secs(10)));
    sim.advance(6.0);
    assert_eq!(Sim::created(&sim.pass()), 0);
    assert_eq!(sim.wake, Some(Duration::from_secs(4)));
    sim.advance(4.0);
    assert_eq!(Sim::created(&sim.pass()), 1);
}

#[test]
fn delay_longer_than_monitor_stretches_the_final_watch() {
    let mut sim = with(1, update_config(1, 10));
    sim.update(image("app:2"));
    converge(&mut sim);
    sim.pass();
    // Delay 10 s after the last slot, then Delay + 1 s of monitoring.
    assert_eq!(sim.wake, Some(Duration::from_secs(21)));
    sim.advance(21.0);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::COMPLETED));
}

#[test]
fn stop_first_starts_the_new_task_once_the_old_one_stopped() {
    let mut sim = with(1, update_config(1, 0));
    sim.update(image("app:2"));
    let acts = sim.pass();
    assert_eq!(acts[0], Action::Shutdown("t1".into()));
    let Action::Create(new) = &acts[1] else {
        panic!("{acts:?}")
    };
    assert_eq!(new.desired_state(), TaskState::READY, "held until t1 stops");
    // t1 is still stopping: t2 waits (at most a minute).
    assert!(sim.pass().is_empty());
    assert_eq!(sim.wake, Some(slot::OLD_TASK_TIMEOUT));
    sim.report("t1", TaskState::SHUTDOWN);
    assert_eq!(sim.pass(), vec![Action::Start("t2".into())]);

    // An old task that never stops holds its successor one minute at most.
    sim.settle(TaskState::RUNNING);
    sim.update(image("app:3"));
    sim.pass();
    sim.advance(59.0);
    assert!(!sim.pass().contains(&Action::Start("t3".into())));
    sim.advance(1.0);
    assert!(sim.pass().contains(&Action::Start("t3".into())));
}

#[test]
fn stop_first_does_not_wait_for_a_task_on_a_node_that_is_down() {
    let mut sim = with(1, update_config(1, 0));
    sim.tasks[0].api.node_id = Some("n1".into());
    sim.update(image("app:2"));
    sim.pass();
    assert!(sim.pass().is_empty(), "t1 still runs on n1");
    sim.nodes[0].api.status.as_mut().unwrap().state = Some(api::NodeState::DOWN);
    assert_eq!(sim.pass(), vec![Action::Start("t2".into())]);
}

#[test]
fn stop_first_does_not_hold_a_task_whose_predecessor_never_started() {
    let mut sim = with(1, update_config(1, 0));
    sim.report("t1", TaskState::ASSIGNED);
    sim.update(image("app:2"));
    let acts = sim.pass();
    let Action::Create(new) = &acts[1] else {
        panic!("{acts:?}")
    };
    assert_eq!(new.desired_state(), TaskState::RUNNING);
}

#[test]
fn start_first_stops_the_old_task_once_the_new_one_runs() {
    let mut uc = update_config(1, 0);
    uc.order = Some(O::START_FIRST);
    let mut sim = with(1, uc);
    sim.update(image("app:2"));
    let acts = sim.pass();
    assert_eq!(Sim::created(&acts), 1);
    assert!(!acts.contains(&Action::Shutdown("t1".into())), "{acts:?}");
    assert_eq!(sim.task("t2").desired_state(), TaskState::RUNNING);
    sim.report("t2", TaskState::STARTING);
    assert!(sim.pass().is_empty(), "both run until t2 does");
    sim.report("t2", TaskState::RUNNING);
    assert_eq!(sim.pass(), vec![Action::Shutdown("t1".into())]);
}

#[test]
fn start_first_failure_keeps_the_old_task() {
    let mut uc = update_config(1, 0);
    uc.order = Some(O::START_FIRST);
    let mut sim = with(1, uc);
    sim.update(image("app:2"));
    sim.pass();
    sim.report("t2", TaskState::FAILED);
    let acts = sim.pass();
    assert!(!acts.contains(&Action::Shutdown("t1".into())), "{acts:?}");
    assert_eq!(sim.status().0, Some(U::PAUSED));
    assert_eq!(sim.task("t1").desired_state(), TaskState::RUNNING);
}

#[test]
fn a_failed_replacement_pauses_the_update() {
    let mut sim = with(2, update_config(1, 0));
    sim.update(image("app:2"));
    sim.pass();
    sim.settle(TaskState::RUNNING);
    sim.pass(); // t3 starts
    sim.report("t3", TaskState::FAILED);
    sim.pass();
    assert_eq!(
        sim.status(),
        (
            Some(U::PAUSED),
            "update paused due to failure or early termination of task t3".to_string()
        )
    );
    // Paused: slot 2 keeps its old task for good; slot 1 restarts per its
    // restart policy (5 s) with the new spec, as swarmkit's restarts do.
    sim.advance(5.0);
    for _ in 0..5 {
        sim.pass();
        sim.settle(TaskState::RUNNING);
        sim.advance(1.0);
    }
    assert_eq!(sim.old_alive(), vec!["t2".to_string()]);
    assert_eq!(sim.status().0, Some(U::PAUSED));
    assert!(sim
        .current()
        .iter()
        .any(|t| t.api.slot == Some(1) && t.state() == TaskState::RUNNING));
}

#[test]
fn early_termination_counts_but_an_ending_after_monitor_does_not() {
    // Exiting 0 is an early termination too.
    let mut sim = with(2, update_config(1, 0));
    sim.update(image("app:2"));
    sim.pass();
    sim.settle(TaskState::RUNNING);
    sim.pass();
    sim.report("t3", TaskState::COMPLETE);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::PAUSED));

    // Failing after having run for longer than Monitor is not a failure.
    let mut sim = with(2, update_config(1, 10));
    sim.update(image("app:2"));
    sim.pass();
    sim.settle(TaskState::RUNNING);
    sim.pass();
    sim.settle(TaskState::RUNNING);
    sim.pass(); // t3 seen running
    sim.advance(6.0);
    sim.report("t3", TaskState::FAILED);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::UPDATING));
}

#[test]
fn max_failure_ratio_tolerates_that_many_failures() {
    let mut uc = update_config(0, 0);
    uc.max_failure_ratio = Some(0.5);
    let mut sim = with(4, uc);
    sim.update(image("app:2"));
    converge(&mut sim);
    let new: Vec<String> = sim
        .current()
        .iter()
        .map(|t| t.api.id.clone().unwrap())
        .collect();
    assert_eq!(new.len(), 4);
    sim.report(&new[0], TaskState::FAILED);
    sim.report(&new[1], TaskState::FAILED);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::UPDATING), "2 of 4 is not above 0.5");
    sim.report(&new[2], TaskState::FAILED);
    sim.pass();
    assert_eq!(
        sim.status(),
        (
            Some(U::PAUSED),
            format!(
                "update paused due to failure or early termination of task {}",
                new[2]
            )
        )
    );
}

#[test]
fn continue_carries_on_through_failures() {
    let mut uc = update_config(1, 0);
    uc.failure_action = Some(F::CONTINUE);
    let mut sim = with(3, uc);
    sim.update(image("app:2"));
    for _ in 0..12 {
        sim.pass();
        // Every replacement fails as soon as it starts.
        sim.settle(TaskState::FAILED);
    }
    assert_eq!(sim.status().0, Some(U::UPDATING));
    assert!(sim.old_alive().is_empty(), "every slot was replaced");
}

#[test]
fn failure_action_rollback_restores_the_previous_spec() {
    let mut uc = update_config(1, 0);
    uc.failure_action = Some(F::ROLLBACK);
    let mut sim = with(2, uc);
    sim.update(image("app:2"));
    sim.pass();
    sim.settle(TaskState::RUNNING);
    sim.pass();
    sim.report("t3", TaskState::FAILED);
    let acts = sim.pass();
    let msg = "update rolled back due to failure or early termination of task t3";
    // The failed task's replacement is listed at once, held ready through
    // its restart delay (the rollback replaces it in turn).
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(acts[0], Action::Shutdown("t3".into()));
    assert!(
        matches!(&acts[1], Action::Create(t) if t.desired_state() == TaskState::READY),
        "{acts:?}"
    );
    assert_eq!(acts[2], Action::Rollback("svc".into(), msg.into()));
    assert_eq!(sim.status(), (Some(U::ROLLBACK_STARTED), msg.to_string()));
    assert_eq!(sim.s.previous_spec, None, "the previous spec is used up");
    let img = |s: &Service| {
        s.spec()
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
    };
    assert_eq!(img(&sim.s).as_deref(), Some("app:1"));
    // The failed slot is replaced at once on the old spec, the untouched
    // one is kept; the rollback completes after its monitoring period.
    converge(&mut sim);
    sim.advance(5.0);
    sim.pass();
    assert_eq!(
        sim.status(),
        (
            Some(U::ROLLBACK_COMPLETED),
            "rollback completed".to_string()
        )
    );
    assert!(sim.wanted().contains(&"t2".to_string()));
    assert_eq!(sim.current().len(), 2);
    assert!(sim
        .current()
        .iter()
        .all(|t| t.state() == TaskState::RUNNING));
}

#[test]
fn a_failing_rollback_pauses_as_rollback_paused() {
    let mut sim = with(1, update_config(1, 0));
    sim.update(image("app:2"));
    converge(&mut sim);
    sim.advance(5.0);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::COMPLETED));
    sim.rollback();
    converge(&mut sim);
    let t = sim.current()[0].api.id.clone().unwrap();
    sim.report(&t, TaskState::FAILED);
    sim.pass();
    assert_eq!(
        sim.status(),
        (
            Some(U::ROLLBACK_PAUSED),
            format!("update paused due to failure or early termination of task {t}")
        )
    );
}

#[test]
fn rollback_uses_the_rollback_config() {
    let mut sp = spec(3, "app:1");
    sp.update_config = Some(update_config(1, 0));
    sp.rollback_config = Some(api::ServiceSpecRollbackConfig {
        parallelism: Some(0),
        ..Default::default()
    });
    let mut sim = Sim::running(sp);
    sim.update(image("app:2"));
    assert_eq!(converge(&mut sim).iter().max(), Some(&1));
    sim.advance(5.0);
    sim.pass();
    sim.rollback();
    assert_eq!(Sim::created(&sim.pass()), 3, "all at once");
    converge(&mut sim);
    sim.advance(5.0);
    sim.pass();
    assert_eq!(
        sim.status(),
        (
            Some(U::ROLLBACK_COMPLETED),
            "rollback completed".to_string()
        )
    );
}

#[test]
fn a_paused_update_waits_for_the_next_update() {
    let mut sim = with(2, update_config(1, 0));
    sim.update(image("app:2"));
    sim.pass();
    sim.settle(TaskState::RUNNING);
    sim.pass();
    sim.report("t3", TaskState::FAILED);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::PAUSED));
    sim.advance(30.0);
    for _ in 0..5 {
        sim.pass();
        sim.settle(TaskState::RUNNING);
    }
    assert_eq!(sim.old_alive(), vec!["t2".to_string()], "still paused");
    // The next update starts afresh: its failure count starts at zero.
    sim.update(image("app:3"));
    converge(&mut sim);
    assert!(sim.old_alive().is_empty());
    sim.advance(5.0);
    sim.pass();
    assert_eq!(sim.status().0, Some(U::COMPLETED));
}

#[test]
fn an_update_without_status_is_started() {
    // swarmkit's control API clears the status and leaves starting it to
    // the updater.
    let mut sim = with(1, update_config(1, 0));
    sim.update(image("app:2"));
    sim.s.api.update_status = None;
    sim.pass();
    assert_eq!(
        sim.status(),
        (Some(U::UPDATING), "update in progress".to_string())
    );
    // Nothing out of date: nothing to start (a scale, say).
    let mut sim = with(1, update_config(1, 0));
    sim.s.spec_version += 1;
    sim.pass();
    assert_eq!(sim.status().0, None);
}

#[test]
fn force_update_replaces_every_task_one_at_a_time() {
    let mut sim = with(3, update_config(1, 0));
    let before = sim.wanted();
    sim.update(|sp| sp.task_template.as_mut().unwrap().force_update = Some(1));
    assert_eq!(converge(&mut sim), vec![1, 0, 1, 0, 1, 0]);
    let after = sim.wanted();
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|t| !before.contains(t)), "{after:?}");
}

#[test]
fn global_services_update_node_by_node() {
    let mut sp = spec(0, "app:1");
    sp.mode = Some(api::ServiceSpecMode {
        global: Some(Default::default()),
        ..Default::default()
    });
    let mut uc = update_config(1, 0);
    uc.order = Some(O::START_FIRST);
    sp.update_config = Some(uc);
    let mut sim = Sim::running_on(sp, &["a", "b", "c"]);
    assert_eq!(sim.wanted().len(), 3);
    sim.update(image("app:2"));
    let acts = sim.pass();
    assert_eq!(Sim::created(&acts), 1);
    assert!(!acts.iter().any(|a| matches!(a, Action::Shutdown(_))));
    sim.settle(TaskState::RUNNING);
    assert_eq!(converge(&mut sim), vec![1, 1, 0]);
    assert_eq!(sim.wanted().len(), 3);
    assert!(sim.old_alive().is_empty());
}

#[test]
fn jobs_are_not_paced() {
    let mut sp = spec(0, "app:1");
    sp.mode = Some(api::ServiceSpecMode {
        global_job: Some(Default::default()),
        ..Default::default()
    });
    let mut sim = Sim::running_on(sp, &["a", "b", "c"]);
    sim.update(|sp| sp.task_template.as_mut().unwrap().force_update = Some(1));
    assert_eq!(Sim::created(&sim.pass()), 3);
}
