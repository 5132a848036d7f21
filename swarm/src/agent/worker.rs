//! Reconciles the assignment sets with one task manager per task, and
//! forwards their status reports to the dispatcher in batches.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::task_manager;
use crate::dispatcher::Assignment;
use crate::dispatcher::AssignmentSet;
use crate::dispatcher::DispatcherApi;
use crate::dispatcher::StatusUpdate;
use crate::exec::Executor;
use crate::model::Task;

/// The agent's view of its tasks.
pub struct Worker {
    executor: Arc<dyn Executor>,
    deps: Arc<dyn crate::exec::DependencyGetter>,
    tasks: HashMap<String, watch::Sender<Option<Task>>>,
    managers: JoinSet<()>,
    reports: mpsc::Sender<StatusUpdate>,
    cancel: CancellationToken,
}

impl Worker {
    /// A worker reporting through `dispatcher` on session `session_id`.
    pub fn new(
        node_id: String,
        session_id: String,
        dispatcher: Arc<dyn DispatcherApi>,
        executor: Arc<dyn Executor>,
        cancel: CancellationToken,
    ) -> Self {
        let deps = Arc::new(super::deps::SessionDeps {
            node_id: node_id.clone(),
            session_id: session_id.clone(),
            dispatcher: dispatcher.clone(),
        });
        let (reports, rx) = mpsc::channel(1024);
        let mut managers = JoinSet::new();
        managers.spawn(report_loop(
            node_id,
            session_id,
            dispatcher,
            rx,
            cancel.clone(),
        ));
        Worker {
            executor,
            deps,
            tasks: HashMap::new(),
            managers,
            reports,
            cancel,
        }
    }

    /// Applies one assignment set.
    pub fn apply(&mut self, set: AssignmentSet) {
        if set.full {
            let keep: std::collections::HashSet<String> = set
                .changes
                .iter()
                .filter_map(|a| match a {
                    Assignment::Update(t) => t.api.id.clone(),
                    Assignment::Remove(_) => None,
                })
                .collect();
            let stale: Vec<String> = self
                .tasks
                .keys()
                .filter(|k| !keep.contains(*k))
                .cloned()
                .collect();
            for id in stale {
                self.remove(&id);
            }
            let executor = self.executor.clone();
            self.managers.spawn(async move {
                if let Err(e) = executor.prune(&keep).await {
                    tracing::warn!(error = %e, "pruning leftover containers failed");
                }
            });
        }
        for a in set.changes {
            match a {
                Assignment::Update(t) => self.update(*t),
                Assignment::Remove(id) => self.remove(&id),
            }
        }
    }

    fn update(&mut self, task: Task) {
        let id = task.api.id.clone().unwrap_or_default();
        if let Some(tx) = self.tasks.get(&id) {
            let _ = tx.send(Some(task));
            return;
        }
        let (tx, rx) = watch::channel(Some(task.clone()));
        self.tasks.insert(id, tx);
        match self.executor.controller(&task, self.deps.clone()) {
            Ok(ctl) => {
                let reports = self.reports.clone();
                let cancel = self.cancel.child_token();
                self.managers
                    .spawn(task_manager::manage(task, ctl, rx, reports, cancel));
            }
            Err(e) => tracing::warn!(error = %e, "no controller for task"),
        }
    }

    fn remove(&mut self, id: &str) {
        // Dropping the sender ends the task's manager, which removes its resources.
        if let Some(tx) = self.tasks.remove(id) {
            let _ = tx.send(None);
        }
    }

    /// Stops every task manager (the tasks themselves keep running).
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        while self.managers.join_next().await.is_some() {}
    }
}

async fn report_loop(
    node_id: String,
    session_id: String,
    dispatcher: Arc<dyn DispatcherApi>,
    mut rx: mpsc::Receiver<StatusUpdate>,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
            // The worker keeps a sender; stop with the worker.
            _ = cancel.cancelled() => return,
        };
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        if let Err(e) = dispatcher
            .update_task_status(&node_id, &session_id, batch)
            .await
        {
            tracing::warn!(error = %e, "task status report failed");
        }
    }
}
