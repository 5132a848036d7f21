//! Autolock on every manager: when the cluster's unlock key is set, rotated
//! or cleared (`swarm update --autolock`, `swarm unlock-key --rotate`), each
//! manager wraps its own raft data key and node key with the new one, so a
//! restarted manager anywhere in the cluster needs `docker swarm unlock`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::model::Object;
use crate::store::Watched;

/// Runs until `cancel`: `wrapped` is the key the files are wrapped with now.
pub async fn run(m: Arc<Manager>, mut wrapped: Option<String>, cancel: CancellationToken) {
    let (mut current, mut rx) = m
        .store
        .view_and_watch(|v| v.cluster().and_then(|c| c.unlock_key));
    loop {
        if current != wrapped {
            match m.rewrap(current.as_deref()) {
                Ok(()) => wrapped = current.clone(),
                Err(e) => {
                    tracing::error!(error = %e, "wrapping the keys with the new unlock key failed")
                }
            }
        }
        match Watched::next(&mut rx, &cancel).await {
            None => return,
            Some(Watched::Lagged) => {}
            Some(Watched::Commit(c)) => {
                let touched = c
                    .events
                    .iter()
                    .any(|e| matches!(e.object, Some(Object::Cluster(_)) | None));
                if !touched {
                    continue;
                }
            }
        }
        current = m.store.view(|v| v.cluster().and_then(|c| c.unlock_key));
    }
}
