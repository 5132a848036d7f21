//! The leader's end of a root CA rotation: once every node holds a
//! certificate the new root signed, the new root becomes the root (see
//! `ca::rotation`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::ca::rotation;
use crate::model::Node;

/// How often the rotation's progress is checked.
const EVERY: Duration = Duration::from_millis(500);

/// The leader loop.
pub async fn run(m: Arc<Manager>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let ready = m.store.view(|v| {
            let c = v.cluster()?;
            c.root_rotation.as_ref()?;
            Some(rotation::every_node_rotated(&c, &v.list::<Node>()))
        });
        if ready != Some(true) {
            continue;
        }
        let r = m
            .store
            .update(|tx| {
                let Some(mut c) = tx.cluster() else {
                    return Ok(false);
                };
                if c.root_rotation.is_none()
                    || !rotation::every_node_rotated(&c, &tx.list::<Node>())
                {
                    return Ok(false);
                }
                rotation::finish(&mut c);
                tx.update(c)?;
                Ok(true)
            })
            .await;
        match r {
            Ok(true) => tracing::info!(
                "root CA rotation complete: every node holds a certificate of the new root"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "ending the root CA rotation failed"),
        }
    }
}
