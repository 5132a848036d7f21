//! Local volumes: what `docker volume ls/create/inspect/rm/prune` see, and
//! what a task's `type=volume` mounts bind.
//!
//! dockerd's `local` driver keeps each volume as a directory
//! `<data-root>/volumes/<name>/_data`; shoal keeps the same layout, so a
//! volume is on disk (and outlives shoald) as soon as it exists. What
//! dockerd keeps in its metadata database (creation time, labels, options)
//! sits beside `_data` in a small JSON file ([`store`]).
//!
//! dockerd counts a volume as used while any container (running or not)
//! mounts it. shoal has no container records of its own: the containers'
//! OCI specs in containerd are the record, so [`Containerd::volume_refs`]
//! reads the users of each volume from them.

mod error;
pub mod seed;
pub mod store;
pub mod task;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;

pub use error::Error;
pub use error::Result;
pub use store::VolumeStore;
use time::OffsetDateTime;

use crate::exec::NodeEnv;
use crate::Containerd;

/// The label dockerd puts on every volume created without a name.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// The only driver this node has.
pub const LOCAL_DRIVER: &str = "local";

/// One local volume as the Docker API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name (64 hex digits for an anonymous one).
    pub name: String,
    /// Host path of its data (`<root>/<name>/_data`).
    pub mountpoint: PathBuf,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Its labels; `None` when it was made without any (dockerd's `null`).
    pub labels: Option<HashMap<String, String>>,
    /// Driver options it was made with; `None` when none were given.
    pub options: Option<HashMap<String, String>>,
}

impl Volume {
    /// Whether dockerd made it for a mount without a name.
    pub fn is_anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }

    /// `CreatedAt` as dockerd prints it (Go's RFC 3339, whole seconds).
    pub fn created_at_text(&self) -> String {
        let t = self
            .created_at
            .replace_nanosecond(0)
            .unwrap_or(self.created_at);
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

/// What a new volume is made with (`POST /volumes/create`, or a task's
/// mount).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVolume {
    /// Its name; `None` makes an anonymous volume.
    pub name: Option<String>,
    /// The driver asked for ("" is `local`).
    pub driver: String,
    /// Labels to give it.
    pub labels: Option<HashMap<String, String>>,
    /// Driver options.
    pub options: Option<HashMap<String, String>>,
}

impl Containerd {
    /// The containers (full IDs) that mount each volume, by volume name,
    /// from the containers' specs. A volume absent from the map is unused
    /// (dockerd's "dangling").
    pub async fn volume_refs(&self, env: &NodeEnv) -> crate::Result<BTreeMap<String, Vec<String>>> {
        let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in self.container_infos(env).await? {
            for m in &c.spec.mounts {
                if let Some(name) = &m.name {
                    let users = refs.entry(name.clone()).or_default();
                    if !users.contains(&c.id) {
                        users.push(c.id.clone());
                    }
                }
            }
        }
        Ok(refs)
    }

    /// `docker volume prune`: removes every volume no container mounts
    /// that `select` picks, except those made with driver options (their
    /// data is not on this disk, so dockerd never prunes them). Returns the
    /// names removed and the bytes freed; a volume that cannot be removed
    /// is logged and skipped, as dockerd does.
    pub async fn volume_prune(
        &self,
        env: &NodeEnv,
        select: impl Fn(&Volume) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let store = VolumeStore::new(&env.volumes_root).with_events(self.events().clone());
        let refs = self.volume_refs(env).await?;
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for v in store.list()? {
            let unused = !refs.contains_key(&v.name);
            let local = v.options.as_ref().is_none_or(|o| o.is_empty());
            if !(unused && local && select(&v)) {
                continue;
            }
            let size = store::dir_size(&v.mountpoint);
            match store.remove(&v.name) {
                Ok(()) => {
                    reclaimed += size;
                    deleted.push(v.name);
                }
                Err(e) => tracing::warn!(volume = %v.name, error = %e, "pruning a volume"),
            }
        }
        let actor = swarm::events::Actor::new("").with("reclaimed", reclaimed.to_string());
        self.events().log("volume", "prune", actor);
        Ok((deleted, reclaimed))
    }

    /// Removes volume `name` unless a container mounts it (dockerd's
    /// `remove NAME: volume is in use - [IDs]`). With `force` a volume that
    /// does not exist is not an error.
    pub async fn volume_remove(&self, env: &NodeEnv, name: &str, force: bool) -> Result<()> {
        let store = VolumeStore::new(&env.volumes_root).with_events(self.events().clone());
        if let Err(e) = store.get(name) {
            return match e {
                Error::NoSuchVolume(_) if force => Ok(()),
                e => Err(e),
            };
        }
        let refs = self.volume_refs(env).await?;
        if let Some(users) = refs.get(name).filter(|u| !u.is_empty()) {
            return Err(Error::InUse {
                name: name.to_string(),
                containers: users.clone(),
            });
        }
        store.remove(name)
    }
}
