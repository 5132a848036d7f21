//! The agent's side of the log broker: for each subscription the leader
//! sends, read this node's matching task logs through the executor and
//! publish them back in batches, then say it is done.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::DispatcherApi;
use crate::exec::Executor;
use crate::logbroker::Subscription;

/// Lines published per call.
const BATCH: usize = 256;

/// Serves one subscription until the executor has sent all it will, the
/// subscription is no longer wanted, or `cancel` fires.
pub async fn serve(
    node_id: String,
    session_id: String,
    dispatcher: Arc<dyn DispatcherApi>,
    executor: Arc<dyn Executor>,
    sub: Subscription,
    cancel: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel(BATCH * 4);
    let reader = {
        let (selector, options) = (sub.selector.clone(), sub.options);
        tokio::spawn(async move {
            if let Err(e) = executor.task_logs(&selector, &options, tx).await {
                tracing::warn!(error = %e, "reading task logs failed");
            }
        })
    };
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => {
                reader.abort();
                return;
            }
            m = rx.recv() => m,
        };
        let Some(first) = first else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        match dispatcher
            .publish_logs(&node_id, &session_id, &sub.id, batch, false)
            .await
        {
            Ok(true) => {}
            _ => {
                reader.abort();
                return;
            }
        }
    }
    let _ = dispatcher
        .publish_logs(&node_id, &session_id, &sub.id, Vec::new(), true)
        .await;
}
