//! One node of a lab: a machine of its own as far as its engine can tell.
//!
//! Processes (host PIDs):
//! - a network-namespace holder (`unshare --net cat LIFELINE`): keeps the
//!   node's eth0 and address across node crashes, as a NIC outlives a
//!   reboot;
//! - the node's init: `nsenter --net unshare --pid --fork --mount-proc --uts
//!   tini sh -c SCRIPT` (see [`super::init`]); tini is PID 1 of the node and
//!   the script starts containerd, so killing tini kills the whole node;
//! - the engine, started by `nsenter --net --mount --uts --pid` into that
//!   init's namespaces, so it can be killed and started alone.

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use super::cli::Cli;
use super::cli::Run;
use super::cli::CLI_LIMIT;
use super::engine::EnginePaths;
use super::init;
use super::lab::Shared;
use super::lab::LAN_PREFIX;
use super::ns;
use super::procs;

/// The namespaces a command inside the node joins.
const NODE_NS: &[&str] = &["--net", "--mount", "--uts", "--pid"];

/// How long an engine may take to answer after it starts.
const ENGINE_START: Duration = Duration::from_secs(90);

#[derive(Default)]
struct Procs {
    net_holder: Option<Child>,
    /// `unshare`, whose only child is the node's init.
    init: Option<Child>,
    init_pid: Option<u32>,
    /// `nsenter`, whose only child is the engine.
    engine: Option<Child>,
    engine_pid: Option<u32>,
}

/// One node of a [`super::Lab`]. All methods take `&self`, so a test may
/// drive nodes from several threads.
pub struct Node {
    n: u32,
    lab: Arc<Shared>,
    dir: PathBuf,
    cli: Cli,
    procs: Mutex<Procs>,
    /// Extra environment of this node's engine, after the lab's.
    engine_env: Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("n", &self.n).finish()
    }
}

impl Node {
    /// Makes node `n`'s directory and network namespace, with eth0 on the
    /// lab's bridge (no default route: traffic to anywhere else fails at
    /// once). Nothing runs in it yet.
    pub(crate) fn create(lab: Arc<Shared>, n: u32) -> anyhow::Result<Node> {
        let dir = lab.dir.join(format!("node{n}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("daemon.json"), "{}\n")?;
        std::fs::write(dir.join("containerd.toml"), init::containerd_config(&dir))?;
        let cli = Cli::new(&dir.join("docker.sock"), dir.join("cli-config"));
        let holder = ns::spawn_net_holder(&lab.lifeline)?;
        let pid = holder.id();
        let node = Node {
            n,
            lab,
            dir,
            cli,
            procs: Mutex::new(Procs {
                net_holder: Some(holder),
                ..Procs::default()
            }),
            engine_env: Mutex::new(Vec::new()),
        };
        let veth = node.lan_link();
        let peer = pid.to_string();
        node.lab.in_lan(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &peer,
        ])?;
        node.lab
            .in_lan(&["ip", "link", "set", &veth, "master", "br0"])?;
        node.lab.in_lan(&["ip", "link", "set", &veth, "up"])?;
        let cidr = format!("{}/24", node.addr());
        for args in [
            &["ip", "link", "set", "lo", "up"][..],
            &["ip", "addr", "add", &cidr, "dev", "eth0"],
            &["ip", "link", "set", "eth0", "up"],
        ] {
            ns::must_in(pid, &["--net"], args)?;
        }
        Ok(node)
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, Procs> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's number in its lab (from 1).
    pub fn n(&self) -> u32 {
        self.n
    }

    /// The node's hostname, `node<N>`.
    pub fn hostname(&self) -> String {
        format!("node{}", self.n)
    }

    /// The node's address on the LAN, e.g. `10.99.0.11` for node 1.
    pub fn addr(&self) -> String {
        format!("{LAN_PREFIX}.{}", 10 + self.n)
    }

    /// The node's directory (sockets, data, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The engine's API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `DOCKER_HOST` for this node's engine.
    pub fn docker_host(&self) -> String {
        self.cli.host.clone()
    }

    /// The node's containerd socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The parent cgroup of the node's task containers, unique to the lab
    /// and the node.
    pub fn cgroup_parent(&self) -> String {
        let prefix = match self.lab.engine {
            super::Engine::Shoald => "shoal",
            super::Engine::Dockerd => "docker",
        };
        format!("/{prefix}-{}-node{}", self.lab.id, self.n)
    }

    /// The node's side of the LAN: its veth's name in the lab namespace.
    fn lan_link(&self) -> String {
        format!("vn{}", self.n)
    }

    fn engine_paths(&self) -> EnginePaths {
        EnginePaths {
            containerd: self.containerd_socket(),
            data_root: self.dir.join("engine"),
            socket: self.socket(),
            config_file: self.dir.join("daemon.json"),
        }
    }

    /// Starts the node's init (mounts, hostname, containerd) and then its
    /// engine, on the node's existing data; returns once the engine
    /// answers. After [`Node::kill_node`] this is the node booting again.
    pub fn start_node(&self) -> anyhow::Result<()> {
        let holder = self
            .procs()
            .net_holder
            .as_ref()
            .map(Child::id)
            .context("the node was torn down")?;
        anyhow::ensure!(self.procs().init.is_none(), "node{} is running", self.n);
        let ready = self.dir.join(init::READY_FILE);
        let _ = std::fs::remove_file(&ready);
        let _ = std::fs::remove_file(self.containerd_socket());
        let args = init::InitArgs {
            node_dir: &self.dir,
            lifeline: &self.lab.lifeline,
            hostname: &self.hostname(),
            containerd_config: &self.dir.join("containerd.toml"),
            containerd_socket: &self.containerd_socket(),
            containerd_root: &self.dir.join("containerd"),
        };
        let log = self.log_file("init.log")?;
        let mut unshare = ns::command_in(holder, &["--net"], "unshare")
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--uts",
                "--propagation",
                "private",
                "--",
                "tini",
                "-s",
                "--",
                "sh",
                "-c",
                init::SCRIPT,
                "sh",
            ])
            .args(args.to_vec())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn the node's init")?;
        let upid = unshare.id();
        let init_pid =
            procs::try_wait_for(Duration::from_secs(10), || children_named(upid, "tini"));
        let Some(init_pid) = init_pid else {
            procs::kill_child(&mut unshare);
            anyhow::bail!("node{}'s init did not start", self.n);
        };
        {
            let mut p = self.procs();
            p.init = Some(unshare);
            p.init_pid = Some(init_pid);
        }
        procs::try_wait_for(Duration::from_secs(20), || ready.exists().then_some(()))
            .with_context(|| format!("node{}'s mounts were not made", self.n))?;
        self.wait_containerd()?;
        self.start_engine()
    }

    fn log_file(&self, name: &str) -> anyhow::Result<std::fs::File> {
        Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))?)
    }

    fn wait_containerd(&self) -> anyhow::Result<()> {
        let sock = self.containerd_socket();
        procs::try_wait_for(Duration::from_secs(30), || {
            let ok = Command::new("ctr")
                .arg("--address")
                .arg(&sock)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(())
        })
        .with_context(|| format!("node{}'s containerd did not answer within 30s", self.n))
    }

    /// Starts the engine on its data root (after [`Node::stop_engine`] or
    /// [`Node::kill_engine`]); returns once it answers.
    pub fn start_engine(&self) -> anyhow::Result<()> {
        let init = self.procs().init_pid.context("the node is not running")?;
        anyhow::ensure!(self.procs().engine.is_none(), "the engine is running");
        let engine = self.lab.engine;
        let log = self.log_file("engine.log")?;
        let mut child = ns::command_in(init, NODE_NS, engine.binary()?)
            .args(engine.args(&self.engine_paths(), &self.cgroup_parent()))
            .envs(self.lab.engine_env())
            .envs(self.engine_env())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn the engine")?;
        let npid = child.id();
        let Some(pid) = procs::try_wait_for(Duration::from_secs(10), || children_of_first(npid))
        else {
            procs::kill_child(&mut child);
            anyhow::bail!("the engine did not start");
        };
        {
            let mut p = self.procs();
            p.engine = Some(child);
            p.engine_pid = Some(pid);
        }
        let up = procs::try_wait_for(ENGINE_START, || {
            if !procs::alive(pid) {
                return Some(false);
            }
            let r = self.docker_within(
                Duration::from_secs(5),
                &["version", "--format", "{{.Server.Version}}"],
                None,
            );
            r.success().then_some(true)
        });
        match up {
            Some(true) => Ok(()),
            Some(false) => anyhow::bail!("{engine} on node{} exited at start", self.n),
            None => anyhow::bail!("{engine} on node{} did not answer within 90s", self.n),
        }
    }

    /// Starts this node's engine from its next start on with `key=value`
    /// in its environment, over the lab's (see [`super::Lab::set_engine_env`]):
    /// a knob for one node only, such as libfaketime on its clock. Takes
    /// effect at [`Node::restart_engine`] or the next boot.
    pub fn set_engine_env(&self, key: &str, value: &str) {
        let mut env = self.engine_env.lock().unwrap_or_else(|e| e.into_inner());
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    }

    /// The extra environment this node's engine starts with.
    fn engine_env(&self) -> Vec<(String, String)> {
        self.engine_env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Kills the whole node with SIGKILL to its PID-namespace init: the
    /// kernel takes the engine, containerd, the shims and the task
    /// containers with it (a node crash). Returns once none is left.
    pub fn kill_node(&self) {
        let (init, engine, pid) = {
            let mut p = self.procs();
            p.engine_pid = None;
            (p.init.take(), p.engine.take(), p.init_pid.take())
        };
        let Some(pid) = pid else { return };
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        procs::signal(pid, Signal::SIGKILL);
        for mut c in [init, engine].into_iter().flatten() {
            if !procs::reap(&mut c, Duration::from_secs(20)) {
                procs::kill_child(&mut c);
            }
        }
        // The namespace's init is reaped only after all its members, but
        // check rather than trust it.
        if let Some(ns) = ns {
            procs::try_wait_for(Duration::from_secs(10), || (!any_in_ns(&ns)).then_some(()));
        }
    }

    /// Kills only the engine with SIGKILL (containerd and the containers
    /// keep running).
    pub fn kill_engine(&self) {
        let (child, pid) = {
            let mut p = self.procs();
            (p.engine.take(), p.engine_pid.take())
        };
        if let Some(pid) = pid {
            procs::signal(pid, Signal::SIGKILL);
        }
        if let Some(mut c) = child {
            if !procs::reap(&mut c, Duration::from_secs(20)) {
                procs::kill_child(&mut c);
            }
        }
    }

    /// Stops only the engine as an operator would: SIGTERM to its PID,
    /// SIGKILL if it has not ended within `grace`. Returns once it has
    /// ended.
    pub fn stop_engine(&self, grace: Duration) {
        let (child, pid) = {
            let mut p = self.procs();
            (p.engine.take(), p.engine_pid.take())
        };
        if let Some(pid) = pid {
            procs::signal(pid, Signal::SIGTERM);
            if procs::try_wait_for(grace, || (!procs::alive(pid)).then_some(())).is_none() {
                procs::signal(pid, Signal::SIGKILL);
            }
        }
        if let Some(mut c) = child {
            if !procs::reap(&mut c, Duration::from_secs(20)) {
                procs::kill_child(&mut c);
            }
        }
    }

    /// Starts the engine again on the same data root (after
    /// [`Node::kill_engine`]); returns once it answers.
    pub fn restart_engine(&self) -> anyhow::Result<()> {
        self.kill_engine();
        self.start_engine()
    }

    /// The engine's data root (`--data-root`), as the host and the node
    /// both see it unless something was mounted over it inside the node.
    pub fn data_root(&self) -> PathBuf {
        self.engine_paths().data_root
    }

    /// Sets the node's link on the LAN down: everything it sends or is sent
    /// is lost, with no RST or ICMP to tell anyone.
    pub fn link_down(&self) -> anyhow::Result<()> {
        self.lab
            .in_lan(&["ip", "link", "set", &self.lan_link(), "down"])
            .map(drop)
    }

    /// Sets the node's link on the LAN up again.
    pub fn link_up(&self) -> anyhow::Result<()> {
        self.lab
            .in_lan(&["ip", "link", "set", &self.lan_link(), "up"])
            .map(drop)
    }

    /// Drops all traffic between this node and `addrs` (empty: none), in
    /// the node's own network namespace.
    pub(crate) fn drop_traffic_with(&self, addrs: &[String]) -> anyhow::Result<()> {
        let holder = self.procs().net_holder.as_ref().map(Child::id);
        let Some(holder) = holder else { return Ok(()) };
        // The table is created first so the delete never fails.
        let mut rules = String::from("table inet lab_cut {}\ndelete table inet lab_cut\n");
        if !addrs.is_empty() {
            let set = addrs.join(", ");
            rules.push_str(&format!(
                "table inet lab_cut {{\n\
                 chain in {{ type filter hook input priority -300; ip saddr {{ {set} }} drop; }}\n\
                 chain out {{ type filter hook output priority -300; ip daddr {{ {set} }} drop; }}\n\
                 }}\n"
            ));
        }
        let file = self.dir.join("partition.nft");
        std::fs::write(&file, rules)?;
        let f = file.display().to_string();
        ns::must_in(holder, &["--net"], &["nft", "-f", &f]).map(drop)
    }

    /// Runs `args` inside the node (its network, mount, UTS and PID
    /// namespaces), killed after 60 s.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_within(Duration::from_secs(60), args)
    }

    /// Runs `args` inside the node, killed after `limit`.
    pub fn run_within(&self, limit: Duration, args: &[&str]) -> Run {
        match self.procs().init_pid {
            Some(pid) => ns::run_in(pid, NODE_NS, limit, args),
            None => Run {
                code: -1,
                stdout: String::new(),
                stderr: format!("node{} is not running", self.n),
            },
        }
    }

    /// Runs the stock CLI against this node's engine (bounded: 120 s).
    pub fn docker(&self, args: &[&str]) -> Run {
        self.docker_within(CLI_LIMIT, args, None)
    }

    /// Runs the stock CLI with `input` on stdin, killed after `limit`.
    pub fn docker_within(&self, limit: Duration, args: &[&str], input: Option<&[u8]>) -> Run {
        self.cli.run(limit, args, input)
    }

    /// Starts the stock CLI against this node's engine for a caller that
    /// reads its output as it comes, killed after `limit` at the latest.
    pub fn docker_spawn(
        &self,
        limit: Duration,
        args: &[&str],
    ) -> std::io::Result<std::process::Child> {
        self.cli.spawn(limit, args)
    }

    /// Runs the CLI; stdout on success, else an error with its output.
    pub fn try_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        self.docker(args)
            .into_result(&format!("node{}: docker {}", self.n, args.join(" ")))
    }

    /// Runs the CLI and asserts success (the panic shows the engine's log
    /// tail); returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert!(
            r.success(),
            "node{}: docker {args:?} failed ({}): {}\n{}\n--- engine log tail ---\n{}",
            self.n,
            r.code,
            r.stderr,
            r.stdout,
            tail(&self.engine_log(), 40)
        );
        r.stdout
    }

    /// Runs the CLI, asserts failure (not a time-out), returns stderr.
    #[track_caller]
    pub fn fail(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert!(
            !r.success() && !r.timed_out(),
            "node{}: docker {args:?} did not fail cleanly: {r:?}",
            self.n
        );
        r.stderr
    }

    /// Loads the lab's test image into this node's engine.
    pub fn load_test_image(&self) -> anyhow::Result<()> {
        let tar = self.lab.test_image()?;
        self.try_ok(&["load", "-i", &tar.display().to_string()])
            .map(drop)
    }

    /// The engine's log so far.
    pub fn engine_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("engine.log")).unwrap_or_default()
    }

    /// containerd's log so far.
    pub fn containerd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The last lines of the init, containerd and engine logs.
    pub fn logs_tail(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "--- init ---\n{}\n--- containerd ---\n{}\n--- engine ---\n{}",
            tail(&read("init.log"), 10),
            tail(&read("containerd.log"), 10),
            tail(&read("engine.log"), 30)
        )
    }

    /// The engine's PID (as the host sees it), while it runs.
    pub fn pid_of_engine(&self) -> Option<u32> {
        self.procs().engine_pid.filter(|p| procs::alive(*p))
    }

    /// The node's init PID (tini, PID 1 inside), while the node runs.
    pub fn pid_of_init(&self) -> Option<u32> {
        self.procs().init_pid.filter(|p| procs::alive(*p))
    }

    /// containerd's PID, while the node runs.
    pub fn pid_of_containerd(&self) -> Option<u32> {
        self.pids()
            .into_iter()
            .find(|p| procs::comm(*p).as_deref() == Some("containerd"))
    }

    /// Every process of the node (its PID namespace), host PIDs.
    pub fn pids(&self) -> Vec<u32> {
        self.pid_of_init()
            .map(procs::pids_in_pid_ns_of)
            .unwrap_or_default()
    }

    /// Resident memory of the engine process, in bytes.
    pub fn engine_rss(&self) -> Option<u64> {
        self.pid_of_engine().and_then(procs::rss_bytes)
    }

    /// Resident memory of the node's containerd, in bytes.
    pub fn containerd_rss(&self) -> Option<u64> {
        self.pid_of_containerd().and_then(procs::rss_bytes)
    }

    /// Ends every process of the node and its namespace holder (also what
    /// dropping the lab does); the node cannot start again.
    pub fn teardown(&self) {
        self.kill_node();
        let holder = self.procs().net_holder.take();
        if let Some(mut h) = holder {
            procs::kill_child(&mut h);
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn children_named(parent: u32, name: &str) -> Option<u32> {
    procs::children_of(parent)
        .into_iter()
        .find(|p| procs::comm(*p).as_deref() == Some(name))
}

fn children_of_first(parent: u32) -> Option<u32> {
    procs::children_of(parent).into_iter().next()
}

fn any_in_ns(ns: &Path) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == ns)
                && procs::alive(pid)
        })
}
