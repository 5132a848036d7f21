//! Unpacking an image's layers into overlayfs snapshots, one committed
//! snapshot per layer named by its chain ID (as the OCI image spec defines
//! it), so every container of the image starts from the same read-only
//! parent. containerd 1.6 has no transfer service: shoal drives the snapshot
//! and diff services itself.

use std::collections::HashMap;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::CommitSnapshotRequest;
use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::snapshots::RemoveSnapshotRequest;
use containerd_client::services::v1::snapshots::StatSnapshotRequest;
use containerd_client::services::v1::ApplyRequest;
use containerd_client::services::v1::Info;
use containerd_client::services::v1::UpdateRequest;
use containerd_client::types::Descriptor;
use serde::Deserialize;

use super::content::sha256;
use super::ImageInfo;
use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;

/// The snapshotter shoal uses for image layers and container root filesystems.
pub const SNAPSHOTTER: &str = "overlayfs";

#[derive(Deserialize)]
struct LayerJson {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
}

#[derive(Deserialize)]
struct ManifestLayers {
    #[serde(default)]
    layers: Vec<LayerJson>,
}

/// Chain IDs of a stack of layers given their uncompressed digests (diff IDs).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

pub(crate) fn diff_ids(config: &serde_json::Value) -> Vec<String> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Containerd {
    /// Makes sure every layer of `image` is a committed snapshot; returns the
    /// top chain ID (the parent for container snapshots). An image seen
    /// unpacked costs no call; otherwise concurrent calls are serialized.
    pub(crate) async fn unpack(&self, image: &ImageInfo) -> Result<String> {
        let ids = diff_ids(&image.config);
        let chain = chain_ids(&ids);
        let Some(top) = chain.last().cloned() else {
            return Err(Error::BadContent {
                digest: image.id.clone(),
                reason: "image config has no layers".into(),
            });
        };
        if self.image_cache().is_unpacked(&top) {
            return Ok(top);
        }
        let _guard = self.unpack_lock().lock().await;
        if self.snapshot_exists(&top).await? {
            self.image_cache().set_unpacked(&top);
            return Ok(top);
        }
        let manifest = self.read_blob(&image.manifest_digest).await?;
        let layers: ManifestLayers =
            serde_json::from_slice(&manifest).map_err(|e| Error::BadContent {
                digest: image.manifest_digest.clone(),
                reason: e.to_string(),
            })?;
        if layers.layers.len() != chain.len() {
            return Err(Error::BadContent {
                digest: image.manifest_digest.clone(),
                reason: "manifest layers and config diff_ids differ in number".into(),
            });
        }
        let lease = format!("shoal-unpack-{}", &top[7..19]);
        self.create_lease(&lease).await?;
        let result = self.unpack_layers(&lease, &layers.layers, &chain).await;
        if result.is_ok() {
            // The label keeps the snapshots alive as long as the image config is.
            self.label_config(&image.id, &top).await?;
        }
        self.delete_lease(&lease).await;
        result?;
        self.image_cache().set_unpacked(&top);
        Ok(top)
    }

    /// Prepares writable snapshot `key` on `image`'s layers (unpacking them
    /// first when needed) under `lease`; returns its mounts. The layers may
    /// have been collected since they were last seen (their image removed):
    /// then they are unpacked again, once.
    pub(crate) async fn rootfs_prepare(
        &self,
        key: &str,
        image: &ImageInfo,
        lease: &str,
    ) -> Result<Vec<containerd_client::types::Mount>> {
        let top = self.unpack(image).await?;
        match self.snapshot_prepare(key, &top, lease).await {
            Err(e) if crate::containers::is_not_found(&e) => {
                tracing::info!(layers = %top, "image layers collected since they were unpacked; unpacking again");
                self.image_cache().forget_unpacked(&top);
                let top = self.unpack(image).await?;
                self.snapshot_prepare(key, &top, lease).await
            }
            r => r,
        }
    }

    async fn unpack_layers(
        &self,
        lease: &str,
        layers: &[LayerJson],
        chain: &[String],
    ) -> Result<()> {
        let mut parent = String::new();
        for (layer, id) in layers.iter().zip(chain) {
            if !self.snapshot_exists(id).await? {
                self.apply_layer(lease, layer, id, &parent).await?;
            }
            parent = id.clone();
        }
        Ok(())
    }

    async fn apply_layer(
        &self,
        lease: &str,
        layer: &LayerJson,
        id: &str,
        parent: &str,
    ) -> Result<()> {
        let mut snaps = SnapshotsClient::new(self.channel().await?);
        let key = format!("extract-{} {id}", nonce());
        let mounts = snaps
            .prepare(self.request(
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.clone(),
                    parent: parent.to_string(),
                    labels: HashMap::new(),
                },
                Some(lease),
            ))
            .await
            .map_err(|s| self.status("prepare snapshot", s))?
            .into_inner()
            .mounts;
        let applied = DiffClient::new(self.channel().await?)
            .apply(self.request(
                ApplyRequest {
                    diff: Some(Descriptor {
                        media_type: layer.media_type.clone(),
                        digest: layer.digest.clone(),
                        size: layer.size,
                        annotations: HashMap::new(),
                    }),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: true,
                },
                Some(lease),
            ))
            .await
            .map_err(|s| self.status("apply layer", s));
        if let Err(e) = applied {
            self.remove_snapshot(&key).await;
            return Err(e);
        }
        let committed = snaps
            .commit(self.request(
                CommitSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    name: id.to_string(),
                    key: key.clone(),
                    labels: HashMap::new(),
                },
                Some(lease),
            ))
            .await;
        match committed {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                self.remove_snapshot(&key).await;
                Ok(())
            }
            Err(s) => {
                self.remove_snapshot(&key).await;
                Err(self.status("commit snapshot", s))
            }
        }
    }

    async fn label_config(&self, config_digest: &str, top: &str) -> Result<()> {
        let label = format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}");
        let req = UpdateRequest {
            info: Some(Info {
                digest: config_digest.to_string(),
                labels: HashMap::from([(label.clone(), top.to_string())]),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![format!("labels.{label}")],
            }),
        };
        ContentClient::new(self.channel().await?)
            .update(self.request(req, None))
            .await
            .map_err(|s| self.status("label image config", s))?;
        Ok(())
    }

    /// Whether a snapshot (committed or active) named `key` exists.
    pub(crate) async fn snapshot_exists(&self, key: &str) -> Result<bool> {
        let mut snaps = SnapshotsClient::new(self.channel().await?);
        let req = StatSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.to_string(),
        };
        match snaps.stat(self.request(req, None)).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(self.status("stat snapshot", s)),
        }
    }

    /// Removes a snapshot, ignoring one that is already gone.
    pub(crate) async fn remove_snapshot(&self, key: &str) {
        let Ok(channel) = self.channel().await else {
            return;
        };
        let req = RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.to_string(),
        };
        if let Err(s) = SnapshotsClient::new(channel)
            .remove(self.request(req, None))
            .await
        {
            if s.code() != tonic::Code::NotFound {
                tracing::warn!(snapshot = key, error = %s.message(), "remove snapshot");
            }
        }
    }
}

/// A short random suffix that keeps concurrent extraction keys apart.
fn nonce() -> String {
    let mut b = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap_or(());
    super::content::hex_digest(&b)[7..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256(b"sha256:aaaa sha256:bbbb"));
        assert!(chain_ids(&[]).is_empty());
    }
}
