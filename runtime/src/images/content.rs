//! Content store and lease calls: read a blob, check one exists, write one
//! from memory or from a region of a local file.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::CreateRequest;
use containerd_client::services::v1::DeleteRequest;
use containerd_client::services::v1::InfoRequest;
use containerd_client::services::v1::ReadContentRequest;
use containerd_client::services::v1::WriteAction;
use containerd_client::services::v1::WriteContentRequest;

use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;

/// Largest JSON blob (manifest, index, config) shoal reads into memory.
pub(crate) const MAX_JSON_BLOB: u64 = 16 << 20;
/// Bytes per write message (containerd accepts up to 16 MiB per message).
const CHUNK: u64 = 1 << 20;

/// Where the bytes of a blob to write come from.
pub(crate) enum Source {
    /// Already in memory.
    Bytes(Arc<Vec<u8>>),
    /// `len` bytes at `offset` of a local file.
    File {
        file: Arc<std::fs::File>,
        offset: u64,
    },
}

impl Source {
    fn read(&self, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
        match self {
            Source::Bytes(b) => Ok(b[at as usize..(at + len) as usize].to_vec()),
            Source::File { file, offset } => {
                let mut buf = vec![0; len as usize];
                file.read_exact_at(&mut buf, offset + at)?;
                Ok(buf)
            }
        }
    }
}

impl Containerd {
    /// Reads a whole (small) blob.
    pub(crate) async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut client = ContentClient::new(self.channel().await?);
        let req = ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        };
        let mut stream = client
            .read(self.request(req, None))
            .await
            .map_err(|s| self.status("read content", s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|s| self.status("read content", s))?
        {
            out.extend_from_slice(&msg.data);
            if out.len() as u64 > MAX_JSON_BLOB {
                return Err(Error::BadContent {
                    digest: digest.to_string(),
                    reason: "too large to read".into(),
                });
            }
        }
        Ok(out)
    }

    /// Copies a blob of any size into `out`, chunk by chunk. `out` is a
    /// blocking writer: call this only from a blocking thread (through
    /// `Handle::block_on`) or with a writer that never blocks for long.
    pub(crate) async fn copy_blob(
        &self,
        digest: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let mut client = ContentClient::new(self.channel().await?);
        let req = ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        };
        let mut stream = client
            .read(self.request(req, None))
            .await
            .map_err(|s| self.status("read content", s))?
            .into_inner();
        let mut n = 0u64;
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|s| self.status("read content", s))?
        {
            out.write_all(&msg.data).map_err(Error::io("copy blob"))?;
            n += msg.data.len() as u64;
        }
        Ok(n)
    }

    /// Whether the content store holds `digest`.
    pub(crate) async fn blob_exists(&self, digest: &str) -> Result<bool> {
        let mut client = ContentClient::new(self.channel().await?);
        let req = InfoRequest {
            digest: digest.to_string(),
        };
        match client.info(self.request(req, None)).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(self.status("content info", s)),
        }
    }

    /// Writes a blob of `size` bytes whose sha256 is `digest`, committing it
    /// with `labels`, under `lease`. A blob already present is left as is.
    pub(crate) async fn write_blob(
        &self,
        lease: &str,
        digest: &str,
        size: u64,
        labels: HashMap<String, String>,
        source: Source,
    ) -> Result<()> {
        if self.blob_exists(digest).await? {
            return Ok(());
        }
        let mut client = ContentClient::new(self.channel().await?);
        let reference = format!("shoal-load-{digest}");
        let expected = digest.to_string();
        // One message per chunk; the last one commits. A local read error
        // ends the stream early, which leaves the blob uncommitted and is
        // caught by the check below.
        let requests = futures::stream::unfold(Some(0u64), move |at| {
            let Some(at) = at else {
                return std::future::ready(None);
            };
            let len = CHUNK.min(size - at);
            let data = match source.read(at, len) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "reading blob to upload");
                    return std::future::ready(None);
                }
            };
            let last = at + len == size;
            let req = WriteContentRequest {
                action: if last {
                    WriteAction::Commit
                } else {
                    WriteAction::Write
                } as i32,
                r#ref: reference.clone(),
                total: size as i64,
                expected: expected.clone(),
                offset: at as i64,
                data,
                labels: if last { labels.clone() } else { HashMap::new() },
            };
            std::future::ready(Some((req, if last { None } else { Some(at + len) })))
        });
        match client.write(self.request(requests, Some(lease))).await {
            Ok(resp) => {
                let mut resp = resp.into_inner();
                loop {
                    match resp.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(s) if s.code() == tonic::Code::AlreadyExists => break,
                        Err(s) => return Err(self.status("write content", s)),
                    }
                }
            }
            Err(s) if s.code() == tonic::Code::AlreadyExists => {}
            Err(s) => return Err(self.status("write content", s)),
        }
        if !self.blob_exists(digest).await? {
            return Err(Error::BadContent {
                digest: digest.to_string(),
                reason: "upload did not commit".into(),
            });
        }
        Ok(())
    }

    /// Creates a lease that keeps content written under it from garbage
    /// collection; it expires by itself after an hour if never deleted.
    pub(crate) async fn create_lease(&self, id: &str) -> Result<()> {
        let mut client = LeasesClient::new(self.channel().await?);
        let expire = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let expire = expire
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let req = CreateRequest {
            id: id.to_string(),
            labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
        };
        client
            .create(self.request(req, None))
            .await
            .map_err(|s| self.status("create lease", s))?;
        Ok(())
    }

    /// Deletes a lease; content not referenced otherwise becomes collectable.
    pub(crate) async fn delete_lease(&self, id: &str) {
        let Ok(channel) = self.channel().await else {
            return;
        };
        let req = DeleteRequest {
            id: id.to_string(),
            sync: false,
        };
        if let Err(s) = LeasesClient::new(channel)
            .delete(self.request(req, None))
            .await
        {
            tracing::warn!(lease = id, error = %s.message(), "delete lease");
        }
    }
}

/// `sha256:<hex>` of `data`.
pub(crate) fn sha256(data: &[u8]) -> String {
    hex_digest(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// `sha256:<hex>` of a finished ring digest.
pub(crate) fn hex_digest(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
