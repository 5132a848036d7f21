//! `docker image prune` and `docker container prune`.

use std::collections::HashSet;

use super::sizes::freed_layers;
use crate::exec::NodeEnv;
use crate::images::ImageInfo;
use crate::images::RemoveItem;
use crate::view::ContainerInfo;
use crate::Containerd;

/// What an image prune did, in dockerd's order: per image its
/// `Untagged` names, then `Deleted` the image and the layers it freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImagePruneReport {
    /// The lines of "Deleted Images:".
    pub items: Vec<RemoveItem>,
    /// The bytes of the freed layers.
    pub reclaimed: u64,
}

/// Whether an image is a prune candidate: not used by any container, and
/// with `dangling_only` without any name (a digest-pinned name counts as
/// one, as in dockerd).
pub fn prunable(i: &ImageInfo, used: &HashSet<String>, dangling_only: bool) -> bool {
    !used.contains(&i.id) && (!dangling_only || is_dangling(i))
}

/// Whether no name but its own ID points at the image.
pub fn is_dangling(i: &ImageInfo) -> bool {
    i.names.iter().all(|n| crate::images::is_id_record(n))
}

impl Containerd {
    /// Removes the images no container uses (only untagged ones unless
    /// `!dangling_only`) that `select` picks. An image that cannot be
    /// removed is logged and skipped, as dockerd does.
    pub async fn image_prune(
        &self,
        env: &NodeEnv,
        dangling_only: bool,
        select: impl Fn(&ImageInfo) -> bool,
    ) -> crate::Result<ImagePruneReport> {
        let images = self.image_list().await?;
        let used = self.used_images(env, &images).await?;
        let used_names: HashSet<String> = self
            .container_infos(env)
            .await?
            .into_iter()
            .map(|c| c.image)
            .collect();
        let mut report = ImagePruneReport::default();
        let mut gone: HashSet<String> = HashSet::new();
        for i in &images {
            if !select(i) {
                continue;
            }
            if !dangling_only && used.contains(&i.id) {
                // dockerd untags what it can of an image in use; shoal
                // keeps the names containers were made from.
                report
                    .items
                    .extend(self.untag_unused_names(i, &used_names).await);
                continue;
            }
            if !prunable(i, &used, dangling_only) {
                continue;
            }
            match self.image_remove(&i.id, true).await {
                Ok(items) => {
                    gone.insert(i.id.clone());
                    let kept: Vec<&ImageInfo> =
                        images.iter().filter(|k| !gone.contains(&k.id)).collect();
                    report.items.extend(items);
                    for (chain, size) in freed_layers(i, &kept) {
                        report.items.push(RemoveItem::Deleted(chain));
                        report.reclaimed += size.max(0) as u64;
                    }
                }
                Err(e) => tracing::warn!(image = %i.id, error = %e, "pruning an image"),
            }
        }
        Ok(report)
    }

    /// Removes the tags of `i` that no container names, keeping at least
    /// one name; the `Untagged` lines.
    async fn untag_unused_names(
        &self,
        i: &ImageInfo,
        used_names: &HashSet<String>,
    ) -> Vec<RemoveItem> {
        let mut out = Vec::new();
        for name in i.names.iter().filter(|n| !used_names.contains(*n)) {
            if crate::images::is_id_record(name) || name.contains('@') {
                continue;
            }
            match self.image_remove(name, false).await {
                Ok(items) => out.extend(items),
                Err(e) => tracing::warn!(image = %name, error = %e, "pruning an image name"),
            }
        }
        out
    }

    /// IDs of the images some container (running or not) was made from.
    pub async fn used_images(
        &self,
        env: &NodeEnv,
        images: &[ImageInfo],
    ) -> crate::Result<HashSet<String>> {
        let containers = self.container_infos(env).await?;
        Ok(containers
            .iter()
            .filter_map(|c| images.iter().find(|i| i.names.contains(&c.image)))
            .map(|i| i.id.clone())
            .collect())
    }

    /// `docker container prune`: removes every container that is not
    /// running and that `select` picks, a swarm task's too (the task stays
    /// in the service's history without its container, as under dockerd).
    /// Returns the IDs removed and the bytes their writable layers held.
    pub async fn container_prune(
        &self,
        env: &NodeEnv,
        select: impl Fn(&ContainerInfo) -> bool,
    ) -> crate::Result<(Vec<String>, u64)> {
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for c in self.container_infos(env).await? {
            if c.state.status.is_running() || !select(&c) {
                continue;
            }
            let size = self.container_size_rw(&c.id).await;
            match self.container_remove(env, &c, &c.id, false, false).await {
                Ok(()) => {
                    reclaimed += size.max(0) as u64;
                    deleted.push(c.id);
                }
                Err(e) => tracing::warn!(container = %c.id, error = %e, "pruning a container"),
            }
        }
        Ok((deleted, reclaimed))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn image(id: &str, names: &[&str]) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            config: json!({}),
            size: 0,
            manifest_digest: String::new(),
            layers: vec![],
            target: None,
        }
    }

    #[test]
    fn selection() {
        let used = HashSet::from(["u".to_string()]);
        let tagged = image("t", &["docker.io/library/a:1"]);
        let dangling = image("d", &["sha256:d"]);
        let pinned = image("p", &["docker.io/library/a@sha256:00"]);
        assert!(!prunable(&pinned, &used, true));
        let in_use = image("u", &["sha256:u"]);
        assert!(prunable(&dangling, &used, true));
        assert!(!prunable(&tagged, &used, true));
        assert!(prunable(&tagged, &used, false));
        assert!(!prunable(&in_use, &used, false));
    }
}
