//! The node agent: opens a dispatcher session, runs every assigned task
//! through the executor, and reports status back. It uses only
//! [`DispatcherApi`], so the same agent serves a local or a remote manager.

mod deps;
mod logs;
mod task_manager;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::dispatcher::Connector;
use crate::dispatcher::DispatcherApi;
use crate::exec::Executor;
pub use worker::Worker;

/// The first wait before opening a session again after one failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A session that lasted this long counts as healthy: the next failure
/// starts from the first backoff again.
const HEALTHY: Duration = Duration::from_secs(10);

/// Where other nodes reach this one, as the agent reports it in every
/// session (see [`crate::dispatcher::SessionRequest`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAddrs {
    /// The advertise IP.
    pub addr: String,
    /// The data-path IP (overlay traffic); empty: the advertise IP.
    pub data_addr: String,
}

/// Runs the agent for `node_id` until `cancel` fires: opens a session with
/// the dispatcher `connector` finds, and another (bounded backoff) whenever
/// one fails. Running tasks keep running while no manager answers.
pub async fn run(
    node_id: String,
    addrs: NodeAddrs,
    connector: Arc<dyn Connector>,
    executor: Arc<dyn Executor>,
    cancel: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    while !cancel.is_cancelled() {
        let started = tokio::time::Instant::now();
        let result = match connector.connect().await {
            Ok(d) => session(&node_id, &addrs, &d, &executor, &cancel).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                if started.elapsed() >= HEALTHY {
                    backoff = FIRST_BACKOFF;
                }
                tracing::warn!(error = %e, "agent session ended; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn session(
    node_id: &str,
    addrs: &NodeAddrs,
    dispatcher: &Arc<dyn DispatcherApi>,
    executor: &Arc<dyn Executor>,
    cancel: &CancellationToken,
) -> crate::Result<()> {
    let desc = executor
        .describe()
        .await
        .map_err(|e| crate::Error::internal(format!("describe node: {e}")))?;
    let req = crate::dispatcher::SessionRequest {
        description: desc,
        addr: addrs.addr.clone(),
        data_addr: addrs.data_addr.clone(),
    };
    let s = dispatcher.session(node_id, req).await?;
    let mut assignments = dispatcher.assignments(node_id, &s.session_id).await?;
    let mut worker = Worker::new(
        node_id.to_string(),
        s.session_id.clone(),
        dispatcher.clone(),
        executor.clone(),
        cancel.child_token(),
    );
    let mut records = dispatcher.service_records(node_id, &s.session_id).await?;
    let first = records.borrow_and_update().clone();
    if let Err(e) = executor.update_dns(&first).await {
        tracing::warn!(error = %e, "updating DNS records failed");
    }
    let mut subscriptions = Some(dispatcher.log_subscriptions(node_id, &s.session_id).await?);
    let log_cancel = cancel.child_token();
    let _stop_logs = log_cancel.clone().drop_guard();
    let mut beat = tokio::time::interval(s.heartbeat_period);
    loop {
        tokio::select! {
            sub = async {
                match subscriptions.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match sub {
                Some(sub) => {
                    tokio::spawn(logs::serve(
                        node_id.to_string(),
                        s.session_id.clone(),
                        dispatcher.clone(),
                        executor.clone(),
                        sub,
                        log_cancel.child_token(),
                    ));
                }
                // No more subscriptions on this session; the rest goes on.
                None => subscriptions = None,
            },
            r = records.changed() => {
                if r.is_err() {
                    worker.stop().await;
                    return Err(crate::Error::internal("service records stream closed"));
                }
                let current = records.borrow_and_update().clone();
                if let Err(e) = executor.update_dns(&current).await {
                    tracing::warn!(error = %e, "updating DNS records failed");
                }
            }
            _ = cancel.cancelled() => {
                worker.stop().await;
                return Ok(());
            }
            _ = beat.tick() => {
                dispatcher.heartbeat(node_id, &s.session_id).await?;
            }
            set = assignments.recv() => match set {
                Some(set) => worker.apply(set),
                None => {
                    worker.stop().await;
                    return Err(crate::Error::internal("assignment stream closed"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
