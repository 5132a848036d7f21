//! netdrv: the node side of shoal's networking. [`OverlayDriver`] makes the
//! networks of the tasks assigned to this node real in the kernel: one
//! network namespace per task, one bridge per swarm network (in a sandbox
//! namespace of its own, see `bridge.rs`), and a node-local gateway bridge
//! with masquerade for the way out (see `gwbridge.rs`). Tasks on a
//! non-ingress network also get the embedded DNS server at 127.0.0.11 (see
//! `dns`), answering from the records of the last
//! [`NetworkAttacher::update_dns`]; the same records' service VIPs are
//! balanced by an nftables table inside each task's namespace (see `vip`).
//! Standalone containers may also be on node-local bridge networks, whose
//! bridges live in the driver's own namespace (see `local`).
//!
//! Layout under the state directory (`<data-root>/netdrv`):
//! - `state.json`: what the driver made ([`state::NodeState`]), rewritten
//!   atomically after every change, so a restarted shoald can detach and
//!   prune tasks that kept running.
//! - `netns/<task id>`: each task's namespace file (the container joins it).
//! - `sbox/<network id>`: each network's sandbox namespace file.
//!
//! Every change goes the same way: compute the desired [`state::NodeState`]
//! (pure), [`state::diff`] it against the recorded one into a list of
//! [`state::Action`]s (pure), run them, then record the new state. The lock
//! around that is the single owner of the state.

mod bridge;
mod conntrack;
pub mod dns;
mod encryption;
pub mod error;
mod gwbridge;
pub mod ingress;
mod isolation;
pub mod local;
mod netlink;
mod netlink_io;
mod netns;
pub mod nft;
pub mod overlay;
mod ports;
mod publish;
pub mod resolv;
mod return_path;
pub mod state;
mod task_locks;
mod task_record;
pub mod tunnel;
pub mod vip;

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use swarm::exec::Attachment;
use swarm::exec::ContainerNetworks;
use swarm::exec::ExecError;
use swarm::exec::HostPort;
use swarm::exec::NetworkAttacher;
use swarm::exec::ServiceRecords;
use swarm::exec::TaskNetns;
use tokio::sync::Mutex;

pub use crate::error::Error;
use crate::error::Result;
use crate::netlink::Netlink;
use crate::state::Action;
use crate::state::Link;
use crate::state::NodeState;
use crate::state::Observed;
use crate::state::TaskRecord;

const STATE_FILE: &str = "state.json";
/// How often a stopping task's place in the load balancers is checked.
const UNBALANCE_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a stopping task stays up after this node's balancers and
/// records dropped it, for other nodes to apply the same records.
const REMOTE_APPLY_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Implements [`NetworkAttacher`] with real kernel state (see the crate
/// docs for the layout).
///
/// One driver per state directory: two drivers on the same directory at the
/// same time would overwrite each other's records.
pub struct OverlayDriver {
    state_dir: PathBuf,
    /// The namespace the driver was created in (the host's): where the
    /// gateway bridge lives and where its veth peers are created.
    host_ns: File,
    /// The host resolver configuration the tasks' files derive from.
    host_resolv_conf: PathBuf,
    /// Where the embedded DNS servers forward unknown names; `None`: the
    /// host resolv.conf's nameservers, read when each server starts.
    upstreams: Option<Vec<SocketAddr>>,
    /// The embedded DNS servers of the tasks and the records they share.
    dns: dns::Dns,
    /// The last records' VIPs and each task's VIP table (see `vip`).
    vips: vip::Balancer,
    /// The networks' VXLAN devices and peers on other nodes (see `overlay`).
    overlay: overlay::Overlay,
    /// The tunnel of encrypted overlays (see `encryption`).
    encryption: encryption::Encryption,
    /// Keeps a task's attach and detach apart while the state lock is
    /// released for its own steps.
    task_locks: task_locks::TaskLocks,
    /// How many times the gateway bridge was made (with its rules): an
    /// attach that found it missing before taking the state lock knows
    /// from this whether another attach made it meanwhile.
    egress_made: std::sync::atomic::AtomicU64,
    state: Mutex<NodeState>,
    /// Whether the kernel takes tasks' return paths (see `return_path`),
    /// found out once.
    return_paths: tokio::sync::OnceCell<bool>,
}

impl std::fmt::Debug for OverlayDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayDriver")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl OverlayDriver {
    /// Opens the driver on `state_dir` (created if missing) and loads what a
    /// previous run recorded there. Records from an earlier boot are
    /// dropped: their namespaces, bridges and rules died with that boot.
    ///
    /// Call it on a thread in the namespace tasks should reach the outside
    /// from (shoald's main thread); it touches no kernel state.
    pub fn new(state_dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&state_dir)
            .map_err(Error::io(format!("create {}", state_dir.display())))?;
        let boot_id = std::fs::read_to_string(BOOT_ID)
            .map_err(Error::io(format!("read {BOOT_ID}")))?
            .trim()
            .to_string();
        let mut state = load(&state_dir.join(STATE_FILE))?;
        if state.boot_id != boot_id {
            state = NodeState {
                boot_id,
                ..NodeState::default()
            };
        }
        let host_ns = File::open("/proc/thread-self/ns/net")
            .map_err(Error::io("open the driver's network namespace"))?;
        // The node-local networks' names answer again at once, for the
        // containers that kept running.
        let dns = dns::Dns::default();
        dns.set_local(local::records(&state));
        Ok(OverlayDriver {
            state_dir,
            host_ns,
            host_resolv_conf: PathBuf::from(resolv::HOST_RESOLV_CONF),
            upstreams: None,
            dns,
            vips: vip::Balancer::default(),
            overlay: overlay::Overlay::default(),
            encryption: encryption::Encryption::default(),
            task_locks: task_locks::TaskLocks::default(),
            egress_made: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(state),
            return_paths: tokio::sync::OnceCell::new(),
        })
    }

    /// Makes the embedded DNS servers forward names they do not know to
    /// `upstreams` (in order) instead of the host resolv.conf's
    /// nameservers. Call it before the first attach; it applies to servers
    /// started from then on.
    pub fn with_upstreams(mut self, upstreams: Vec<SocketAddr>) -> Self {
        self.upstreams = Some(upstreams);
        self
    }

    /// Whether `task` has a running embedded DNS server (after an attach
    /// that needs one, until its detach).
    pub fn dns_running(&self, task_id: &str) -> bool {
        self.dns.is_running(task_id)
    }

    /// Starts `task`'s embedded DNS server if its resolv.conf names it and
    /// it is not running (first attach, or an attach after a restart).
    async fn ensure_dns(&self, task: &str, rec: &TaskRecord) -> Result<()> {
        if !dns::resolv_conf_uses_embedded(&rec.resolv_conf) {
            return Ok(());
        }
        let mut networks = Vec::new();
        let mut egress = false;
        for i in &rec.interfaces {
            match &i.link {
                Link::Network { id, .. } => networks.push(id.clone()),
                Link::Egress { .. } => egress = true,
                Link::Local { id, internal, .. } => {
                    networks.push(id.clone());
                    egress |= !internal;
                }
            }
        }
        // Without a way out (internal networks only) nothing is forwarded.
        let upstreams = match (&self.upstreams, egress) {
            (_, false) => Vec::new(),
            (Some(u), true) => u.clone(),
            (None, true) => dns::upstreams_from_host(&self.host_resolv()?),
        };
        let view = dns::TaskView {
            networks,
            upstreams,
        };
        self.dns
            .ensure(task, &self.task_netns_path(task), view)
            .await
    }

    /// Brings the VXLAN devices of `state`'s networks in line with the last
    /// records' peers.
    async fn sync_overlay(&self, host: &Netlink, state: &NodeState) -> Result<()> {
        self.overlay
            .sync(host, &state.networks, |id| self.sandbox_path(id))
            .await
    }

    /// The remote peers programmed on `network_id`'s VXLAN device.
    pub async fn overlay_peers(&self, network_id: &str) -> Vec<swarm::exec::Peer> {
        self.overlay.programmed(network_id).await
    }

    /// The namespace file of a task (whether or not it exists).
    pub fn task_netns_path(&self, task_id: &str) -> PathBuf {
        self.state_dir.join("netns").join(task_id)
    }

    /// The sandbox namespace file of a network (whether or not it exists).
    pub fn sandbox_path(&self, network_id: &str) -> PathBuf {
        bridge::sandbox_path(&self.state_dir.join("sbox"), network_id)
    }

    /// Attaches `task` to `networks`: node-local ones first, then swarm
    /// ones, then (when it needs one) the gateway bridge. A task already
    /// attached is moved onto them instead.
    async fn attach_task(&self, task: &str, networks: &ContainerNetworks) -> Result<TaskNetns> {
        state::check_id(task)?;
        let swarm_planned = state::parse_attachments(&networks.swarm)?;
        let _task = self.task_locks.lock(task).await;
        let host = Netlink::here()?;
        let made = self.egress_made.load(Ordering::SeqCst);
        // A task whose namespace is there is attached already (after a
        // restart, every task): it makes nothing shared, so no look.
        let looked = if netns::is_mounted(&self.task_netns_path(task)) {
            None
        } else {
            Some(self.egress_present(&host).await)
        };
        let mut current = self.state.lock().await;
        let mut planned = networks
            .local
            .iter()
            .map(|a| local::plan(&current, task, a))
            .collect::<Result<Vec<_>, _>>()?;
        planned.extend(swarm_planned);
        let ingress = planned
            .iter()
            .find(|p| p.ingress)
            .map(|p| p.network.id.clone());
        if let Some(rec) = current.tasks.get(task).cloned() {
            if netns::is_mounted(&self.task_netns_path(task)) {
                let rec = if state::same_networks(&rec, &planned) {
                    self.rename_task(&mut current, task, rec, &planned)?
                } else {
                    let rec = self.move_task(&mut current, task, &rec, &planned).await?;
                    // Its server answers for the networks it had.
                    self.dns.stop(task).await;
                    rec
                };
                self.ensure_dns(task, &rec).await?;
                self.ensure_return_path(task, &rec, ingress.as_deref())
                    .await;
                self.apply_task_vips(task, &rec, false).await?;
                return Ok(self.task_netns(task, &rec));
            }
        }
        if current.tasks.contains_key(task) {
            // Recorded, but the namespace is gone: make it anew.
            let without = current.without_tasks([task]);
            self.transition(&host, &mut current, without, &Observed::default())
                .await?;
        }
        if self.dns.is_running(task) {
            // A server left on a namespace that is gone.
            self.dns.stop(task).await;
        }
        let (after, own) = self
            .attach_new(
                &host,
                &current,
                task,
                &planned,
                networks.default_bridge,
                looked,
                made,
            )
            .await?;
        let Some(rec) = after.tasks.get(task).cloned() else {
            return Err(state::PlanError::InvalidId(task.to_string()).into());
        };
        *current = after;
        // Recorded first: a failure here leaves a task a repeated attach
        // completes (or a detach removes).
        // A task without its peers elsewhere still runs (the sync is tried
        // again with the next records).
        let _ = self.sync_overlay(&host, &current).await;
        drop(current);
        // The task's own namespace and interfaces: nothing another task
        // uses, so other attaches go on meanwhile.
        if let Err(e) = self.run_until_error(&host, &own).await {
            let mut current = self.state.lock().await;
            let without = current.without_tasks([task]);
            let mut observed = Observed::default();
            observed.task_netns.insert(task.to_string());
            if let Err(u) = self
                .transition(&host, &mut current, without, &observed)
                .await
            {
                tracing::warn!(task, error = %u, "undoing a failed attach");
            }
            return Err(e);
        }
        self.ensure_dns(task, &rec).await?;
        self.ensure_return_path(task, &rec, ingress.as_deref())
            .await;
        // Under the state lock: a records update rewriting every task's
        // table must not interleave with this one.
        let current = self.state.lock().await;
        self.apply_task_vips(task, &rec, true).await?;
        drop(current);
        let netns = self.task_netns(task, &rec);
        tracing::info!(task, "task network namespace ready");
        Ok(netns)
    }

    /// Gives `task` (record `rec`) the way back of routing-mesh
    /// connections when it is on the ingress network `ingress` (see
    /// [`return_path`]). A kernel that refuses the tables leaves the task
    /// running; only mesh connections taken by a sandbox go unanswered.
    async fn ensure_return_path(&self, task: &str, rec: &TaskRecord, ingress: Option<&str>) {
        let Some(path) = ingress.and_then(|id| return_path::ReturnPath::for_task(rec, id)) else {
            return;
        };
        if !self.return_paths_work().await {
            return;
        }
        if let Err(e) = return_path::apply(&self.task_netns_path(task), &path).await {
            tracing::warn!(task, error = %e, "no way back for routing-mesh connections");
        }
    }

    /// Whether this kernel takes tasks' return paths, tried once.
    async fn return_paths_work(&self) -> bool {
        *self
            .return_paths
            .get_or_init(|| async {
                tokio::task::spawn_blocking(return_path::kernel_takes_it)
                    .await
                    .unwrap_or(false)
            })
            .await
    }

    /// Moves attached `task` (record `old`) onto the networks of `planned`
    /// in its namespace and records it; returns its new record. On failure
    /// whatever was made is undone.
    async fn move_task(
        &self,
        current: &mut NodeState,
        task: &str,
        old: &TaskRecord,
        planned: &[state::Planned],
    ) -> Result<TaskRecord> {
        let host = Netlink::here()?;
        let before = self
            .still_present(current, &host, planned, false, true)
            .await;
        let record = state::task_record_moved(&before, task, old, planned)?;
        let after = before.with_moved_task(task, record.clone(), planned);
        let applied = match self
            .run_until_error(&host, &state::diff(&before, &after))
            .await
        {
            Ok(()) => self.save(&after),
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            if let Err(u) = self.run_all(&host, &state::diff(&after, &before)).await {
                tracing::warn!(task, error = %u, "undoing a failed network change");
            }
            return Err(e);
        }
        *current = after;
        tracing::info!(task, "task networks changed");
        Ok(record)
    }

    /// `rec`, the record of attached `task`, with the node-local names of
    /// `planned` (a renamed container), recorded if they changed.
    fn rename_task(
        &self,
        current: &mut NodeState,
        task: &str,
        mut rec: TaskRecord,
        planned: &[state::Planned],
    ) -> Result<TaskRecord> {
        let names: std::collections::BTreeMap<String, Vec<String>> = planned
            .iter()
            .filter(|p| p.local)
            .map(|p| (p.network.id.clone(), p.names.clone()))
            .collect();
        if rec.names == names {
            return Ok(rec);
        }
        rec.names = names;
        let mut after = current.clone();
        after.tasks.insert(task.to_string(), rec.clone());
        self.save(&after)?;
        *current = after;
        Ok(rec)
    }

    /// Plans `task` on top of `current`, makes what it shares with other
    /// tasks (networks, rules) and records it; returns the new state and
    /// the task's own steps (its namespace and interfaces), which the
    /// caller runs without the state lock. On failure, whatever was made
    /// is undone.
    async fn attach_new(
        &self,
        host: &Netlink,
        current: &NodeState,
        task: &str,
        planned: &[state::Planned],
        default_bridge: bool,
        looked: Option<bool>,
        made: u64,
    ) -> Result<(NodeState, Vec<state::Action>)> {
        let needs_egress = state::needs_egress(planned, default_bridge);
        let egress_present = match looked {
            // Missing when looked at, but made since by another attach.
            Some(present) => present || self.egress_made.load(Ordering::SeqCst) != made,
            // Not looked at (a namespace no record explains): look now.
            None => !needs_egress || self.egress_present(host).await,
        };
        let before = self
            .still_present(current, host, planned, needs_egress, egress_present)
            .await;
        let egress = match (needs_egress, &current.egress) {
            (false, _) => None,
            // The recorded subnet stays even if the bridge must be made
            // again: other tasks' addresses are in it.
            (true, Some(e)) => Some(e.clone()),
            (true, None) => Some(self.pick_egress(host).await?),
        };
        let host_resolv = self.host_resolv()?;
        let resolv_conf = resolv::for_task(&host_resolv, state::uses_embedded_dns(planned));
        let record = state::task_record(&before, task, planned, egress.as_ref(), resolv_conf)?;
        let after = before.with_task(task, record, planned, egress.as_ref());
        let (own, shared) = state::split_task_actions(state::diff(&before, &after), task);
        let applied = match self.run_until_error(host, &shared).await {
            Ok(()) => self.save(&after),
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            // Every removal tolerates what was never made.
            if let Err(u) = self.run_all(host, &state::diff(&after, &before)).await {
                tracing::warn!(task, error = %u, "undoing a failed attach");
            }
            return Err(e);
        }
        Ok((after, own))
    }

    /// `current` without the shared objects this attach needs that have
    /// gone missing behind the driver's back (a network's sandbox, or, as
    /// `egress_present` found, the gateway bridge or the nftables table
    /// deleted by hand), so the attach makes them again.
    async fn still_present(
        &self,
        current: &NodeState,
        host: &Netlink,
        planned: &[state::Planned],
        needs_egress: bool,
        egress_present: bool,
    ) -> NodeState {
        let mut before = current.clone();
        for p in planned {
            if p.local {
                if host.index(&p.network.bridge).await.ok().flatten().is_none() {
                    before.local_networks.remove(&p.network.id);
                }
            } else if !netns::is_mounted(&self.sandbox_path(&p.network.id)) {
                before.networks.remove(&p.network.id);
            }
        }
        if needs_egress && !egress_present {
            before.egress = None;
        }
        before
    }

    /// Whether the gateway bridge and the `ip shoal` table exist. Looked at
    /// before an attach takes the state lock: it forks `nft`, and a node's
    /// attaches waited on each other for it. Either removed meanwhile is
    /// made again by the next attach.
    async fn egress_present(&self, host: &Netlink) -> bool {
        let bridge = host.index(gwbridge::GWBRIDGE).await.ok().flatten();
        bridge.is_some() && nft::table_exists().await.unwrap_or(false)
    }

    fn host_resolv(&self) -> Result<String> {
        resolv::read_host(&self.host_resolv_conf).map_err(Error::io(format!(
            "read {}",
            self.host_resolv_conf.display()
        )))
    }

    /// The gateway bridge's subnet for a first egress user. A gateway bridge
    /// no record explains is a leftover of a crash: it goes first, so its
    /// route does not push the choice off the usual subnet.
    async fn pick_egress(&self, host: &Netlink) -> Result<state::Egress> {
        gwbridge::remove(host).await?;
        let routes = host.ipv4_routes().await?;
        let host_resolv = self.host_resolv()?;
        gwbridge::choose_egress(&routes, &resolv::ipv4_nameservers(&host_resolv))
            .ok_or(Error::NoEgressSubnet)
    }

    async fn detach_task(&self, task: &str) -> Result<()> {
        if state::check_id(task).is_err() {
            // No such task can have been attached.
            return Ok(());
        }
        let _task = self.task_locks.lock(task).await;
        let mut current = self.state.lock().await;
        // Its sockets pin the namespace: closed before it goes.
        self.dns.stop(task).await;
        self.vips.forget(task);
        let host = Netlink::here()?;
        let flows = self.flows_to(&current, task);
        let after = current.without_tasks([task]);
        let mut observed = Observed::default();
        if self.task_netns_path(task).exists() {
            observed.task_netns.insert(task.to_string());
        }
        let done = self.transition(&host, &mut current, after, &observed).await;
        futures::future::join_all(
            flows
                .into_iter()
                .map(|(netns, addrs)| conntrack::forget_flows_to(netns, addrs)),
        )
        .await;
        done
    }

    /// Where flows to `task` may be tracked, and its addresses there: the
    /// other tasks' namespaces (VIPs), the ingress sandbox (the routing
    /// mesh) and the node's own (published ports).
    fn flows_to(
        &self,
        state: &NodeState,
        task: &str,
    ) -> Vec<(Option<PathBuf>, Vec<std::net::Ipv4Addr>)> {
        let Some(rec) = state.tasks.get(task) else {
            return Vec::new();
        };
        let mut on_networks = Vec::new();
        let mut on_ingress = Vec::new();
        let mut egress = Vec::new();
        for i in &rec.interfaces {
            match &i.link {
                Link::Network { id, .. } => {
                    on_networks.push(i.address.addr());
                    if state.ingress.as_ref().is_some_and(|g| &g.network == id) {
                        on_ingress.push(i.address.addr());
                    }
                }
                // Published ports are DNATed to these in the node's namespace.
                Link::Egress { .. } | Link::Local { .. } => egress.push(i.address.addr()),
            }
        }
        let networks: Vec<&String> = rec
            .interfaces
            .iter()
            .filter_map(|i| match &i.link {
                Link::Network { id, .. } => Some(id),
                Link::Egress { .. } | Link::Local { .. } => None,
            })
            .collect();
        // Only a task on one of its networks can have balanced to it.
        let shares = |r: &TaskRecord| {
            r.interfaces
                .iter()
                .any(|i| matches!(&i.link, Link::Network { id, .. } if networks.contains(&id)))
        };
        let mut out: Vec<(Option<PathBuf>, Vec<std::net::Ipv4Addr>)> = state
            .tasks
            .iter()
            .filter(|(t, r)| t.as_str() != task && shares(r))
            .map(|(t, _)| (Some(self.task_netns_path(t)), on_networks.clone()))
            .collect();
        if let Some(g) = &state.ingress {
            out.push((Some(self.sandbox_path(&g.network)), on_ingress));
        }
        out.push((None, egress));
        out
    }

    async fn prune_tasks(&self, keep: &HashSet<String>) -> Result<()> {
        let mut current = self.state.lock().await;
        self.dns.stop_except(keep).await;
        self.vips.retain(keep);
        let host = Netlink::here()?;
        let mut observed = self.observe(&host).await?;
        // A kept task's unrecorded namespace is an interrupted attach; the
        // next attach replaces it.
        observed.task_netns.retain(|t| !keep.contains(t));
        let after = without_unkept(&current, keep);
        self.transition(&host, &mut current, after, &observed).await
    }

    /// Moves the kernel from `current` to `after`, removing `observed`
    /// leftovers too, and records `after`. Removals go on past a failure
    /// (what is left is a leftover for the next prune); the first failure
    /// is returned.
    async fn transition(
        &self,
        host: &Netlink,
        current: &mut NodeState,
        after: NodeState,
        observed: &Observed,
    ) -> Result<()> {
        let mut actions = state::diff(current, &after);
        actions.extend(state::leftovers(current, &after, observed));
        let ran = self.run_all(host, &actions).await;
        self.save(&after)?;
        *current = after;
        ran
    }

    /// What exists on the node, for prune.
    async fn observe(&self, host: &Netlink) -> Result<Observed> {
        let nft_table = match nft::table_exists().await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list nftables tables");
                false
            }
        };
        Ok(Observed {
            task_netns: netns::list(&self.state_dir.join("netns"))?
                .into_iter()
                .collect(),
            sandboxes: netns::list(&self.state_dir.join("sbox"))?
                .into_iter()
                .collect(),
            gwbridge: host.index(gwbridge::GWBRIDGE).await?.is_some(),
            nft_table,
        })
    }

    async fn run_until_error(&self, host: &Netlink, actions: &[Action]) -> Result<()> {
        for a in actions {
            self.run(host, a).await?;
        }
        Ok(())
    }

    async fn run_all(&self, host: &Netlink, actions: &[Action]) -> Result<()> {
        let mut first = None;
        for a in actions {
            if let Err(e) = self.run(host, a).await {
                tracing::warn!(action = ?a, error = %e, "network cleanup step failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn run(&self, host: &Netlink, action: &Action) -> Result<()> {
        tracing::debug!(?action, "netdrv");
        match action {
            Action::CreateGwBridge(e) => {
                gwbridge::create(host, e).await?;
                self.egress_made.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Action::ApplyNft(rs) => nft::apply(&rs.to_nftables()).await,
            Action::CreateNetwork(net) => {
                netns::prepare_dir(&self.state_dir.join("sbox"))?;
                // A new sandbox has no VXLAN device, whatever was programmed
                // into an earlier one.
                self.overlay.forget(&net.id).await;
                bridge::create(&self.sandbox_path(&net.id), net).await
            }
            Action::CreateTaskNetns(task) => {
                netns::prepare_dir(&self.state_dir.join("netns"))?;
                let path = self.task_netns_path(task);
                netns::create(&path).await?;
                let nl = Netlink::in_netns(&path).await?;
                nl.up(nl.must_index("lo").await?).await
            }
            Action::AddInterface { task, iface } => self.add_interface(host, task, iface).await,
            Action::RemoveInterface { iface, .. } => match &iface.link {
                Link::Network { id, .. } => bridge::unplug(&self.sandbox_path(id), iface).await,
                // Deleting the node's end takes the task's with it.
                Link::Egress { .. } | Link::Local { .. } => host.delete_link(&iface.peer).await,
            },
            Action::RemoveTaskNetns(task) => {
                netns::clear_and_remove(&self.task_netns_path(task)).await
            }
            Action::RemoveNetwork(id) => bridge::remove(&self.sandbox_path(id)).await,
            Action::CreateIngress(rec) => {
                let sbox = self.sandbox_path(&rec.network);
                ingress::create(host, &self.host_ns, &sbox, rec).await
            }
            Action::ApplyIngressNft { network, ruleset } => {
                let mut ruleset = ruleset.clone();
                if !self.return_paths_work().await {
                    // The tasks could not send answers back to a client's
                    // own address: every source is translated.
                    ruleset.local_sources = ipnet::Ipv4Net::default();
                }
                ingress::apply(&self.sandbox_path(network), &ruleset).await
            }
            Action::RemoveIngress(rec) => {
                ingress::remove(host, &self.sandbox_path(&rec.network), rec).await
            }
            Action::DeleteNft => nft::apply(&nft::delete_table()).await,
            Action::RemoveGwBridge => gwbridge::remove(host).await,
            Action::CreateLocalNetwork(net) => local::bridge::create(host, net).await,
            Action::RemoveLocalNetwork(net) => local::bridge::remove(host, net).await,
        }
    }

    async fn add_interface(
        &self,
        host: &Netlink,
        task: &str,
        iface: &state::Interface,
    ) -> Result<()> {
        let inner = Netlink::in_netns(&self.task_netns_path(task)).await?;
        match &iface.link {
            Link::Network { id, bridge } => {
                bridge::plug(&inner, &self.sandbox_path(id), bridge, iface).await?
            }
            Link::Egress { .. } => gwbridge::plug(&inner, host, &self.host_ns, iface).await?,
            Link::Local { bridge, .. } => {
                local::bridge::plug(&inner, host, &self.host_ns, bridge, iface).await?
            }
        }
        let index = inner.must_index(&iface.name).await?;
        inner.ensure_address(index, iface.address).await?;
        match iface.link {
            Link::Egress { gateway }
            | Link::Local {
                gateway,
                default_route: true,
                ..
            } => inner.ensure_default_route(gateway, index).await?,
            _ => {}
        }
        Ok(())
    }

    fn task_netns(&self, task: &str, rec: &TaskRecord) -> TaskNetns {
        TaskNetns {
            path: self.task_netns_path(task),
            resolv_conf: rec.resolv_conf.clone(),
            interfaces: rec
                .interfaces
                .iter()
                .filter(|i| !matches!(i.link, Link::Egress { .. }))
                .map(|i| (i.name.clone(), i.address.to_string()))
                .collect(),
            egress: rec.interfaces.iter().find_map(|i| match i.link {
                Link::Egress { gateway } => Some((i.address.to_string(), gateway.to_string())),
                _ => None,
            }),
            local: rec
                .interfaces
                .iter()
                .filter_map(|i| match &i.link {
                    Link::Local { id, .. } => Some((id.clone(), i.address.to_string())),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Writes the state file atomically (temporary file, fsync, rename).
    fn save(&self, state: &NodeState) -> Result<()> {
        let path = self.state_dir.join(STATE_FILE);
        let tmp = self.state_dir.join(format!("{STATE_FILE}.tmp"));
        let body = serde_json::to_vec_pretty(state).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        // Replaced whole by a rename, never synced: a crash of shoald leaves
        // the old or the new file, and what a power loss could cost is moot,
        // for the kernel objects it describes die with the boot (records of
        // another boot are dropped on load). Syncing every task's attach
        // made a node's task starts wait on the disk one after the other.
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(Error::io(format!("write {}", path.display())))?;
        // Every change of the state passes here: the node-local networks'
        // names follow their containers.
        self.dns.set_local(local::records(state));
        Ok(())
    }
}

/// `state` without the tasks `keep` does not name.
fn without_unkept(state: &NodeState, keep: &HashSet<String>) -> NodeState {
    let gone: Vec<&str> = state
        .tasks
        .keys()
        .map(String::as_str)
        .filter(|t| !keep.contains(*t))
        .collect();
    state.without_tasks(gone)
}

fn load(path: &Path) -> Result<NodeState> {
    match std::fs::read(path) {
        // An unsynced file a power loss left empty or torn: nothing it
        // named survived the reboot anyway.
        Ok(body) => Ok(serde_json::from_slice(&body).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "unreadable network state; starting without it");
            NodeState::default()
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeState::default()),
        Err(e) => Err(Error::io(format!("read {}", path.display()))(e)),
    }
}

#[async_trait]
impl NetworkAttacher for OverlayDriver {
    async fn attach(
        &self,
        task_id: &str,
        attachments: &[Attachment],
    ) -> Result<TaskNetns, ExecError> {
        let networks = ContainerNetworks {
            swarm: attachments.to_vec(),
            ..ContainerNetworks::default()
        };
        Ok(self.attach_task(task_id, &networks).await?)
    }

    async fn attach_container(
        &self,
        container_id: &str,
        networks: &ContainerNetworks,
    ) -> Result<TaskNetns, ExecError> {
        Ok(self.attach_task(container_id, networks).await?)
    }

    async fn ensure_local_network(&self, net: &swarm::exec::LocalNetwork) -> Result<(), ExecError> {
        Ok(self.ensure_local(net).await?)
    }

    async fn remove_local_network(&self, id: &str) -> Result<bool, ExecError> {
        Ok(self.remove_local(id).await?)
    }

    async fn local_subnets_in_use(&self) -> Result<swarm::exec::NodeSubnets, ExecError> {
        Ok(self.local_subnets().await?)
    }

    async fn detach(&self, task_id: &str) -> Result<(), ExecError> {
        Ok(self.detach_task(task_id).await?)
    }

    async fn prune(&self, keep: &HashSet<String>) -> Result<(), ExecError> {
        Ok(self.prune_tasks(keep).await?)
    }

    async fn wait_unbalanced(&self, task_id: &str, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let on_overlay = self.state.lock().await.tasks.get(task_id).is_some_and(|r| {
            r.interfaces
                .iter()
                .any(|i| matches!(i.link, Link::Network { .. }))
        });
        while self.still_balanced(task_id).await {
            if tokio::time::Instant::now() >= deadline {
                tracing::debug!(task = task_id, "still a backend; stopping it anyway");
                return;
            }
            tokio::time::sleep(UNBALANCE_POLL).await;
        }
        if on_overlay {
            // The records that dropped it reached the other nodes at about
            // the same time as this one; this covers their applying them.
            let margin = REMOTE_APPLY_MARGIN.min(deadline - tokio::time::Instant::now());
            tokio::time::sleep(margin).await;
        }
    }

    async fn update_dns(&self, records: &ServiceRecords) -> Result<(), ExecError> {
        self.dns.update(records);
        // Sealed first: an encrypted network gets its peers only then.
        let sealed = self.encryption.apply(records).await;
        self.overlay
            .set(&records.peers, &records.local, sealed)
            .await;
        // Each is tried whatever the others' outcome. Peers go first: a
        // new backend on another node is reachable before any VIP or port
        // sends to it.
        let peers = {
            let current = self.state.lock().await;
            match Netlink::here() {
                Ok(host) => self.sync_overlay(&host, &current).await,
                Err(e) => Err(e),
            }
        };
        let vips = self.apply_vips(records).await;
        let ingress = self.apply_ingress(records).await;
        peers?;
        ingress?;
        vips?;
        Ok(())
    }

    async fn publish_host_ports(&self, task_id: &str, ports: &[HostPort]) -> Result<(), ExecError> {
        Ok(self.publish_ports(task_id, ports).await?)
    }
}
