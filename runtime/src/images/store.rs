//! The Docker view of containerd image records: list, find by name or ID,
//! remove, and create-or-update a record.

use std::collections::BTreeMap;

use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::CreateImageRequest;
use containerd_client::services::v1::DeleteImageRequest;
use containerd_client::services::v1::Image;
use containerd_client::services::v1::ListImagesRequest;
use containerd_client::services::v1::UpdateImageRequest;
use containerd_client::types::Descriptor;
use serde::Deserialize;

use super::media;
use super::reference;
use super::reference::Reference;
use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;

/// One image as Docker shows it: the records (names) that share one config.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// Image ID: `sha256:` digest of the config blob.
    pub id: String,
    /// Full names of the containerd records pointing at it, sorted.
    pub names: Vec<String>,
    /// The image config JSON as stored.
    pub config: serde_json::Value,
    /// Sum of the layer sizes (uncompressed layers are stored as they are).
    pub size: i64,
    /// Digest of the manifest the records point at.
    pub manifest_digest: String,
    /// The manifest's layers, bottom first, as stored (compressed or not).
    pub layers: Vec<LayerBlob>,
    /// What the records point at (a manifest or an index); set by
    /// [`Containerd::image_list`] from the first record.
    pub target: Option<Descriptor>,
}

/// One layer blob of an image's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// `sha256:` digest of the blob.
    pub digest: String,
    /// Its media type (tells whether it is compressed).
    pub media_type: String,
    /// Its size in bytes.
    pub size: i64,
}

impl ImageInfo {
    /// Familiar names (`shoal-test/busybox:latest`) for `RepoTags`. Names
    /// pinned by digest (records of a pull by digest) are not tags.
    pub fn repo_tags(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| !n.contains('@') && !is_id_record(n))
            .filter_map(|n| reference::familiar(n))
            .collect()
    }
}

/// Whether a record is named by the image ID itself: how shoal keeps an
/// image that has no name (`docker import` without one), listed as
/// `<none>:<none>` as dockerd lists a dangling image.
pub fn is_id_record(name: &str) -> bool {
    name.starts_with("sha256:")
}

/// One line of `docker image rm` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveItem {
    /// A name was removed.
    Untagged(String),
    /// The image is gone.
    Deleted(String),
}

#[derive(Deserialize)]
struct DescriptorJson {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Option<DescriptorJson>,
    #[serde(default)]
    layers: Vec<DescriptorJson>,
    #[serde(default)]
    manifests: Vec<DescriptorJson>,
}

fn parse_json<T: serde::de::DeserializeOwned>(digest: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::BadContent {
        digest: digest.to_string(),
        reason: e.to_string(),
    })
}

/// [`Containerd::image_find`] on a listing already made.
fn find_in(images: &[ImageInfo], name_or_id: &str) -> Result<(ImageInfo, Option<String>)> {
    let parsed = Reference::parse(name_or_id);
    if let Some(r) = &parsed {
        let full = r.full();
        if let Some(i) = images.iter().find(|i| i.names.contains(&full)) {
            return Ok((i.clone(), Some(full)));
        }
    }
    let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
    if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut found = images
            .iter()
            .filter(|i| i.id.trim_start_matches("sha256:").starts_with(hex));
        if let (Some(i), None) = (found.next(), found.next()) {
            return Ok((i.clone(), None));
        }
    }
    Err(Error::NoSuchImage(match parsed {
        Some(r) if !name_or_id.starts_with("sha256:") => r.familiar(),
        _ => name_or_id.to_string(),
    }))
}

impl Containerd {
    /// Every image in namespace `shoal`, one entry per image ID, sorted by ID.
    /// Records whose content cannot be read are skipped with a warning.
    pub async fn image_list(&self) -> Result<Vec<ImageInfo>> {
        let mut client = ImagesClient::new(self.channel().await?);
        let records = client
            .list(self.request(ListImagesRequest { filters: vec![] }, None))
            .await
            .map_err(|s| self.status("list images", s))?
            .into_inner()
            .images;
        let mut by_id: BTreeMap<String, ImageInfo> = BTreeMap::new();
        for rec in records {
            let Some(target) = rec.target else { continue };
            match self.resolve(&target.digest, &target.media_type).await {
                Ok(info) => {
                    let entry = by_id.entry(info.id.clone()).or_insert(info);
                    entry.target.get_or_insert(target);
                    entry.names.push(rec.name);
                }
                Err(e) => tracing::warn!(image = %rec.name, error = %e, "unreadable image"),
            }
        }
        let mut out: Vec<ImageInfo> = by_id.into_values().collect();
        for i in &mut out {
            i.names.sort();
        }
        Ok(out)
    }

    /// Finds an image by name (normalized as dockerd does), full ID, or ID
    /// prefix. The error is dockerd's `No such image: ...`.
    pub async fn image_find(&self, name_or_id: &str) -> Result<(ImageInfo, Option<String>)> {
        find_in(&self.image_list().await?, name_or_id)
    }

    /// The local image a task's `image` field names. The CLI pins images by
    /// digest (`name:tag@sha256:...`, the manifest's digest); a local image
    /// matches by that digest, or by its name when the digest differs
    /// (images loaded from an archive have a manifest of shoal's making).
    /// One listing serves every way of matching: this runs for every task.
    pub async fn image_for_task(&self, reference: &str) -> Result<ImageInfo> {
        let images = self.image_list().await?;
        if let Ok((i, _)) = find_in(&images, reference) {
            return Ok(i);
        }
        if let Some((name, digest)) = reference.split_once('@') {
            if let Some(i) = images.iter().find(|i| i.manifest_digest == digest) {
                return Ok(i.clone());
            }
            if let Ok((i, _)) = find_in(&images, name) {
                return Ok(i);
            }
        }
        Err(Error::NoSuchImage(reference.to_string()))
    }

    /// `docker image rm`: by name removes that name (and the image with its
    /// last name); by ID removes every name, which needs `force` when there
    /// are several.
    pub async fn image_remove(&self, name_or_id: &str, force: bool) -> Result<Vec<RemoveItem>> {
        let (info, by_name) = self.image_find(name_or_id).await?;
        let doomed = match by_name {
            Some(full) => vec![full],
            None => {
                if info.names.len() > 1 && !force {
                    let short: String = info
                        .id
                        .trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect();
                    return Err(Error::ReferencedInMultipleRepositories(short));
                }
                info.names.clone()
            }
        };
        let mut client = ImagesClient::new(self.channel().await?);
        let last_goes = doomed.len() == info.names.len();
        let mut out = Vec::new();
        for (i, name) in doomed.iter().enumerate() {
            let req = DeleteImageRequest {
                name: name.clone(),
                sync: last_goes && i + 1 == doomed.len(),
                target: None,
            };
            client
                .delete(self.request(req, None))
                .await
                .map_err(|s| self.status("delete image", s))?;
            if !is_id_record(name) {
                out.push(RemoveItem::Untagged(
                    reference::familiar(name).unwrap_or_else(|| name.clone()),
                ));
            }
        }
        if last_goes {
            out.push(RemoveItem::Deleted(info.id.clone()));
        }
        // dockerd reports each removed name, then the image if it went.
        for item in &out {
            let (action, actor) = match item {
                // dockerd names the image by its ID here, not by the
                // reference that went.
                RemoveItem::Untagged(_) => (
                    "untag",
                    swarm::events::Actor::new(&info.id).with("name", info.id.as_str()),
                ),
                RemoveItem::Deleted(id) => (
                    "delete",
                    swarm::events::Actor::new(id.as_str()).with("name", id.as_str()),
                ),
            };
            self.events().log("image", action, actor);
        }
        Ok(out)
    }

    /// `docker image tag SOURCE REPO[:TAG]`: one more record for the image
    /// `source` names. An existing record of that name is repointed, as
    /// dockerd moves a tag.
    pub async fn image_tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        let (info, _) = self.image_find(source).await?;
        let text = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        let target = Reference::parse(&text)
            .filter(|r| r.digest.is_none())
            .ok_or_else(|| Error::InvalidReference(text.clone()))?;
        let desc = info.target.clone().ok_or_else(|| Error::BadContent {
            digest: info.id.clone(),
            reason: "image has no record".into(),
        })?;
        self.put_image(&target.full(), desc).await?;
        let familiar = super::reference::familiar(&target.full()).unwrap_or(text);
        self.image_event("tag", &info.id, &familiar).await;
        Ok(())
    }

    /// Points the record `name` at `target`, creating or replacing it.
    pub(crate) async fn put_image(&self, name: &str, target: Descriptor) -> Result<()> {
        let mut client = ImagesClient::new(self.channel().await?);
        let now = std::time::SystemTime::now();
        let image = Image {
            name: name.to_string(),
            labels: Default::default(),
            target: Some(target),
            created_at: Some(now.into()),
            updated_at: Some(now.into()),
        };
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match client.create(self.request(create, None)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                let update = UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                };
                client
                    .update(self.request(update, None))
                    .await
                    .map_err(|s| self.status("update image", s))?;
                Ok(())
            }
            Err(s) => Err(self.status("create image", s)),
        }
    }

    /// Reads a record's target down to its config: a manifest directly, or
    /// from an index the linux/amd64 manifest (else the first). Content is
    /// immutable, so each target is read once.
    async fn resolve(&self, digest: &str, media_type: &str) -> Result<ImageInfo> {
        if let Some(info) = self.image_cache().resolved(digest, media_type) {
            return Ok(info);
        }
        let info = self.resolve_uncached(digest, media_type).await?;
        self.image_cache().put_resolved(digest, media_type, &info);
        Ok(info)
    }

    async fn resolve_uncached(&self, digest: &str, media_type: &str) -> Result<ImageInfo> {
        let mut digest = digest.to_string();
        let mut manifest: ManifestJson = parse_json(&digest, &self.read_blob(&digest).await?)?;
        let is_index = media_type == media::OCI_INDEX
            || media_type == media::DOCKER_MANIFEST_LIST
            || manifest.media_type.as_deref() == Some(media::OCI_INDEX)
            || manifest.media_type.as_deref() == Some(media::DOCKER_MANIFEST_LIST);
        if is_index {
            let pick = manifest
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
                })
                .or(manifest.manifests.first())
                .ok_or_else(|| Error::BadContent {
                    digest: digest.clone(),
                    reason: "index lists no manifest".into(),
                })?;
            digest = pick.digest.clone();
            manifest = parse_json(&digest, &self.read_blob(&digest).await?)?;
        }
        let config = manifest.config.ok_or_else(|| Error::BadContent {
            digest: digest.clone(),
            reason: "manifest has no config".into(),
        })?;
        let config_json = parse_json(&config.digest, &self.read_blob(&config.digest).await?)?;
        Ok(ImageInfo {
            id: config.digest,
            names: Vec::new(),
            config: config_json,
            size: manifest.layers.iter().map(|l| l.size).sum(),
            manifest_digest: digest,
            layers: manifest
                .layers
                .iter()
                .map(|l| LayerBlob {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    size: l.size,
                })
                .collect(),
            target: None,
        })
    }
}
