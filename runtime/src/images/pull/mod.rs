//! `docker pull`: an image from a Docker Registry HTTP API v2 registry into
//! containerd's content store, then an image record, the same shape
//! `docker load` leaves (so list, inspect and remove treat both alike).
//!
//! The record points at what the reference names: an index (kept as the
//! registry serves it, so its digest is the one `docker pull` prints) or an
//! image manifest. Of an index only the linux/amd64 manifest is fetched, and
//! the index's GC label keeps just that one alive. Blobs already in the
//! content store are not downloaded again. Layers are downloaded to unnamed
//! temp files first (as dockerd does) so a broken download never reaches
//! containerd; everything is written under one lease until the record holds
//! it.

mod auth;
mod error;
mod inspect;
mod login;
mod manifest;
mod progress;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Weak;

use bytes::Bytes;
use containerd_client::types::Descriptor;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

pub use self::auth::RegistryAuth;
pub use self::error::RegistryError;
pub use self::error::RegistryErrorKind;
pub use self::inspect::DistributionInspect;
pub use self::inspect::PlatformInfo;
pub use self::login::registry_login;
use self::manifest::Desc;
use self::manifest::Manifest;
use self::progress::short_id;
use self::progress::Progress;
pub use self::progress::PullEvent;
use self::progress::Throttle;
use self::session::Purpose;
use self::session::Session;
use super::content::sha256;
use super::content::Source;
use super::reference::Reference;
use super::ImageInfo;
use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;

/// Layers downloaded at once (dockerd's default).
const PARALLEL_DOWNLOADS: usize = 3;

/// What a pull resolved the reference to.
struct Resolved {
    /// The document the reference names (index or manifest), as served.
    top: Bytes,
    top_digest: String,
    top_type: String,
    /// The image manifest (the index's linux/amd64 entry, or `top` itself).
    manifest: Bytes,
    manifest_digest: String,
    /// Position of that manifest in the index, when there is one.
    index_entry: Option<usize>,
    config: Desc,
    layers: Vec<Desc>,
}

impl Containerd {
    /// Pulls `reference` (`busybox`, `127.0.0.1:5000/a/b:v1`,
    /// `name@sha256:...`) for linux/amd64 and names it locally, reporting
    /// dockerd's progress steps to `progress` when given (a slow listener
    /// slows the pull; a listener that goes away does not stop it).
    ///
    /// `auth` of `None` pulls anonymously. Registries on loopback are
    /// spoken to over plain HTTP, all others over HTTPS. The record's name is
    /// the normalized reference (`name:tag`, or `name@digest` for a pull by
    /// digest). Errors carry dockerd's texts; nothing is streamed before the
    /// manifest is found, so a missing tag or a refused login fails before
    /// the first event.
    pub async fn image_pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress: Option<mpsc::Sender<PullEvent>>,
    ) -> Result<ImageInfo> {
        let r = Reference::parse(reference)
            .ok_or_else(|| RegistryError::invalid_reference(reference))?;
        // Fail on an unreachable containerd before talking to the registry.
        self.channel().await?;
        let progress = Progress::new(progress);
        let session = Session::open(&r, auth, Purpose::Pull).await?;
        let resolved = resolve(&session).await?;
        let tag_or_digest = match (&r.digest, &r.tag) {
            (Some(_), _) => r.full(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        };
        progress
            .message(Some(tag_or_digest), format!("Pulling from {}", r.path))
            .await;

        let name = record_name(&r);
        let before = match self.image_find(&name).await {
            Ok((info, Some(_))) => Some(info.id),
            _ => None,
        };
        let lease = format!("shoal-pull-{}-{}", std::process::id(), unique());
        self.create_lease(&lease).await?;
        let stored = self
            .store_image(&session, &resolved, &lease, &progress)
            .await;
        let named = match stored {
            Ok(()) => {
                let target = Descriptor {
                    media_type: resolved.top_type.clone(),
                    digest: resolved.top_digest.clone(),
                    size: resolved.top.len() as i64,
                    annotations: HashMap::new(),
                };
                self.put_image(&name, target).await
            }
            Err(e) => Err(e),
        };
        self.delete_lease(&lease).await;
        named?;

        progress
            .message(None, format!("Digest: {}", resolved.top_digest))
            .await;
        let status = if before.as_deref() == Some(resolved.config.digest.as_str()) {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        progress
            .message(None, format!("Status: {status} {}", r.familiar()))
            .await;
        let (info, _) = self.image_find(&name).await?;
        // dockerd's actor is the reference pulled, named by its repository.
        let mut pulled = r.clone();
        if pulled.tag.is_none() && pulled.digest.is_none() {
            pulled.tag = Some("latest".into());
        }
        self.image_event("pull", &pulled.familiar(), &r.familiar_name())
            .await;
        Ok(info)
    }

    /// The local image for `reference`, pulling it first when there is none:
    /// what a task needs before its container is created. A reference
    /// pinned by digest (`name[:tag]@sha256:...`) is satisfied only by an
    /// image with that digest (a record of that name, or an image whose
    /// manifest has it); any other by whatever [`Containerd::image_find`]
    /// finds.
    pub async fn image_ensure(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<ImageInfo> {
        let r = Reference::parse(reference);
        match r.as_ref().and_then(|r| r.digest.clone()) {
            Some(digest) => {
                let r = r.as_ref().map(record_name).unwrap_or_default();
                match self.image_find(&r).await {
                    Ok((info, _)) => return Ok(info),
                    Err(Error::NoSuchImage(_)) => {}
                    Err(e) => return Err(e),
                }
                let images = self.image_list().await?;
                if let Some(i) = images.into_iter().find(|i| i.manifest_digest == digest) {
                    return Ok(i);
                }
            }
            None => match self.image_find(reference).await {
                Ok((info, _)) => return Ok(info),
                Err(Error::NoSuchImage(_)) => {}
                Err(e) => return Err(e),
            },
        }
        self.image_pull(reference, auth, None).await
    }

    /// Writes config, layers, manifest and index (in that order, so what
    /// references a blob is written after it) under `lease`.
    async fn store_image(
        &self,
        session: &Session,
        res: &Resolved,
        lease: &str,
        progress: &Progress,
    ) -> Result<()> {
        let mut present = Vec::with_capacity(res.layers.len());
        for l in &res.layers {
            present.push(self.blob_exists(&l.digest).await?);
        }
        let have_config = self.blob_exists(&res.config.digest).await?;
        // dockerd says nothing about the layers of an image it already has.
        let quiet = have_config && present.iter().all(|p| *p);
        if !have_config {
            let data = fetch_small(session, &res.config).await?;
            self.write_blob(
                lease,
                &res.config.digest,
                data.len() as u64,
                HashMap::new(),
                Source::Bytes(Arc::new(data)),
            )
            .await?;
        }
        if !quiet {
            self.store_layers(session, &res.layers, &present, lease, progress)
                .await?;
        }
        let mut labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            res.config.digest.clone(),
        )]);
        for (i, l) in res.layers.iter().enumerate() {
            labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.digest.clone(),
            );
        }
        self.write_blob(
            lease,
            &res.manifest_digest,
            res.manifest.len() as u64,
            labels,
            Source::Bytes(Arc::new(res.manifest.to_vec())),
        )
        .await?;
        if let Some(i) = res.index_entry {
            let labels = HashMap::from([(
                format!("containerd.io/gc.ref.content.m.{i}"),
                res.manifest_digest.clone(),
            )]);
            self.write_blob(
                lease,
                &res.top_digest,
                res.top.len() as u64,
                labels,
                Source::Bytes(Arc::new(res.top.to_vec())),
            )
            .await?;
        }
        Ok(())
    }

    /// Downloads the missing layers (a few at a time) and writes them in
    /// order, reporting each step as dockerd does.
    async fn store_layers(
        &self,
        session: &Session,
        layers: &[Desc],
        present: &[bool],
        lease: &str,
        progress: &Progress,
    ) -> Result<()> {
        let mut queued = 0;
        for (l, here) in layers.iter().zip(present) {
            let id = short_id(&l.digest);
            if *here {
                progress.layer(&id, "Already exists").await;
            } else {
                progress.layer(&id, "Pulling fs layer").await;
            }
        }
        for (l, here) in layers.iter().zip(present) {
            if !*here {
                queued += 1;
                if queued > PARALLEL_DOWNLOADS {
                    progress.layer(&short_id(&l.digest), "Waiting").await;
                }
            }
        }
        let todo: Vec<&Desc> = layers
            .iter()
            .zip(present)
            .filter(|(_, here)| !**here)
            .map(|(l, _)| l)
            .collect();
        // A window of downloads, finished in order. (A plain loop rather
        // than a stream combinator keeps the future `Send`.)
        let mut todo = todo.into_iter();
        let mut downloads = futures::stream::FuturesOrdered::new();
        for l in todo.by_ref().take(PARALLEL_DOWNLOADS) {
            downloads.push_back(self.download(session, l, progress));
        }
        while let Some(done) = downloads.next().await {
            if let Some(l) = todo.next() {
                downloads.push_back(self.download(session, l, progress));
            }
            let (layer, file, _guard) = done?;
            if let Some((file, size)) = file {
                self.write_blob(
                    lease,
                    &layer.digest,
                    size,
                    HashMap::new(),
                    Source::File {
                        file: Arc::new(file),
                        offset: 0,
                    },
                )
                .await?;
            }
            progress
                .layer(&short_id(&layer.digest), "Pull complete")
                .await;
        }
        Ok(())
    }

    /// Downloads one layer to an unnamed temp file and checks its digest
    /// and size. Holds the layer's lock (returned) so that concurrent pulls
    /// sharing it download it once; `None` when another pull stored it
    /// meanwhile.
    async fn download<'a>(
        &self,
        session: &Session,
        layer: &'a Desc,
        progress: &Progress,
    ) -> Result<(&'a Desc, Option<(std::fs::File, u64)>, BlobGuard)> {
        let guard = blob_lock(&layer.digest).await;
        let id = short_id(&layer.digest);
        if self.blob_exists(&layer.digest).await? {
            progress.layer(&id, "Download complete").await;
            return Ok((layer, None, guard));
        }
        std::fs::create_dir_all(self.work_dir()).map_err(Error::io("create work dir"))?;
        let file = tempfile::tempfile_in(self.work_dir()).map_err(Error::io("create temp file"))?;
        let mut out =
            tokio::fs::File::from_std(file.try_clone().map_err(Error::io("clone temp file"))?);
        let mut stream = session
            .blob(&layer.digest, layer.size, &layer.media_type)
            .await?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut got: u64 = 0;
        let total = layer.size.max(0) as u64;
        let mut throttle = Throttle::new();
        let mut reported = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                RegistryError::new(
                    RegistryErrorKind::Failed,
                    format!("failed to download layer {}: {e}", layer.digest),
                )
            })?;
            ctx.update(&chunk);
            got += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(Error::io("write download"))?;
            if throttle.due() {
                reported = got;
                progress
                    .send(PullEvent::Download {
                        id: id.clone(),
                        current: got,
                        total,
                    })
                    .await;
            }
        }
        // The bar ends full, as dockerd's does.
        if reported != got {
            progress
                .send(PullEvent::Download {
                    id: id.clone(),
                    current: got,
                    total,
                })
                .await;
        }
        out.flush().await.map_err(Error::io("write download"))?;
        drop(out);
        progress.layer(&id, "Verifying Checksum").await;
        let digest = super::content::hex_digest(ctx.finish().as_ref());
        if digest != layer.digest || (layer.size > 0 && got != total) {
            return Err(RegistryError::new(
                RegistryErrorKind::Failed,
                format!(
                    "filesystem layer verification failed for digest {}",
                    layer.digest
                ),
            )
            .into());
        }
        progress.layer(&id, "Download complete").await;
        Ok((layer, Some((file, got)), guard))
    }
}

/// Fetches the manifest the reference names and, for an index, its
/// linux/amd64 manifest.
async fn resolve(session: &Session) -> Result<Resolved> {
    let r = session.reference();
    let first = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let (top, top_digest) = session.manifest(&first).await?;
    let parsed = Manifest::parse(&top, &r.full())?;
    let top_type = parsed.media_type().to_string();
    let (manifest, manifest_digest, index_entry, parsed) = match parsed {
        Manifest::Index { manifests, .. } => {
            let (i, entry) = manifest::pick_platform(&manifests)?;
            let (bytes, digest) = session.manifest(&entry.digest).await?;
            let child = Manifest::parse(&bytes, &r.full())?;
            (bytes, digest, Some(i), child)
        }
        image => (top.clone(), top_digest.clone(), None, image),
    };
    let Manifest::Image { config, layers, .. } = parsed else {
        return Err(RegistryError::new(
            RegistryErrorKind::Unsupported,
            "unsupported manifest format",
        )
        .into());
    };
    Ok(Resolved {
        top,
        top_digest,
        top_type,
        manifest,
        manifest_digest,
        index_entry,
        config,
        layers,
    })
}

/// Reads a small blob (an image config) whole, checking its digest.
async fn fetch_small(session: &Session, d: &Desc) -> Result<Vec<u8>> {
    if d.size < 0 || d.size as u64 > super::content::MAX_JSON_BLOB {
        return Err(RegistryError::new(
            RegistryErrorKind::Unsupported,
            format!("image config {} is too large", d.digest),
        )
        .into());
    }
    let mut stream = session.blob(&d.digest, d.size, &d.media_type).await?;
    let mut data = Vec::with_capacity(d.size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::new(
                RegistryErrorKind::Failed,
                format!("error pulling image configuration: {e}"),
            )
        })?;
        data.extend_from_slice(&chunk);
        if data.len() as u64 > super::content::MAX_JSON_BLOB {
            break;
        }
    }
    if sha256(&data) != d.digest {
        return Err(RegistryError::new(
            RegistryErrorKind::Failed,
            format!("image config verification failed for digest {}", d.digest),
        )
        .into());
    }
    Ok(data)
}

/// The record name a pull gives: `name:tag`, or `name@digest` (without the
/// tag) when pinned by digest, as dockerd records a pull by digest.
fn record_name(r: &Reference) -> String {
    if r.digest.is_some() {
        Reference {
            tag: None,
            ..r.clone()
        }
        .full()
    } else {
        r.full()
    }
}

/// Held while one blob is downloaded and written.
type BlobGuard = tokio::sync::OwnedMutexGuard<()>;

/// One lock per blob digest across the process, so pulls that share a layer
/// download and write it once (containerd also refuses two writers of one
/// ingest ref). Entries go away with their last holder.
async fn blob_lock(digest: &str) -> BlobGuard {
    static LOCKS: std::sync::LazyLock<
        std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    > = std::sync::LazyLock::new(Default::default);
    let lock = {
        let mut map = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        match map.get(digest).and_then(Weak::upgrade) {
            Some(l) => l,
            None => {
                let l = Arc::new(tokio::sync::Mutex::new(()));
                map.insert(digest.to_string(), Arc::downgrade(&l));
                l
            }
        }
    };
    lock.lock_owned().await
}

/// A lease name part no other pull of this process uses.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{t:x}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names() {
        let r = Reference::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(record_name(&r), "127.0.0.1:5000/a/b:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/a/b:v1@{d}")).unwrap();
        assert_eq!(record_name(&r), format!("127.0.0.1:5000/a/b@{d}"));
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
