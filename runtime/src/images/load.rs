//! `docker load`: a docker-archive (`manifest.json` + config + layer tars)
//! or an OCI image layout (`index.json` + `blobs/sha256/...`) into
//! containerd's content store, then one image record per name.
//!
//! The upload is spooled to an unnamed temp file first: a tar has to be read
//! twice (once to find and hash every member, once per blob to upload it)
//! and layers can be large, so nothing but small JSON is held in memory.
//! Everything is written under one lease so containerd's garbage collector
//! cannot take blobs between their upload and the image record that
//! references them.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use containerd_client::types::Descriptor;
use futures::Stream;
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::content::hex_digest;
use super::content::sha256;
use super::content::Source;
use super::content::MAX_JSON_BLOB;
use super::media;
use super::reference::Reference;
use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;

/// A regular file inside the uploaded tar.
#[derive(Debug, Clone)]
struct Member {
    offset: u64,
    size: u64,
    digest: String,
}

/// The uploaded tar on disk and an index of its members.
struct Archive {
    file: Arc<std::fs::File>,
    members: HashMap<String, Member>,
}

impl Archive {
    fn member(&self, path: &str) -> Result<&Member> {
        let key = clean(path);
        self.members
            .get(&key)
            .ok_or_else(|| Error::InvalidArchive(format!("{key} is missing")))
    }

    fn read(&self, m: &Member) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        if m.size > MAX_JSON_BLOB {
            return Err(Error::InvalidArchive("metadata file too large".into()));
        }
        let mut buf = vec![0; m.size as usize];
        self.file
            .read_exact_at(&mut buf, m.offset)
            .map_err(Error::io("read archive"))?;
        Ok(buf)
    }

    fn source(&self, m: &Member) -> Source {
        Source::File {
            file: self.file.clone(),
            offset: m.offset,
        }
    }

    /// Reads the first bytes of a member (to sniff compression).
    fn head(&self, m: &Member) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; m.size.min(4) as usize];
        let _ = self.file.read_exact_at(&mut buf, m.offset);
        buf
    }
}

/// `a/./b`, `./a/b` and `/a/b` all become `a/b`; `..` goes up a level.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct OciDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: OciDescriptor,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
}

/// One blob to upload: where it sits in the archive and its descriptor.
struct Blob<'a> {
    member: &'a Member,
    media_type: String,
}

impl Containerd {
    /// Loads a docker-archive or OCI-layout tar streamed in `body`. Returns
    /// the lines dockerd prints: `Loaded image: NAME` per name, or
    /// `Loaded image ID: sha256:...` for an image without one.
    ///
    /// Images without a name are reported but not kept (containerd holds
    /// only named records); that matches neither dockerd store exactly and
    /// is a known gap.
    pub async fn image_load<S, E>(&self, body: S) -> Result<Vec<String>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // Connect first so an unreachable containerd fails before the upload.
        self.channel().await?;
        let archive = self.spool(body).await?;
        let lease = format!("shoal-load-{}", std::process::id()) + &format!("-{}", rand_suffix());
        self.create_lease(&lease).await?;
        let result = self.load_archive(&archive, &lease).await;
        self.delete_lease(&lease).await;
        result
    }

    async fn spool<S, E>(&self, mut body: S) -> Result<Archive>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        std::fs::create_dir_all(self.work_dir()).map_err(Error::io("create work dir"))?;
        let file = tempfile::tempfile_in(self.work_dir()).map_err(Error::io("create temp file"))?;
        let mut out =
            tokio::fs::File::from_std(file.try_clone().map_err(Error::io("clone temp file"))?);
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| Error::InvalidArchive(format!("reading the upload: {e}")))?;
            out.write_all(&chunk)
                .await
                .map_err(Error::io("spool upload"))?;
        }
        out.flush().await.map_err(Error::io("spool upload"))?;
        drop(out);
        let file = Arc::new(file);
        let scan = file.clone();
        let members = tokio::task::spawn_blocking(move || index_tar(&scan))
            .await
            .map_err(|e| Error::InvalidArchive(e.to_string()))??;
        Ok(Archive { file, members })
    }

    async fn load_archive(&self, ar: &Archive, lease: &str) -> Result<Vec<String>> {
        if ar.members.contains_key("manifest.json") {
            self.load_docker(ar, lease).await
        } else if ar.members.contains_key("index.json") {
            self.load_oci(ar, lease).await
        } else {
            Err(Error::InvalidArchive(
                "neither manifest.json nor index.json found".into(),
            ))
        }
    }

    async fn load_docker(&self, ar: &Archive, lease: &str) -> Result<Vec<String>> {
        let entries: Vec<DockerManifestEntry> =
            serde_json::from_slice(&ar.read(ar.member("manifest.json")?)?)
                .map_err(|e| Error::InvalidArchive(format!("manifest.json: {e}")))?;
        let mut lines = Vec::new();
        for entry in entries {
            let config = Blob {
                member: ar.member(&entry.config)?,
                media_type: media::DOCKER_CONFIG.into(),
            };
            let mut layers = Vec::new();
            for l in &entry.layers {
                let member = ar.member(l)?;
                let head = ar.head(member);
                let media_type = if head.starts_with(&[0x1f, 0x8b]) {
                    media::DOCKER_LAYER_GZIP
                } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                    media::OCI_LAYER_ZSTD
                } else {
                    media::DOCKER_LAYER
                };
                layers.push(Blob {
                    member,
                    media_type: media_type.into(),
                });
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media::DOCKER_MANIFEST,
                "config": descriptor_json(&config),
                "layers": layers.iter().map(descriptor_json).collect::<Vec<_>>(),
            });
            let manifest =
                serde_json::to_vec(&manifest).map_err(|e| Error::InvalidArchive(e.to_string()))?;
            let target = self
                .upload_image(
                    ar,
                    lease,
                    &config,
                    &layers,
                    manifest,
                    media::DOCKER_MANIFEST,
                )
                .await?;
            let names: Vec<Reference> = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    Reference::parse(t)
                        .ok_or_else(|| Error::InvalidArchive(format!("invalid tag {t}")))
                })
                .collect::<Result<_>>()?;
            lines.extend(
                self.name_image(&names, target, &config.member.digest)
                    .await?,
            );
            let id = &config.member.digest;
            self.image_event("load", id, id).await;
        }
        Ok(lines)
    }

    async fn load_oci(&self, ar: &Archive, lease: &str) -> Result<Vec<String>> {
        let index: OciIndex = serde_json::from_slice(&ar.read(ar.member("index.json")?)?)
            .map_err(|e| Error::InvalidArchive(format!("index.json: {e}")))?;
        let mut lines = Vec::new();
        for desc in index.manifests {
            if desc.media_type != media::OCI_MANIFEST && desc.media_type != media::DOCKER_MANIFEST {
                return Err(Error::InvalidArchive(format!(
                    "unsupported manifest type {} in index.json",
                    desc.media_type
                )));
            }
            let manifest_member = ar.member(&blob_path(&desc.digest))?;
            check(manifest_member, &desc)?;
            let manifest_bytes = ar.read(manifest_member)?;
            let manifest: OciManifest = serde_json::from_slice(&manifest_bytes)
                .map_err(|e| Error::InvalidArchive(format!("manifest {}: {e}", desc.digest)))?;
            let config_member = ar.member(&blob_path(&manifest.config.digest))?;
            check(config_member, &manifest.config)?;
            let config = Blob {
                member: config_member,
                media_type: manifest.config.media_type.clone(),
            };
            let mut layers = Vec::new();
            for l in &manifest.layers {
                let member = ar.member(&blob_path(&l.digest))?;
                check(member, l)?;
                layers.push(Blob {
                    member,
                    media_type: l.media_type.clone(),
                });
            }
            let target = self
                .upload_image(
                    ar,
                    lease,
                    &config,
                    &layers,
                    manifest_bytes,
                    &desc.media_type,
                )
                .await?;
            let name = desc
                .annotations
                .get("io.containerd.image.name")
                .and_then(|n| Reference::parse(n))
                .or_else(|| {
                    desc.annotations
                        .get("org.opencontainers.image.ref.name")
                        .filter(|n| n.contains('/'))
                        .and_then(|n| Reference::parse(n))
                });
            let names: Vec<Reference> = name.into_iter().collect();
            lines.extend(
                self.name_image(&names, target, &config.member.digest)
                    .await?,
            );
        }
        Ok(lines)
    }

    /// Uploads config, layers and manifest; returns the manifest descriptor.
    async fn upload_image(
        &self,
        ar: &Archive,
        lease: &str,
        config: &Blob<'_>,
        layers: &[Blob<'_>],
        manifest: Vec<u8>,
        manifest_type: &str,
    ) -> Result<Descriptor> {
        for b in std::iter::once(config).chain(layers) {
            let m = b.member;
            self.write_blob(lease, &m.digest, m.size, HashMap::new(), ar.source(m))
                .await?;
        }
        // The GC labels make the manifest keep its config and layers alive
        // once the lease is gone.
        let mut labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            config.member.digest.clone(),
        )]);
        for (i, l) in layers.iter().enumerate() {
            labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.member.digest.clone(),
            );
        }
        let digest = sha256(&manifest);
        let size = manifest.len() as u64;
        self.write_blob(
            lease,
            &digest,
            size,
            labels,
            Source::Bytes(Arc::new(manifest)),
        )
        .await?;
        Ok(Descriptor {
            media_type: manifest_type.to_string(),
            digest,
            size: size as i64,
            annotations: HashMap::new(),
        })
    }

    async fn name_image(
        &self,
        names: &[Reference],
        target: Descriptor,
        config_digest: &str,
    ) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(vec![format!("Loaded image ID: {config_digest}")]);
        }
        let mut lines = Vec::new();
        for r in names {
            self.put_image(&r.full(), target.clone()).await?;
            lines.push(format!("Loaded image: {}", r.familiar()));
        }
        Ok(lines)
    }
}

fn descriptor_json(b: &Blob<'_>) -> serde_json::Value {
    serde_json::json!({
        "mediaType": b.media_type,
        "size": b.member.size,
        "digest": b.member.digest,
    })
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

fn check(m: &Member, d: &OciDescriptor) -> Result<()> {
    if m.digest != d.digest || m.size as i64 != d.size {
        return Err(Error::InvalidArchive(format!(
            "blob {} does not match its descriptor",
            d.digest
        )));
    }
    Ok(())
}

/// Indexes every regular file of the tar (offset, size, sha256); symlinks
/// and hard links become aliases of their targets.
fn index_tar(file: &std::fs::File) -> Result<HashMap<String, Member>> {
    let bad = |e: std::io::Error| Error::InvalidArchive(e.to_string());
    let mut members = HashMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    // The spooling handle shares this file's offset: start from the top.
    let mut file = file;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(bad)?;
    let mut ar = tar::Archive::new(file);
    for entry in ar.entries_with_seek().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = clean(&entry.path().map_err(bad)?.to_string_lossy());
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                let target = target.to_string_lossy().to_string();
                let resolved = if kind.is_symlink() && !target.starts_with('/') {
                    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                    clean(&format!("{parent}/{target}"))
                } else {
                    clean(&target)
                };
                links.push((path, resolved));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let offset = entry.raw_file_position();
        let size = entry.size();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(bad)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        let digest = hex_digest(ctx.finish().as_ref());
        members.insert(
            path,
            Member {
                offset,
                size,
                digest,
            },
        );
    }
    for (alias, target) in links {
        if let Some(m) = members.get(&target).cloned() {
            members.insert(alias, m);
        }
    }
    Ok(members)
}

fn rand_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{n:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean("./a/b"), "a/b");
        assert_eq!(clean("a/../c/layer.tar"), "c/layer.tar");
        assert_eq!(clean("/manifest.json"), "manifest.json");
    }

    #[test]
    fn blob_paths() {
        assert_eq!(blob_path("sha256:ab"), "blobs/sha256/ab");
    }
}
