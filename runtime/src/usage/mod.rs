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

use std::path::PathBuf;

use containerd_client::types::Mount;

use crate::images::unpack::SNAPSHOTTER;
use crate::Containerd;

/// The directory a snapshot mount writes to: an overlay's upper
/// directory, or a bind mount's source.
fn writable_dir(m: &Mount) -> Option<PathBuf> {
    if m.r#type == "bind" {
        return Some(PathBuf::from(&m.source));
    }
    m.options
        .iter()
        .find_map(|o| o.strip_prefix("upperdir="))
        .map(PathBuf::from)
}

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

    /// A container's `SizeRw` as dockerd counts it: the bytes of the
    /// files in its writable layer (a symlink counts its target's length,
    /// a file with several links once), not the blocks they take. Falls
    /// back to containerd's block count when the layer's directory is not
    /// known.
    pub async fn container_size_rw(&self, id: &str) -> i64 {
        let dir = match self.snapshot_mounts(id).await {
            Ok(mounts) => mounts.first().and_then(writable_dir),
            Err(_) => None,
        };
        let Some(dir) = dir else {
            return self.snapshot_usage(id).await;
        };
        tokio::task::spawn_blocking(move || crate::volumes::store::dir_size(&dir) as i64)
            .await
            .unwrap_or(0)
    }

    /// `SizeRw` by container ID.
    pub async fn container_sizes(&self, ids: &[String]) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for id in ids {
            out.insert(id.clone(), self.container_size_rw(id).await);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_dirs() {
        let overlay = Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                "workdir=/w".into(),
                "upperdir=/u".into(),
                "lowerdir=/l".into(),
            ],
        };
        assert_eq!(writable_dir(&overlay), Some(PathBuf::from("/u")));
        let bind = Mount {
            r#type: "bind".into(),
            source: "/s/fs".into(),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        };
        assert_eq!(writable_dir(&bind), Some(PathBuf::from("/s/fs")));
    }
}
