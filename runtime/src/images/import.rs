//! `docker import`: a root filesystem tar (plain or gzip) becomes a
//! one-layer image whose config is built from `--change` lines, with
//! dockerd's comment (`Imported from -` unless `--message` is given) and
//! one history entry.

use std::collections::HashMap;
use std::io::Read;
use std::io::Seek;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use serde_json::json;

use super::content::hex_digest;
use super::content::sha256;
use super::content::Source;
use super::media;
use super::reference::Reference;
use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;

/// What `POST /images/create?fromSrc=-` asks for besides the body.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `repo[:tag]` to name the image, if any.
    pub name: Option<String>,
    /// The `--change` lines.
    pub changes: Vec<String>,
    /// `--message`; empty means dockerd's default.
    pub message: String,
    /// Where the tar came from as the request named it (`-`).
    pub source: String,
}

/// The layer after decompression: where it is and what it hashes to.
struct Layer {
    file: Arc<std::fs::File>,
    size: u64,
    diff_id: String,
}

impl Containerd {
    /// Imports the tar streamed in `body`; returns the new image ID.
    pub async fn image_import<S, E>(&self, body: S, opts: ImportOptions) -> Result<String>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let name = match opts.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => Some(
                Reference::parse(n)
                    .filter(|r| r.digest.is_none())
                    .ok_or_else(|| Error::InvalidReference(n.to_string()))?,
            ),
            None => None,
        };
        let mut config = super::changes::empty_config();
        super::changes::apply(&mut config, &opts.changes)?;
        self.channel().await?;
        let raw = self.spool_raw(body).await?;
        let work = self.work_dir().to_path_buf();
        let layer = tokio::task::spawn_blocking(move || inflate(raw, &work))
            .await
            .map_err(|e| Error::InvalidArchive(e.to_string()))??;
        let message = if opts.message.is_empty() {
            format!("Imported from {}", opts.source)
        } else {
            opts.message.clone()
        };
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let image = json!({
            "architecture": "amd64",
            "comment": message,
            "config": config,
            "created": created,
            "history": [{ "created": created, "comment": message }],
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [layer.diff_id] },
        });
        let config_bytes = serde_json::to_vec(&image).unwrap_or_default();
        let lease = format!("shoal-import-{}", &layer.diff_id[7..19]);
        self.create_lease(&lease).await?;
        let result = self.store_import(&lease, &layer, config_bytes, name).await;
        self.delete_lease(&lease).await;
        result
    }

    async fn store_import(
        &self,
        lease: &str,
        layer: &Layer,
        config: Vec<u8>,
        name: Option<Reference>,
    ) -> Result<String> {
        let source = Source::File {
            file: layer.file.clone(),
            offset: 0,
        };
        self.write_blob(lease, &layer.diff_id, layer.size, HashMap::new(), source)
            .await?;
        let config_digest = sha256(&config);
        let config_size = config.len();
        self.write_blob(
            lease,
            &config_digest,
            config_size as u64,
            HashMap::new(),
            Source::Bytes(Arc::new(config)),
        )
        .await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::DOCKER_MANIFEST,
            "config": { "mediaType": media::DOCKER_CONFIG, "size": config_size, "digest": config_digest },
            "layers": [{ "mediaType": media::DOCKER_LAYER, "size": layer.size, "digest": layer.diff_id }],
        });
        let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
        let digest = sha256(&manifest);
        let size = manifest.len() as i64;
        let labels = HashMap::from([
            (
                "containerd.io/gc.ref.content.config".to_string(),
                config_digest.clone(),
            ),
            (
                "containerd.io/gc.ref.content.l.0".to_string(),
                layer.diff_id.clone(),
            ),
        ]);
        self.write_blob(
            lease,
            &digest,
            size as u64,
            labels,
            Source::Bytes(Arc::new(manifest)),
        )
        .await?;
        let target = containerd_client::types::Descriptor {
            media_type: media::DOCKER_MANIFEST.into(),
            digest,
            size,
            annotations: HashMap::new(),
        };
        // Without a name the image is kept under its ID, which shows as
        // `<none>` the way dockerd lists an untagged import.
        let record = name.map_or_else(|| config_digest.clone(), |r| r.full());
        self.put_image(&record, target).await?;
        self.image_event("import", &config_digest, &config_digest)
            .await;
        Ok(config_digest)
    }

    /// The upload as it came, in an unnamed temp file, rewound.
    pub(crate) async fn spool_raw<S, E>(&self, mut body: S) -> Result<std::fs::File>
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
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                .await
                .map_err(Error::io("spool upload"))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(Error::io("spool upload"))?;
        drop(out);
        let mut file = file;
        file.rewind().map_err(Error::io("spool upload"))?;
        Ok(file)
    }
}

/// Decompresses (gzip) or copies the upload into the layer file, hashing
/// it, and checks that it is a tar.
fn inflate(mut raw: std::fs::File, work: &std::path::Path) -> Result<Layer> {
    let io = |op| Error::io(op);
    let mut magic = [0u8; 2];
    let n = raw.read(&mut magic).map_err(io("read upload"))?;
    raw.rewind().map_err(io("read upload"))?;
    let mut reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut out = tempfile::tempfile_in(work).map_err(io("create temp file"))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::InvalidArchive(e.to_string()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io("write layer"))?;
        size += n as u64;
    }
    out.rewind().map_err(io("write layer"))?;
    let mut check = tar::Archive::new(&out);
    let entries = check
        .entries()
        .map_err(|e| Error::InvalidArchive(e.to_string()))?;
    for e in entries {
        e.map_err(|e| Error::InvalidArchive(e.to_string()))?;
    }
    Ok(Layer {
        file: Arc::new(out),
        size,
        diff_id: hex_digest(ctx.finish().as_ref()),
    })
}
