//! A lab: a LAN (a bridge in a network namespace of its own) and the nodes
//! on it.

use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use super::engine::Engine;
use super::image;
use super::node::Node;
use super::ns;
use super::procs;

/// The LAN's prefix: node N is `10.99.0.(10+N)`.
pub const LAN_PREFIX: &str = "10.99.0";

/// What the nodes of a lab share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Unique among the labs on this machine: it names the nodes' cgroups.
    pub id: String,
    /// The engine every node runs.
    pub engine: Engine,
    /// The lab's temp dir.
    pub dir: PathBuf,
    /// The FIFO only the lab's owner writes; nodes exit at its end.
    pub lifeline: PathBuf,
    /// The PID holding the lab's network namespace (the LAN's bridge).
    pub lan_pid: u32,
    image: Mutex<Option<PathBuf>>,
    /// Extra environment of every engine started from now on.
    engine_env: Mutex<Vec<(String, String)>>,
}

impl Shared {
    /// Runs `args` in the lab's network namespace; an error when it fails.
    pub fn in_lan(&self, args: &[&str]) -> anyhow::Result<String> {
        ns::must_in(self.lan_pid, &["--net"], args)
    }

    /// The extra environment engines start with.
    pub fn engine_env(&self) -> Vec<(String, String)> {
        self.engine_env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The test image tar, built on first use.
    pub fn test_image(&self) -> anyhow::Result<PathBuf> {
        let mut slot = self.image.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = &*slot {
            return Ok(p.clone());
        }
        let p = image::make_test_image(&self.dir, false)?;
        *slot = Some(p.clone());
        Ok(p)
    }
}

/// A lab: its own network namespace with a Linux bridge playing the LAN
/// (10.99.0.0/24), and nodes added with [`Lab::add_node`], all running the
/// same [`Engine`].
///
/// Several labs may run at once: every name a lab gives outside its own
/// namespaces (temp dir, cgroup parents) carries its unique id, and it
/// creates nothing in the host's network namespace.
///
/// Dropping the lab ends every process it started by PID (bounded in
/// time), removes the cgroups its nodes made and its temp dir. If the
/// owning process dies instead (even by SIGKILL), the lifeline FIFO it alone
/// writes reaches end-of-file and every node and namespace holder exits.
pub struct Lab {
    shared: Arc<Shared>,
    nodes: Mutex<Vec<Arc<Node>>>,
    lan_holder: Mutex<Option<Child>>,
    /// The lifeline's only writer (read-write, so opening never blocks).
    _lifeline: File,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("id", &self.shared.id)
            .field("engine", &self.shared.engine)
            .finish()
    }
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// The prefix of every lab's temp dir, followed by its id and a dash.
const DIR_PREFIX: &str = "shoal-lab-";

/// Removes the temp dirs and cgroups of labs whose owner died without
/// tearing down (its processes are gone already: the lifeline ended them).
/// A lab is stale when nothing reads its lifeline any more and its dir is
/// over ten minutes old (a lab being created has no reader for a moment).
pub fn sweep_stale() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if !old || has_reader(&e.path().join("lifeline")) {
            continue;
        }
        for parent in super::cgroups::top_level_named(&[
            &format!("shoal-{id}-node"),
            &format!("docker-{id}-node"),
        ]) {
            super::cgroups::remove_tree(&parent, Duration::from_secs(2));
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// Whether a process has `fifo` open for reading (a non-blocking open for
/// writing fails with ENXIO when none has).
fn has_reader(fifo: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(fifo)
        .is_ok()
}

fn unique_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = LABS.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{n:x}{:03x}", std::process::id(), nanos & 0xfff)
}

impl Lab {
    /// Why a lab of `engine` cannot run on this machine, if it cannot.
    pub fn missing(engine: Engine) -> Option<String> {
        if nix::unistd::geteuid().as_raw() != 0 {
            return Some("not running as root".into());
        }
        for bin in [
            "unshare",
            "nsenter",
            "ip",
            "nft",
            "containerd",
            "ctr",
            "runc",
            "tini",
            "timeout",
        ] {
            if !procs::on_path(bin) {
                return Some(format!("{bin} is not installed (bash scripts/deps.sh)"));
            }
        }
        engine.binary().err().map(|e| e.to_string())
    }

    /// A new lab with no nodes yet (the LAN's bridge is up). Sweeps what
    /// labs whose owner was killed left behind first (see [`sweep_stale`]).
    pub fn new(engine: Engine) -> anyhow::Result<Lab> {
        if let Some(why) = Lab::missing(engine) {
            anyhow::bail!("cannot run a {engine} lab here: {why}");
        }
        sweep_stale();
        let id = unique_id();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{id}-"))
            .tempdir()?;
        let lifeline = dir.path().join("lifeline");
        nix::unistd::mkfifo(&lifeline, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .context("make the lifeline FIFO")?;
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lifeline)
            .context("open the lifeline")?;
        let holder = ns::spawn_net_holder(&lifeline)?;
        let shared = Arc::new(Shared {
            id,
            engine,
            dir: dir.path().to_path_buf(),
            lifeline,
            lan_pid: holder.id(),
            image: Mutex::new(None),
            engine_env: Mutex::new(Vec::new()),
        });
        let lab = Lab {
            shared,
            nodes: Mutex::new(Vec::new()),
            lan_holder: Mutex::new(Some(holder)),
            _lifeline: writer,
            _dir: dir,
        };
        for args in [
            &["ip", "link", "set", "lo", "up"][..],
            &["ip", "link", "add", "br0", "type", "bridge"],
            &["ip", "link", "set", "br0", "up"],
        ] {
            lab.shared.in_lan(args)?;
        }
        Ok(lab)
    }

    /// A lab for a test: `None`, after printing why, when this machine
    /// cannot run one, unless `SHOAL_REQUIRE_CONTAINERD` is set, where that
    /// is a failure. Panics when the lab itself fails to start.
    pub fn for_test(engine: Engine) -> Option<Lab> {
        if let Some(why) = Lab::missing(engine) {
            if std::env::var_os("SHOAL_REQUIRE_CONTAINERD").is_some() {
                panic!("a {engine} lab is required here: {why}");
            }
            eprintln!("skipping: {why}");
            return None;
        }
        Some(Lab::new(engine).expect("start a lab"))
    }

    /// The lab's unique id (it names the nodes' cgroup parents).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The engine the lab's nodes run.
    pub fn engine(&self) -> Engine {
        self.shared.engine
    }

    /// The lab's temp dir (node dirs, sockets, logs).
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Starts the next node (numbered from 1): network namespace with eth0
    /// on the LAN, PID/mount/UTS namespaces, containerd and the engine, and
    /// returns once the engine answers.
    pub fn add_node(&self) -> anyhow::Result<Arc<Node>> {
        let n = {
            let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            nodes.len() as u32 + 1
        };
        anyhow::ensure!(n <= 200, "a lab holds at most 200 nodes");
        let node = Arc::new(Node::create(self.shared.clone(), n)?);
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(node.clone());
        node.start_node()
            .with_context(|| format!("start node{n}:\n{}", node.logs_tail()))?;
        Ok(node)
    }

    /// Node `n` (from 1).
    pub fn node(&self, n: u32) -> Arc<Node> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())[n as usize - 1].clone()
    }

    /// Every node, in order.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The test image tar (`make-test-image.sh`), built once per lab.
    pub fn test_image(&self) -> anyhow::Result<PathBuf> {
        self.shared.test_image()
    }

    /// Starts every engine from now on with `key=value` in its
    /// environment (a knob a test turns, such as a short rotation period).
    pub fn set_engine_env(&self, key: &str, value: &str) {
        self.shared
            .engine_env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.to_string(), value.to_string()));
    }

    /// The address of the lab's client, the LAN's own namespace (not a
    /// node): `10.99.0.2`.
    pub fn client_addr(&self) -> String {
        format!("{LAN_PREFIX}.2")
    }

    /// Runs `args` (a host binary: curl, wget...) as a client on the LAN,
    /// from [`Lab::client_addr`]; stdout, or an error when it fails.
    pub fn client(&self, args: &[&str]) -> anyhow::Result<String> {
        let cidr = format!("{}/24", self.client_addr());
        let has = self
            .shared
            .in_lan(&["ip", "-4", "-o", "addr", "show", "br0"])?;
        if !has.contains(&cidr) {
            self.shared
                .in_lan(&["ip", "addr", "replace", &cidr, "dev", "br0"])?;
        }
        self.shared.in_lan(args)
    }

    /// Cuts `side` off from every other node of the lab (both directions,
    /// silently: nftables drops in each node's own namespace). Replaces any
    /// earlier partition.
    pub fn partition(&self, side: &[&Node]) -> anyhow::Result<()> {
        self.heal()?;
        let nodes = self.nodes();
        let inside: Vec<u32> = side.iter().map(|n| n.n()).collect();
        for node in &nodes {
            let here = inside.contains(&node.n());
            let others: Vec<String> = nodes
                .iter()
                .filter(|o| inside.contains(&o.n()) != here)
                .map(|o| o.addr())
                .collect();
            node.drop_traffic_with(&others)?;
        }
        Ok(())
    }

    /// Removes every partition rule.
    pub fn heal(&self) -> anyhow::Result<()> {
        for node in self.nodes() {
            node.drop_traffic_with(&[])?;
        }
        Ok(())
    }

    /// Ends everything the lab started (also what dropping it does).
    pub fn teardown(&self) {
        for node in self.nodes().iter().rev() {
            node.teardown();
        }
        if let Some(mut h) = self
            .lan_holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            procs::kill_child(&mut h);
        }
        for node in self.nodes() {
            super::cgroups::remove_tree(&node.cgroup_parent(), Duration::from_secs(10));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}
