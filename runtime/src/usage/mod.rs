//! Disk usage and pruning: what `docker system df` counts and what
//! `docker image prune` and `docker container prune` remove.
//!
//! Sizes are honest figures from what is stored: an image's layers are
//! its layer blobs as the manifest lists them (what `docker image ls`
//! shows as its size), a container's writable layer is its snapshot's
//! usage as containerd measures it, a volume is the files under its data
//! directory. Layers are told apart by chain ID, so two images built on the
//! same base share those layers, as in dockerd.

mod prune;
pub mod sizes;

use std::collections::HashMap;

pub use prune::is_dangling;
pub use prune::ImagePruneReport;
pub use sizes::ImageUsage;

use crate::images::unpack::SNAPSHOTTER;
use crate::Containerd;

impl Containerd {
    /// The bytes a snapshot's own layer holds (its upper directory for an
    /// active snapshot); 0 when containerd cannot tell.
    pub async fn snapshot_usage(&self, key: &str) -> i64 {
        use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
        use containerd_client::services::v1::snapshots::UsageRequest;
        let Ok(channel) = self.channel().await else {
            return 0;
        };
        let req = UsageRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.to_string(),
        };
        match SnapshotsClient::new(channel)
            .usage(self.request(req, None))
            .await
        {
            Ok(r) => r.into_inner().size,
            Err(s) => {
                tracing::debug!(key, error = %s.message(), "snapshot usage");
                0
            }
        }
    }

    /// Writable-layer sizes (`SizeRw`) by container ID.
    pub async fn container_sizes(&self, ids: &[String]) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for id in ids {
            out.insert(id.clone(), self.snapshot_usage(id).await);
        }
        out
    }
}
