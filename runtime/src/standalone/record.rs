//! What dockerd keeps about a standalone container beyond containerd's
//! record: the create request as accepted, the image config it was made
//! from, its volumes, and its run history (restart count, whether the user
//! stopped it). One JSON file in the container's directory, replaced
//! atomically and synced before the caller answers.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;
use swarm::model::api;

/// The containerd label that marks a standalone container (one not made
/// for a swarm task); the Docker view hides it.
pub const STANDALONE_LABEL: &str = "io.shoal.standalone";
const FILE: &str = "standalone.json";

/// A standalone container's own record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// Its name, without the leading `/`.
    pub name: String,
    /// The create request (`Config` with `HostConfig` and
    /// `NetworkingConfig`) as accepted.
    pub config: api::ContainerCreateBody,
    /// The image's ID (`sha256:...`).
    pub image_id: String,
    /// The image config JSON it was made from.
    pub image_config: serde_json::Value,
    /// The host path of each volume mount's data, by target.
    #[serde(default)]
    pub volumes: HashMap<String, PathBuf>,
    /// What happened to it since.
    #[serde(default)]
    pub run: RunRecord,
}

/// The run history dockerd keeps in its container state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Restarts made by the restart policy (`RestartCount`).
    #[serde(default)]
    pub restart_count: u64,
    /// Whether the user stopped it (`docker stop`, `docker kill`): no
    /// restart policy brings it back until it is started again.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Whether it was ever started.
    #[serde(default)]
    pub started: bool,
    /// The ports published for the current run (random ones resolved).
    #[serde(default)]
    pub published: Vec<swarm::exec::HostPort>,
}

impl Record {
    /// The record in container directory `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Record> {
        let raw = std::fs::read(dir.join(FILE))?;
        serde_json::from_slice(&raw)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Whether `dir` holds a standalone container's record.
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE).is_file()
    }

    /// Writes the record into `dir`, durably: a new file synced and renamed
    /// over the old one, then the directory synced.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// `HostConfig`, or the default one.
    pub fn host_config(&self) -> api::HostConfig {
        self.config.host_config.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!Record::exists(dir.path()));
        let mut r = Record {
            name: "web".into(),
            ..Default::default()
        };
        r.config.image = Some("busybox".into());
        r.run.restart_count = 3;
        r.save(dir.path()).unwrap();
        assert!(Record::exists(dir.path()));
        let back = Record::load(dir.path()).unwrap();
        assert_eq!(back.name, "web");
        assert_eq!(back.config.image.as_deref(), Some("busybox"));
        assert_eq!(back.run.restart_count, 3);
    }
}
