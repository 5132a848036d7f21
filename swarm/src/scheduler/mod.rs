//! The scheduler: assigns pending tasks to nodes.
//!
//! [`pipeline::schedule`] is the pure decision core (filters, then the least
//! loaded node); [`run`] is the driver that feeds it from the store and
//! commits each batch of decisions in one transaction.

pub mod constraint;
pub mod filter;
pub mod pipeline;

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

pub use pipeline::schedule;
pub use pipeline::Decision;

use crate::model::api::TaskState;
use crate::model::api::TaskStatus;
use crate::model::Node;
use crate::model::Task;
use crate::store::Store;

/// Message of a task the scheduler placed (swarmkit's).
pub const ASSIGNED_MESSAGE: &str = "scheduler assigned task to node";

fn pending(t: &Task) -> bool {
    t.state() == TaskState::PENDING && t.desired_state() <= TaskState::COMPLETE
}

/// One scheduling pass over the store; returns the number of tasks assigned.
pub async fn pass(store: &Store) -> crate::Result<usize> {
    let (nodes, active, queue) = store.view(|v| {
        let t = v.tables();
        let nodes: Vec<Node> = t.iter::<Node>().cloned().collect();
        let mut active = Vec::new();
        let mut queue = Vec::new();
        for task in t.iter::<Task>() {
            if pending(task) {
                queue.push(task.clone());
            } else if task.node_id().is_some()
                && task.desired_state() <= TaskState::COMPLETE
                && task.state() <= TaskState::RUNNING
            {
                active.push(task.clone());
            }
        }
        (nodes, active, queue)
    });
    if queue.is_empty() {
        return Ok(0);
    }
    let decisions = schedule(&nodes, &active, &queue);
    store
        .update(|tx| {
            let mut assigned = 0;
            for d in &decisions {
                let Some(mut t) = tx.get::<Task>(d.task_id()) else {
                    continue;
                };
                if !pending(&t) {
                    continue;
                }
                match d {
                    Decision::Assign { node_id, .. } => {
                        t.api.node_id = Some(node_id.clone());
                        t.api.status = Some(TaskStatus {
                            timestamp: Some(tx.now().to_string()),
                            state: Some(TaskState::ASSIGNED),
                            message: Some(ASSIGNED_MESSAGE.into()),
                            ..Default::default()
                        });
                        assigned += 1;
                    }
                    Decision::Unplaceable { message, .. } => {
                        let st = t.api.status.get_or_insert_with(Default::default);
                        if st.err.as_deref() == Some(message.as_str()) {
                            continue;
                        }
                        st.err = Some(message.clone());
                        st.timestamp = Some(tx.now().to_string());
                    }
                }
                tx.update(t)?;
            }
            Ok(assigned)
        })
        .await
}

/// Runs the scheduler until `cancel` fires: a pass at start and after every
/// batch of commits that touched tasks or nodes.
pub async fn run(store: Arc<Store>, cancel: CancellationToken) {
    let mut rx = store.subscribe();
    loop {
        if let Err(e) = pass(&store).await {
            tracing::warn!(error = %e, "scheduler pass failed");
        }
        let mut relevant = false;
        while !relevant {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = rx.recv() => match r {
                    Ok(c) => relevant = c.events.iter().any(|e| matches!(
                        e.object,
                        Some(crate::model::Object::Task(_)) | Some(crate::model::Object::Node(_)) | None
                    )),
                    Err(RecvError::Lagged(_)) => relevant = true,
                    Err(RecvError::Closed) => return,
                }
            }
        }
        // Coalesce a burst of commits into one pass.
        while rx.try_recv().is_ok() {}
    }
}
