//! `docker save`: images as one docker-archive tar, the format `docker
//! load` reads on dockerd and on shoal: `manifest.json`, `repositories`,
//! each config as `<hex>.json`, each layer uncompressed as
//! `<chain id hex>/layer.tar` with its `VERSION` and `json` beside it.
//!
//! The tar is built in an unnamed temp file on a blocking thread (layers
//! are decompressed on the way) and handed back rewound, ready to stream.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io::Seek;
use std::io::Write;

use serde::Serialize;
use serde_json::json;

use super::media;
use super::unpack::chain_ids;
use super::ImageInfo;
use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;

/// One entry of `manifest.json`, fields in dockerd's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// One image to write and the names it is saved under.
struct Item {
    info: ImageInfo,
    tags: Vec<String>,
}

impl Containerd {
    /// Builds the archive of the images `names` name (names or IDs, as
    /// `docker save` takes them). A name that matches nothing fails the
    /// whole call with dockerd's `No such image: ...`.
    pub async fn image_save(&self, names: &[String]) -> Result<std::fs::File> {
        let mut items: Vec<Item> = Vec::new();
        for n in names {
            let (info, by_name) = self.image_find(n).await?;
            let tag = by_name.and_then(|f| super::reference::familiar(&f));
            match items.iter_mut().find(|i| i.info.id == info.id) {
                Some(i) => i.tags.extend(tag),
                None => items.push(Item {
                    info,
                    tags: tag.into_iter().collect(),
                }),
            }
        }
        for i in &items {
            self.image_event("save", &i.info.id, &i.info.id).await;
        }
        std::fs::create_dir_all(self.work_dir()).map_err(Error::io("create work dir"))?;
        let file = tempfile::tempfile_in(self.work_dir()).map_err(Error::io("create temp file"))?;
        let handle = tokio::runtime::Handle::current();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_archive(&handle, file, &items))
            .await
            .map_err(|e| Error::Io {
                op: "write archive",
                source: std::io::Error::other(e.to_string()),
            })?
    }

    fn write_archive(
        &self,
        rt: &tokio::runtime::Handle,
        file: std::fs::File,
        items: &[Item],
    ) -> Result<std::fs::File> {
        let io = Error::io("write archive");
        let mut tar = tar::Builder::new(file);
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for item in items {
            let info = &item.info;
            let hex = info.id.trim_start_matches("sha256:");
            // The stored bytes, not a re-encoding: the ID is their digest.
            let config = rt.block_on(self.read_blob(&info.id))?;
            append(&mut tar, &format!("{hex}.json"), &config)
                .map_err(Error::io("write archive"))?;
            let diff_ids = super::unpack::diff_ids(&info.config);
            let chain = chain_ids(&diff_ids);
            let mut layer_paths = Vec::new();
            let mut parent: Option<String> = None;
            for (blob, id) in info.layers.iter().zip(&chain) {
                let dir = id.trim_start_matches("sha256:").to_string();
                if written.insert(dir.clone()) {
                    self.append_layer(rt, &mut tar, &dir, blob, parent.as_deref())?;
                }
                layer_paths.push(format!("{dir}/layer.tar"));
                parent = Some(dir);
            }
            for t in &item.tags {
                if let Some((repo, tag)) = t.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                    if let Some(top) = &parent {
                        repositories
                            .entry(repo.to_string())
                            .or_default()
                            .insert(tag.to_string(), top.clone());
                    }
                }
            }
            manifest.push(ManifestEntry {
                config: format!("{hex}.json"),
                repo_tags: (!item.tags.is_empty()).then(|| item.tags.clone()),
                layers: layer_paths,
            });
        }
        let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
        append(&mut tar, "manifest.json", &manifest).map_err(Error::io("write archive"))?;
        if !repositories.is_empty() {
            let r = serde_json::to_vec(&repositories).unwrap_or_default();
            append(&mut tar, "repositories", &r).map_err(Error::io("write archive"))?;
        }
        let mut file = tar.into_inner().map_err(Error::io("write archive"))?;
        file.flush().map_err(Error::io("write archive"))?;
        file.rewind().map_err(io)?;
        Ok(file)
    }

    /// `<dir>/VERSION`, `<dir>/json` and `<dir>/layer.tar` (uncompressed).
    fn append_layer(
        &self,
        rt: &tokio::runtime::Handle,
        tar: &mut tar::Builder<std::fs::File>,
        dir: &str,
        blob: &super::LayerBlob,
        parent: Option<&str>,
    ) -> Result<()> {
        let io = || Error::io("write archive");
        let mut raw = tempfile::tempfile_in(self.work_dir()).map_err(io())?;
        rt.block_on(self.copy_blob(&blob.digest, &mut raw))?;
        raw.rewind().map_err(io())?;
        let mut plain =
            if blob.media_type == media::DOCKER_LAYER_GZIP || blob.media_type.ends_with("+gzip") {
                let mut out = tempfile::tempfile_in(self.work_dir()).map_err(io())?;
                std::io::copy(&mut flate2::read::GzDecoder::new(&raw), &mut out).map_err(io())?;
                out.rewind().map_err(io())?;
                out
            } else if blob.media_type.ends_with("+zstd") {
                return Err(Error::BadContent {
                    digest: blob.digest.clone(),
                    reason: "saving zstd layers is not supported".into(),
                });
            } else {
                raw
            };
        let mut d = tar::Header::new_gnu();
        d.set_entry_type(tar::EntryType::Directory);
        d.set_mode(0o755);
        d.set_mtime(0);
        d.set_size(0);
        tar.append_data(&mut d, format!("{dir}/"), std::io::empty())
            .map_err(io())?;
        append(tar, &format!("{dir}/VERSION"), b"1.0").map_err(io())?;
        let mut json = json!({ "id": dir, "created": "1970-01-01T00:00:00Z" });
        if let Some(p) = parent {
            json["parent"] = json!(p);
        }
        append(tar, &format!("{dir}/json"), json.to_string().as_bytes()).map_err(io())?;
        let len = plain.metadata().map_err(io())?.len();
        let mut header = header(len);
        tar.append_data(&mut header, format!("{dir}/layer.tar"), &mut plain)
            .map_err(io())?;
        Ok(())
    }
}

fn header(len: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append(tar: &mut tar::Builder<std::fs::File>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = header(data.len() as u64);
    tar.append_data(&mut h, path, data)
}
