//! Standalone containers: the ones `docker create` and `docker run` make
//! on this node, outside any swarm task. dockerd's own container life:
//! create, start, attach, stop, restart policies, pause, rename, remove,
//! and coming back after the daemon restarts (`--live-restore`: running
//! containers keep running while shoald is away and are adopted again).
//!
//! They are containerd containers in shoal's namespace like task
//! containers, so the Docker view (`runtime::view`) lists, inspects, logs,
//! execs into, copies from and stops them the same way; what only they
//! have lives here and in their [`record::Record`]. Their OCI spec comes
//! from the same builder as a task's (the request read as a task spec,
//! [`spec::as_task`]); their network from the node's network driver under
//! the container's ID: the gateway bridge for `bridge` (with published
//! ports), nothing for `host` and `none`, and for an attachable swarm
//! network an address from the swarm's allocator (a network attachment,
//! as swarmkit makes one) plus the gateway bridge for the way out.

mod calls;
pub mod error;
mod io;
mod names;
mod net_events;
mod networks;
pub mod policy;
pub mod record;
pub mod resources;
mod run;
pub mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use swarm::exec::AttachmentAllocator;
use swarm::exec::NetworkAttacher;
use swarm::model::api;
use tokio::sync::watch;

pub use self::error::Error;
pub use self::error::Result;
pub use self::io::Attached;
pub use self::io::Exit;
pub use self::io::Stdin;
use self::policy::Policy;
use self::record::Record;
pub use self::record::STANDALONE_LABEL;
use self::spec::NetworkMode;
use crate::containers::NewContainer;
use crate::exec::files;
use crate::exec::ids;
use crate::exec::NodeEnv;
use crate::logs::Tap;
use crate::Containerd;

/// What `POST /containers/create` answers.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new container's ID.
    pub id: String,
    /// dockerd's warnings (none yet).
    pub warnings: Vec<String>,
}

/// The node's standalone containers.
pub struct Standalone {
    ctd: Containerd,
    env: Arc<NodeEnv>,
    net: Option<Arc<dyn NetworkAttacher>>,
    bridge_id: String,
    swarm_nets: Option<Arc<dyn AttachmentAllocator>>,
    networks: Arc<crate::networks::LocalNetworks>,
    /// Serializes the creation and removal of local networks.
    network_op: tokio::sync::Mutex<()>,
    live: Mutex<HashMap<String, Arc<Live>>>,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standalone")
            .field(
                "containers",
                &self.live.lock().map(|l| l.len()).unwrap_or(0),
            )
            .finish()
    }
}

/// What the daemon holds for one standalone container while it exists.
struct Live {
    /// Every chunk of output of the current run, for attached clients.
    tap: Tap,
    /// Bumped at every exit, with the exit code.
    exits: watch::Sender<Exit>,
    /// The write end of the process's stdin FIFO, while it runs with one
    /// (or input for its start waits in it).
    stdin: tokio::sync::Mutex<Option<tokio::net::unix::pipe::Sender>>,
    /// An attached client's input ended before the process started: it
    /// gets end-of-file as soon as it runs (`StdinOnce`).
    stdin_ended: std::sync::atomic::AtomicBool,
    /// Whether the process has started and not exited (set and read under
    /// the `stdin` lock).
    running: std::sync::atomic::AtomicBool,
    /// Serializes start, stop, restart and remove.
    op: tokio::sync::Mutex<()>,
    /// Set to stop the restart policy (a pending delay ends at once).
    no_restart: watch::Sender<bool>,
    /// The current run; a monitor of an earlier one does nothing more.
    run: std::sync::atomic::AtomicU64,
    /// The last restart delay.
    delay: Mutex<Option<std::time::Duration>>,
    /// The networks its endpoints are on while it runs.
    joined: Mutex<Vec<net_events::Joined>>,
}

impl Live {
    fn new() -> Live {
        Live {
            tap: tokio::sync::broadcast::channel(1024).0,
            exits: watch::channel(Exit::default()).0,
            stdin: tokio::sync::Mutex::new(None),
            stdin_ended: std::sync::atomic::AtomicBool::new(false),
            running: std::sync::atomic::AtomicBool::new(false),
            op: tokio::sync::Mutex::new(()),
            no_restart: watch::channel(false).0,
            run: std::sync::atomic::AtomicU64::new(0),
            delay: Mutex::new(None),
            joined: Mutex::new(Vec::new()),
        }
    }
}

impl Standalone {
    /// The standalone containers on `ctd`, networked through `net` (none:
    /// loopback only); `bridge_id` is the ID the `bridge` network is shown
    /// with; `swarm_nets` gives addresses on swarm networks; `networks`
    /// are the node-local networks.
    pub fn new(
        ctd: Containerd,
        env: NodeEnv,
        net: Option<Arc<dyn NetworkAttacher>>,
        bridge_id: String,
        swarm_nets: Option<Arc<dyn AttachmentAllocator>>,
        networks: Arc<crate::networks::LocalNetworks>,
    ) -> Arc<Standalone> {
        Arc::new(Standalone {
            ctd,
            env: Arc::new(env),
            net,
            bridge_id,
            swarm_nets,
            networks,
            network_op: tokio::sync::Mutex::new(()),
            live: Mutex::new(HashMap::new()),
        })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.env.containers_root.join(id)
    }

    fn live(&self, id: &str) -> Arc<Live> {
        let mut map = self.live.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| Arc::new(Live::new()))
            .clone()
    }

    fn forget(&self, id: &str) {
        let mut map = self.live.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }

    /// Whether container `id` is a standalone container.
    pub fn owns(&self, id: &str) -> bool {
        Record::exists(&self.dir(id))
    }

    /// The record of container `id`.
    pub fn record(&self, id: &str) -> Result<Record> {
        Record::load(&self.dir(id)).map_err(Error::files("read the container's record"))
    }

    /// `docker create`: makes the container (image unpacked, volumes made,
    /// spec written), not started. `name` empty: a generated one.
    pub async fn create(&self, name: &str, body: api::ContainerCreateBody) -> Result<Created> {
        let name = name.strip_prefix('/').unwrap_or(name).to_string();
        if !name.is_empty() && !names::is_valid(&name) {
            return Err(Error::InvalidName(name));
        }
        let mut body = body;
        let hc = body.host_config.get_or_insert_with(Default::default);
        resources::check(&resources::asked(hc), &resources::HostCpus::probe()).map_err(
            |r| match r {
                resources::Refused::Invalid(m) | resources::Refused::Conflict(m) => {
                    Error::Invalid(m)
                }
            },
        )?;
        resources::at_create(hc);
        let hc = hc.clone();
        let policy = Policy::from_api(hc.restart_policy.as_ref()).map_err(Error::Invalid)?;
        if hc.auto_remove.unwrap_or(false) && policy.restarts() {
            return Err(Error::Invalid(
                "can't create 'AutoRemove' container with restart policy".into(),
            ));
        }
        let mode = NetworkMode::of(&hc)?;
        let image_ref = body.image.clone().unwrap_or_default();
        if image_ref.is_empty() {
            return Err(Error::Invalid("No command specified".into()));
        }
        let image = self.ctd.image_for_task(&image_ref).await?;
        let existing = self.ctd.container_infos(&self.env).await?;
        let taken = |n: &str| existing.iter().find(|c| c.name == n).map(|c| c.id.clone());
        let name = if name.is_empty() {
            // A few tries; the word lists give thousands of pairs.
            let mut n = names::random();
            for _ in 0..20 {
                if taken(&n).is_none() {
                    break;
                }
                n = names::random();
            }
            n
        } else {
            if let Some(id) = taken(&name) {
                return Err(Error::NameInUse { name, id });
            }
            name
        };
        let id = ids::random_hex(32);
        let task = spec::as_task(&body, &id)?;
        // A swarm network is checked (and the address taken) now, so a
        // wrong name fails the create as under dockerd. A local network
        // gives an address only when the container starts.
        if let NetworkMode::Network(n) = &mode {
            if self.mode_network(&mode).is_none() {
                let aliases = aliases(&id, &name, n, &body);
                self.swarm_attach(&id, n, &aliases).await?;
            }
        }
        let lease = self.ctd.creation_lease().await?;
        let made = self
            .create_leased(&id, lease.id(), &name, body, &image, task)
            .await;
        lease.release().await;
        if made.is_err() {
            self.ctd.snapshot_remove(&id).await;
            let _ = std::fs::remove_dir_all(self.dir(&id));
        }
        if let Err(e) = made {
            self.swarm_detach(&id).await;
            return Err(e);
        }
        let actor = self.ctd.container_actor(&id).await;
        self.ctd.container_event("create", &actor, &[]);
        Ok(Created {
            id,
            warnings: Vec::new(),
        })
    }

    async fn create_leased(
        &self,
        id: &str,
        lease: &str,
        name: &str,
        body: api::ContainerCreateBody,
        image: &crate::images::ImageInfo,
        task: swarm::model::Task,
    ) -> Result<()> {
        let chain = self.ctd.unpack(image).await?;
        let mounts = self.ctd.snapshot_prepare(id, &chain, lease).await?;
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).map_err(Error::files("create the container directory"))?;
        let volumes = crate::exec::controller::prepare_volumes(
            self.ctd.events(),
            &self.env,
            &task,
            "",
            &image.config,
            &mounts,
        )
        .await
        .map_err(Error::Failed)?;
        let record = Record {
            name: name.to_string(),
            config: body,
            image_id: image.id.clone(),
            image_config: image.config.clone(),
            volumes,
            run: Default::default(),
        };
        let (spec, labels) = self.build(id, &record, &mounts, None)?;
        record
            .save(&dir)
            .map_err(Error::files("write the container's record"))?;
        self.ctd
            .container_create(NewContainer {
                id: id.to_string(),
                image: image
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| record.config.image.clone().unwrap_or_default()),
                labels,
                spec,
            })
            .await?;
        Ok(())
    }

    /// The OCI spec JSON and the labels of the container from its record,
    /// in `netns` when it has one.
    fn build(
        &self,
        id: &str,
        record: &Record,
        mounts: &[containerd_client::types::Mount],
        netns: Option<&swarm::exec::TaskNetns>,
    ) -> Result<(Vec<u8>, HashMap<String, String>)> {
        let task = spec::as_task(&record.config, id)?;
        let hc = record.host_config();
        let mode = NetworkMode::of(&hc)?;
        let users = crate::exec::users::UserDb::from_layers(&files::layer_dirs(mounts));
        let dir = self.dir(id);
        let file_paths = files::paths(&dir);
        let ctx = crate::exec::spec::TaskContext {
            task: &task,
            node_id: "",
            node_hostname: &self.env.hostname,
            container_id: id,
            image_config: &record.image_config,
            files: &file_paths,
            volumes: &record.volumes,
            users: &users,
            dep_files: &[],
            init_binary: self.env.init_binary.as_deref(),
            netns: netns.map(|n| n.path.as_path()),
            cgroup_parent: &self.env.cgroup_parent,
        };
        let mut oci = crate::exec::spec::build(&ctx).map_err(Error::Invalid)?;
        spec::adjust(&mut oci, &mode, hc.privileged.unwrap_or(false));
        resources::apply(&mut oci, &hc);
        let hostname = if mode == NetworkMode::Host {
            self.env.hostname.clone()
        } else {
            crate::exec::spec::hostname(&ctx)
        };
        if mode == NetworkMode::Host {
            write_host_files(&file_paths, &hostname)
        } else {
            files::write(&file_paths, &hostname, netns)
        }
        .map_err(Error::files("write the container's files"))?;
        // The image's labels, then the request's, as dockerd merges them.
        let mut labels = crate::exec::spec::image_labels(&record.image_config);
        labels.extend(record.config.labels.clone().unwrap_or_default());
        labels.insert(files::NAME_LABEL.into(), record.name.clone());
        labels.insert(STANDALONE_LABEL.into(), "1".into());
        let json = serde_json::to_vec(&oci).map_err(|e| Error::Failed(e.to_string()))?;
        Ok((json, labels))
    }

    /// `docker rename`: the new name must be free.
    pub async fn rename(&self, id: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !names::is_valid(new_name) {
            return Err(Error::InvalidName(new_name.to_string()));
        }
        let live = self.live(id);
        let _op = live.op.lock().await;
        let dir = self.dir(id);
        let mut record = self.record(id)?;
        if record.name == new_name {
            return Err(Error::SameName);
        }
        let existing = self.ctd.container_infos(&self.env).await?;
        if let Some(other) = existing.iter().find(|c| c.name == new_name) {
            return Err(Error::NameInUse {
                name: new_name.to_string(),
                id: other.id.clone(),
            });
        }
        let Some(c) = self.ctd.container_get(id).await? else {
            return Err(Error::Failed(format!("container {id} is gone")));
        };
        let old = record.name.clone();
        let mut labels = c.labels;
        labels.insert(files::NAME_LABEL.into(), new_name.to_string());
        self.ctd.container_update(id, None, Some(labels)).await?;
        record.name = new_name.to_string();
        record
            .save(&dir)
            .map_err(Error::files("write the container's record"))?;
        // On a swarm network the names are the allocator's: asking again
        // with the new ones changes them on every node, address kept; on
        // local networks the driver's, attaching again. A stopped
        // container holds no address to rename.
        let running = existing
            .iter()
            .any(|c| c.id == id && c.state.status.is_running());
        if running {
            let mode = NetworkMode::of(&record.host_config())?;
            if let Err(e) = self.attach_network(id, &mode, &record, true).await {
                tracing::warn!(container = %id, error = %e, "renaming on the container's networks");
            }
        }
        let actor = self.ctd.container_actor(id).await;
        self.ctd
            .container_event("rename", &actor, &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `docker pause` (`pause`) and `docker unpause`.
    pub async fn pause(&self, c: &crate::view::ContainerInfo, pause: bool) -> Result<()> {
        use crate::view::state::Status;
        match (c.state.status, pause) {
            (Status::Running, true) | (Status::Paused, false) => {}
            (Status::Paused, true) => return Err(Error::AlreadyPaused(c.id.clone())),
            (Status::Running, false) => return Err(Error::NotPaused(c.id.clone())),
            _ => return Err(Error::NotRunning(c.id.clone())),
        }
        self.ctd.task_pause(&c.id, pause).await?;
        let actor = self.ctd.container_actor(&c.id).await;
        self.ctd
            .container_event(if pause { "pause" } else { "unpause" }, &actor, &[]);
        Ok(())
    }

    /// `docker update`: a new restart policy and new limits, checked and
    /// merged as dockerd does, applied at once to a running container and
    /// kept in its record for its next starts.
    pub async fn update(&self, id: &str, u: api::ContainerUpdateBody) -> Result<()> {
        let refused = |r: resources::Refused| match r {
            resources::Refused::Invalid(m) => Error::Invalid(m),
            resources::Refused::Conflict(message) => Error::UpdateConflict {
                id: id.to_string(),
                message,
            },
        };
        resources::check(&u, &resources::HostCpus::probe()).map_err(refused)?;
        let live = self.live(id);
        let _op = live.op.lock().await;
        let mut record = self.record(id)?;
        let old = record.host_config();
        let mut hc = resources::merge(&old, &u).map_err(refused)?;
        if let Some(p) = u.restart_policy {
            let policy = Policy::from_api(Some(&p)).map_err(Error::Invalid)?;
            if hc.auto_remove.unwrap_or(false) && policy.restarts() {
                return Err(Error::Invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                        .into(),
                ));
            }
            hc.restart_policy = Some(p);
        }
        let running = self.ctd.task_state(id).await?.is_some_and(|p| p.running);
        if running && resources::linux(&hc) != resources::linux(&old) {
            self.ctd
                .task_update(id, &resources::linux(&hc))
                .await
                .map_err(|e| Error::Failed(format!("Cannot update container {id}: {e}")))?;
        }
        record.config.host_config = Some(hc);
        record
            .save(&self.dir(id))
            .map_err(Error::files("write the container's record"))?;
        let actor = self.ctd.container_actor(id).await;
        self.ctd.container_event("update", &actor, &[]);
        Ok(())
    }

    /// Container IDs of every standalone container the node has, for the
    /// network driver's clean-up to keep their namespaces.
    pub async fn ids(ctd: &Containerd) -> crate::Result<Vec<String>> {
        Ok(ctd
            .container_list(vec![format!("labels.\"{STANDALONE_LABEL}\"")])
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }
}

/// A container's names on a swarm network: its name, its short ID, and
/// the aliases its endpoint config gives for that network.
fn aliases(id: &str, name: &str, network: &str, body: &api::ContainerCreateBody) -> Vec<String> {
    let mut out = vec![name.to_string(), id.chars().take(12).collect()];
    if let Some(ep) = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref())
        .and_then(|e| e.get(network))
    {
        for a in ep.aliases.iter().flatten() {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
    }
    out
}

impl Standalone {
    /// The container's attachment to swarm network `network`.
    async fn swarm_attach(
        &self,
        id: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<swarm::exec::Attachment> {
        match &self.swarm_nets {
            Some(s) => Ok(s.attach(id, network, aliases).await?),
            None => Err(Error::NoSuchNetwork(network.to_string())),
        }
    }

    /// Gives back the container's swarm network addresses.
    async fn swarm_detach(&self, id: &str) {
        if let Some(s) = &self.swarm_nets {
            if let Err(e) = s.detach(id).await {
                tracing::warn!(container = %id, error = %e, "releasing a container's swarm addresses");
            }
        }
    }

    /// The container's attachment, from its record, when it is on a swarm
    /// network.
    async fn swarm_attachment(
        &self,
        id: &str,
        record: &Record,
    ) -> Result<Option<swarm::exec::Attachment>> {
        let mode = NetworkMode::of(&record.host_config())?;
        let NetworkMode::Network(n) = &mode else {
            return Ok(None);
        };
        if self.mode_network(&mode).is_some() {
            return Ok(None);
        }
        let aliases = aliases(id, &record.name, n, &record.config);
        self.swarm_attach(id, n, &aliases).await.map(Some)
    }
}

/// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` of a container on
/// the host's network: the host's own.
fn write_host_files(f: &crate::exec::spec::ContainerFiles, hostname: &str) -> std::io::Result<()> {
    std::fs::write(&f.hostname, format!("{hostname}\n"))?;
    let hosts = std::fs::read_to_string("/etc/hosts")
        .unwrap_or_else(|_| format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"));
    std::fs::write(&f.hosts, hosts)?;
    std::fs::write(
        &f.resolv_conf,
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    )
}
