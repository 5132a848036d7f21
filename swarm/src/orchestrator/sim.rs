//! A service, its tasks and a clock in memory, for the orchestrator's unit
//! tests: a pass reconciles and applies the actions the way the driver
//! commits them, and the test plays the nodes (task states) and time.

use std::time::Duration;

use super::driver;
use super::global;
use super::replicated;
use super::update;
use super::Action;
use super::Pass;
use super::Plan;
use crate::model::api;
use crate::model::api::ServiceUpdateStatusStateEnum as U;
use crate::model::api::TaskState;
use crate::model::format_time;
use crate::model::Node;
use crate::model::Service;
use crate::model::Task;
use crate::scheduler::pipeline::ready_node;

/// The simulated cluster.
pub struct Sim {
    /// The service under test.
    pub s: Service,
    /// Its tasks, in creation order.
    pub tasks: Vec<Task>,
    /// The updater's memory.
    pub run: update::Run,
    /// The clock.
    pub now: time::OffsetDateTime,
    /// The nodes (one ready node `n1` unless changed).
    pub nodes: Vec<Node>,
    /// Every action applied so far.
    pub log: Vec<Action>,
    /// The last pass's wake-up.
    pub wake: Option<Duration>,
    next: u32,
}

/// A replicated service spec running `image`.
pub fn spec(replicas: i64, image: &str) -> api::ServiceSpec {
    api::ServiceSpec {
        name: Some("web".into()),
        task_template: Some(api::TaskSpec {
            container_spec: Some(api::TaskSpecContainerSpec {
                image: Some(image.into()),
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
    }
}

impl Sim {
    /// A service with `spec` whose tasks all run (created and started at
    /// time 0), with no update status.
    pub fn running(spec: api::ServiceSpec) -> Sim {
        Sim::running_on(spec, &["n1"])
    }

    /// Like [`Sim::running`] on ready nodes with these IDs.
    pub fn running_on(spec: api::ServiceSpec, nodes: &[&str]) -> Sim {
        let mut s = Service::default();
        s.api.id = Some("svc".into());
        s.api.spec = Some(spec);
        s.spec_version = 1;
        let mut sim = Sim {
            s,
            tasks: Vec::new(),
            run: update::Run::default(),
            now: time::macros::datetime!(2026-01-01 00:00:00 UTC),
            nodes: nodes.iter().map(|n| ready_node(n, &[], 1, 1)).collect(),
            log: Vec::new(),
            wake: None,
            next: 0,
        };
        sim.pass();
        sim.settle(TaskState::RUNNING);
        sim.log.clear();
        sim
    }

    /// Moves the clock on.
    pub fn advance(&mut self, secs: f64) {
        self.now += Duration::from_secs_f64(secs);
    }

    /// What `docker service update` does: a new spec, `updating`.
    pub fn update(&mut self, f: impl FnOnce(&mut api::ServiceSpec)) {
        let cur = self.s.spec().clone();
        let mut next = cur.clone();
        f(&mut next);
        self.s.previous_spec = Some(cur);
        self.s.api.spec = Some(next);
        self.s.spec_version += 1;
        self.set_status(U::UPDATING, "update in progress");
    }

    /// What `docker service rollback` does.
    pub fn rollback(&mut self) {
        let cur = self.s.spec().clone();
        self.s.api.spec = self.s.previous_spec.replace(cur);
        self.s.spec_version += 1;
        self.set_status(U::ROLLBACK_STARTED, "manually requested rollback");
    }

    fn set_status(&mut self, state: U, msg: &str) {
        self.s.api.update_status = Some(api::ServiceUpdateStatus {
            state: Some(state),
            started_at: Some(format_time(self.now)),
            completed_at: None,
            message: Some(msg.into()),
        });
    }

    /// The update status state and message.
    pub fn status(&self) -> (Option<U>, String) {
        let st = self.s.api.update_status.clone().unwrap_or_default();
        (st.state, st.message.unwrap_or_default())
    }

    /// One reconcile pass, its actions applied; returns them.
    pub fn pass(&mut self) -> Vec<Action> {
        let now_str = format_time(self.now);
        let refs: Vec<&Task> = self.tasks.iter().collect();
        let pass = Pass {
            now: self.now,
            now_str: &now_str,
            nodes: &self.nodes,
        };
        let mode = self.s.spec().mode.clone().unwrap_or_default();
        let plan: Plan = if mode.global.is_some() || mode.global_job.is_some() {
            global::reconcile(&self.s, &refs, &pass, &mut self.run)
        } else {
            replicated::reconcile(&self.s, &refs, &pass, &mut self.run)
        };
        self.wake = plan.wake_after;
        for a in &plan.actions {
            self.apply(a.clone());
        }
        self.log.extend(plan.actions.clone());
        plan.actions
    }

    fn apply(&mut self, a: Action) {
        match a {
            Action::Create(t) => {
                let mut t = *t;
                self.next += 1;
                let id = format!("t{}", self.next);
                self.run.rename(t.api.id.as_deref().unwrap_or(""), &id);
                t.api.id = Some(id);
                t.api.created_at = Some(format_time(self.now));
                self.tasks.push(t);
            }
            Action::Shutdown(id) => {
                let t = self.task_mut(&id);
                if t.desired_state() <= TaskState::RUNNING {
                    t.api.desired_state = Some(TaskState::SHUTDOWN);
                }
            }
            Action::Remove(id) => self.task_mut(&id).api.desired_state = Some(TaskState::REMOVE),
            Action::Delete(id) => self.tasks.retain(|t| t.api.id.as_deref() != Some(&id)),
            Action::Bless(id, v) => self.task_mut(&id).spec_version = v,
            Action::UpdateStatus(_, st) => self.s.api.update_status = Some(st),
            Action::Start(id) => self.task_mut(&id).api.desired_state = Some(TaskState::RUNNING),
            Action::Rollback(_, msg) => {
                if let Some(s) = driver::rolled_back(self.s.clone(), msg) {
                    self.s = s;
                }
            }
        }
    }

    /// The task with this ID.
    pub fn task(&self, id: &str) -> &Task {
        self.tasks
            .iter()
            .find(|t| t.api.id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no task {id}"))
    }

    fn task_mut(&mut self, id: &str) -> &mut Task {
        self.tasks
            .iter_mut()
            .find(|t| t.api.id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no task {id}"))
    }

    /// Sets a task's observed state (what its node reports).
    pub fn report(&mut self, id: &str, state: TaskState) {
        let now = format_time(self.now);
        let t = self.task_mut(id);
        let st = t.api.status.get_or_insert_with(Default::default);
        st.state = Some(state);
        st.timestamp = Some(now);
    }

    /// What the nodes do next: tasks wanted running that have not started
    /// reach `state`; tasks told to shut down that may run stop. Returns
    /// whether a task changed.
    pub fn settle(&mut self, state: TaskState) -> bool {
        let mut changed = false;
        let ids: Vec<(String, TaskState, TaskState)> = self
            .tasks
            .iter()
            .map(|t| (t.api.id.clone().unwrap(), t.desired_state(), t.state()))
            .collect();
        for (id, desired, observed) in ids {
            if desired == TaskState::RUNNING && observed < TaskState::RUNNING {
                self.report(&id, state);
                changed = true;
            } else if desired > TaskState::RUNNING && observed <= TaskState::RUNNING {
                self.report(&id, TaskState::SHUTDOWN);
                changed = true;
            }
        }
        changed
    }

    /// Tasks wanted running (or ready) that run the current spec.
    pub fn current(&self) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| t.desired_state() <= TaskState::RUNNING && !super::is_dirty(t, &self.s))
            .collect()
    }

    /// IDs of tasks wanted running (or ready), old or new.
    pub fn wanted(&self) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|t| t.desired_state() <= TaskState::RUNNING)
            .map(|t| t.api.id.clone().unwrap())
            .collect()
    }

    /// How many tasks the actions `acts` create.
    pub fn created(acts: &[Action]) -> usize {
        acts.iter()
            .filter(|a| matches!(a, Action::Create(_)))
            .count()
    }

    /// IDs of tasks that are not current-spec and not shut down.
    pub fn old_alive(&self) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|t| super::is_dirty(t, &self.s) && t.state() <= TaskState::RUNNING)
            .map(|t| t.api.id.clone().unwrap())
            .collect()
    }
}
