//! Shared harness for end-to-end tests: a live `shoald` on a temp socket and
//! the stock `docker` CLI pointed at it.
//!
//! Every test gets its own daemon, data root and socket, so tests run in
//! parallel and leave nothing behind. The daemon is killed by PID on drop.

#![allow(dead_code)]

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

// The CLI runner, its result and the waiting helper are the multi-node
// harness's, shared so both kinds of test behave alike.
#[allow(unused_imports)]
pub use compat_tests::cluster::cli::docker_bin;
pub use compat_tests::cluster::cli::CLI_LIMIT;
use compat_tests::cluster::procs::terminate;
pub use compat_tests::cluster::wait_for;
use compat_tests::cluster::Cli;
pub use compat_tests::cluster::Run;

/// The shoald binary: `$SHOALD_BIN`, else the workspace's debug build.
pub fn shoald_bin() -> PathBuf {
    compat_tests::cluster::engine::shoald_bin().unwrap_or_else(|e| panic!("{e}"))
}

/// A running shoald.
pub struct Daemon {
    /// Temp dir holding the socket, data root and log.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    args: Vec<String>,
    cli_limit: Duration,
    /// The node namespaces shoald runs in (with its containerd), if any.
    node: Option<Arc<NodeNs>>,
    /// Environment given to shoald besides the test's own.
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts shoald with extra flags and waits for `/_ping` (bounded: 20 s).
    pub fn start_with(extra: &[&str]) -> Daemon {
        Daemon::start_in(None, extra)
    }

    /// Starts shoald inside `node` (or the test's namespaces) with extra
    /// flags and waits for `/_ping`.
    fn start_in(node: Option<Arc<NodeNs>>, extra: &[&str]) -> Daemon {
        // Every daemon gets network namespaces of its own, even without a
        // containerd: a swarm manager listens on 0.0.0.0:2377, and tests
        // run side by side.
        let node = node.or_else(|| Some(Arc::new(NodeNs::new())));
        let dir = tempfile::Builder::new()
            .prefix("shoal-e2e")
            .tempdir()
            .unwrap();
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !args.iter().any(|a| a == "--containerd") {
            // Control-plane tests run without an engine: tasks stop at
            // `assigned`, whatever containerd the machine may run.
            args.push("--containerd".into());
            args.push(dir.path().join("no-containerd.sock").display().to_string());
        }
        let mut d = Daemon {
            dir,
            child: None,
            args,
            cli_limit: CLI_LIMIT,
            node,
            env: Vec::new(),
        };
        d.spawn();
        d
    }

    /// Starts shoald with extra flags and environment variables.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon::start_in(None, extra);
        d.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.restart();
        d
    }

    /// Starts shoald with defaults.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// Starts shoald and runs `docker swarm init` on loopback.
    pub fn with_swarm() -> Daemon {
        let d = Daemon::start();
        d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("shoald.log"))
            .unwrap();
        let mut cmd = match &self.node {
            Some(n) => n.command(shoald_bin()),
            None => Command::new(shoald_bin()),
        };
        let child = cmd
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--data-root")
            .arg(self.data_root())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn shoald");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.socket().exists()
                && self
                    .docker(&["version", "--format", "{{.Server.Version}}"])
                    .code
                    == 0
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("shoald did not answer within 20s; log:\n{}", self.log());
    }

    /// The API socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The data root.
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shoald.log")).unwrap_or_default()
    }

    /// `DOCKER_HOST` for this daemon.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Runs the stock CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Run {
        self.docker_stdin(args, None)
    }

    /// Runs the CLI with `input` on stdin.
    pub fn docker_stdin(&self, args: &[&str], input: Option<&[u8]>) -> Run {
        self.docker_within(self.cli_limit, args, input)
    }

    /// Sets how long each CLI call of this daemon's tests may take.
    pub fn set_cli_limit(&mut self, limit: Duration) {
        self.cli_limit = limit;
    }

    /// Runs the CLI with `input` on stdin, killed after `limit`: a call that
    /// hangs fails its test instead of hanging the suite.
    #[track_caller]
    pub fn docker_within(&self, limit: Duration, args: &[&str], input: Option<&[u8]>) -> Run {
        let cli = Cli::new(&self.socket(), self.dir.path().join("cli-config"));
        let r = cli.run(limit, args, input);
        assert!(
            !r.timed_out(),
            "docker {args:?} did not end within {}s: {r:?}",
            limit.as_secs().max(1)
        );
        r
    }

    /// `docker service inspect --format FORMAT SERVICE`, asserting success.
    #[track_caller]
    pub fn service_format(&self, service: &str, format: &str) -> String {
        self.ok(&["service", "inspect", "--format", format, service])
    }

    /// Runs the CLI and asserts success; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert_eq!(
            r.code,
            0,
            "docker {args:?} failed: {}\n{}\n--- shoald log ---\n{}",
            r.stderr,
            r.stdout,
            self.log()
        );
        r.stdout
    }

    /// Runs the CLI, asserts failure, and returns stderr.
    #[track_caller]
    pub fn fail(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert_ne!(
            r.code, 0,
            "docker {args:?} unexpectedly succeeded: {}",
            r.stdout
        );
        r.stderr
    }

    /// Sends a raw HTTP request over the socket with curl; returns (status, body).
    pub fn curl(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        // -g: query strings carry JSON filters with braces, not URL globs.
        cmd.args([
            "-s",
            "-g",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "--unix-socket",
        ])
        .arg(self.socket())
        .arg(format!("http://localhost{path}"));
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Kills shoald with SIGKILL (no clean shutdown) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops shoald with SIGTERM and waits (bounded: 20 s, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(20));
        }
    }

    /// Starts shoald again on the same data root and socket.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Restarts after a SIGKILL.
    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        unmount_under(self.dir.path());
    }
}

/// Lazily unmounts everything mounted below `dir`, deepest first (the
/// secret tmpfs of task containers outlives a killed shoald), so the temp
/// dir can go.
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut targets: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        let _ = Command::new("umount").arg("-l").arg(target).status();
    }
}

/// Writes `content` to a file in the daemon's temp dir and returns its path.
pub fn temp_file(d: &Daemon, name: &str, content: &[u8]) -> String {
    let p = d.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

/// A random lowercase marker string.
pub fn marker(prefix: &str) -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (std::process::id() as u64) << 32;
    format!("{prefix}{n:x}")
}

/// Why tests that need a real containerd cannot run here, if they cannot.
pub fn containerd_missing() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if uid != 0 {
        return Some("not running as root".into());
    }
    for bin in ["containerd", "ctr"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!(
                "{bin} is not installed (apt-get install containerd)"
            ));
        }
    }
    None
}

/// A node's own network and mount namespace, as DESIGN.md describes for
/// running a node beside the host: held by a sleeping process this test
/// started (`unshare --net --mount --propagation slave`), joined with
/// `nsenter`. Links, bridges, nftables tables, forwarding switches and the
/// task namespaces' bind mounts all stay inside and die with it; Unix
/// sockets under the temp dir stay reachable from the host namespace.
pub struct NodeNs {
    holder: Option<Child>,
    pid: u32,
}

impl NodeNs {
    /// Makes the namespaces and brings their loopback up (bounded: 10 s).
    pub fn new() -> NodeNs {
        let holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "slave",
                "sleep",
                "7200",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let pid = holder.id();
        let node = NodeNs {
            holder: Some(holder),
            pid,
        };
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        wait_for(10, "the node's network namespace", || {
            // unshare execs sleep once the namespaces exist.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            (comm.trim() == "sleep" && theirs != ours).then_some(())
        });
        let o = node.run(&["ip", "link", "set", "lo", "up"]);
        assert!(o.status.success(), "lo up: {o:?}");
        node
    }

    /// The PID holding the namespaces.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A command that runs `program` inside the node's namespaces (nsenter
    /// execs it, so the child's PID is the program's own).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid.to_string())
            .args(["--net", "--mount", "--"])
            .arg(program);
        c
    }

    /// Runs `f` on a thread that joined the node's network namespace (the
    /// threads it starts are in there too), for clients the test process
    /// itself drives.
    pub fn in_net<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.pid)).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread in the node")
        })
    }

    /// Runs a command inside the node and waits for it (bounded by the
    /// caller's command, e.g. `curl --max-time`).
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Runs a command inside the node under `timeout` and returns stdout;
    /// empty when it failed.
    pub fn output(&self, limit: Duration, args: &[&str]) -> String {
        let mut full = vec![
            "timeout".to_string(),
            "-k".into(),
            "2".into(),
            limit.as_secs().max(1).to_string(),
        ];
        full.extend(args.iter().map(|a| a.to_string()));
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let o = self.run(&full);
        if o.status.success() {
            String::from_utf8_lossy(&o.stdout).into_owned()
        } else {
            String::new()
        }
    }
}

impl NodeNs {
    /// A client machine beside the node: namespaces of their own joined to
    /// the node by a veth pair, the node at 192.0.2.1/24 and the client at
    /// 192.0.2.2/24 (TEST-NET-1, away from the overlays' 10.0.0.0/8).
    /// Returns the client and the node's address.
    pub fn client(&self) -> (NodeNs, &'static str) {
        let client = NodeNs::new();
        let peer = client.pid.to_string();
        for args in [
            vec![
                "ip",
                "link",
                "add",
                "shoal-cl0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &peer,
            ],
            vec!["ip", "addr", "add", "192.0.2.1/24", "dev", "shoal-cl0"],
            vec!["ip", "link", "set", "shoal-cl0", "up"],
        ] {
            let o = self.run(&args);
            assert!(o.status.success(), "{args:?}: {o:?}");
        }
        for args in [
            &["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"][..],
            &["ip", "link", "set", "eth0", "up"],
        ] {
            let o = client.run(args);
            assert!(o.status.success(), "{args:?}: {o:?}");
        }
        (client, "192.0.2.1")
    }
}

impl Drop for NodeNs {
    fn drop(&mut self) {
        if let Some(c) = self.holder.take() {
            terminate(c, Duration::from_secs(2));
        }
    }
}

/// A private containerd under a temp dir (its own socket, root and state)
/// in its own node namespaces, stopped by PID on drop.
pub struct Containerd {
    /// Temp dir holding the socket, root, state, config and log.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// The namespaces it, and the shoald given it, run in.
    pub node: Arc<NodeNs>,
}

impl Containerd {
    /// Starts containerd and waits until it answers (bounded: 20 s). Returns
    /// `None`, after printing why, when this machine cannot run it.
    pub fn start() -> Option<Containerd> {
        if let Some(why) = containerd_missing() {
            // The test command sets this: there a missing containerd is a
            // failure, not a reason to skip.
            if std::env::var_os("SHOAL_REQUIRE_CONTAINERD").is_some() {
                panic!("containerd is required here: {why}");
            }
            eprintln!("skipping: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("shoal-ctrd")
            .tempdir()
            .unwrap();
        let p = dir.path();
        let config = format!(
            "version = 2\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{}\"\n",
            p.join("opt").display()
        );
        std::fs::write(p.join("config.toml"), config).unwrap();
        let mut c = Containerd {
            dir,
            child: None,
            node: Arc::new(NodeNs::new()),
        };
        c.spawn();
        Some(c)
    }

    fn spawn(&mut self) {
        let p = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.join("containerd.log"))
            .unwrap();
        let child = self
            .node
            .command("containerd")
            .arg("--config")
            .arg(p.join("config.toml"))
            .arg("--address")
            .arg(p.join("c.sock"))
            .arg("--root")
            .arg(p.join("root"))
            .arg("--state")
            .arg(p.join("state"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.child = Some(child);
        let c = &*self;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("ctr")
                .arg("--address")
                .arg(c.socket())
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            if Instant::now() > deadline {
                panic!("containerd did not answer within 20s; log:\n{}", c.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The containerd socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    /// Stops containerd (SIGTERM; its shims and containers keep running)
    /// and starts it again on the same root and socket.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops containerd (SIGTERM, bounded: 10 s); its shims and containers
    /// keep running. [`Containerd::start_again`] brings it back.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(10));
        }
    }

    /// Starts a stopped containerd again on the same root and socket and
    /// waits until it answers.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Containerd {
    fn ctr(&self, args: &[&str]) -> String {
        let o = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", "shoal"])
            .args(args)
            .stderr(Stdio::null())
            .output();
        o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// IDs of the task processes this containerd runs.
    pub fn task_ids(&self) -> Vec<String> {
        self.ctr(&["tasks", "ls", "-q"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Kills and deletes every task this containerd runs: containers
    /// outlive a killed shoald and their shims outlive containerd, so a test
    /// must end them itself (bounded: 10 s).
    fn end_tasks(&self) {
        let ids = self.task_ids();
        for id in &ids {
            self.ctr(&["tasks", "kill", "--all", "--signal", "SIGKILL", id]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for id in &ids {
            while Instant::now() < deadline
                && !self
                    .ctr(&["tasks", "ls"])
                    .lines()
                    .any(|l| l.starts_with(id.as_str()) && l.trim_end().ends_with("STOPPED"))
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            self.ctr(&["tasks", "rm", "--force", id]);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.end_tasks();
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(10));
        }
        self.kill_leftover_shims();
    }
}

impl Containerd {
    /// Kills the shims this containerd started that outlived it (a task
    /// that was being made when the test ended is in no task list), with
    /// their direct children (a `runc init` waiting for a start). Ours are
    /// found by the socket path on their command line.
    fn kill_leftover_shims(&self) {
        use nix::sys::signal::kill;
        use nix::sys::signal::Signal;
        use nix::unistd::Pid;
        let socket = self.socket().display().to_string();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        let pids: Vec<i32> = procs
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let cmdline = |pid: i32| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let parent = |pid: i32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse::<i32>()
                .ok()
        };
        for shim in pids.iter().copied().filter(|p| {
            let c = String::from_utf8_lossy(&cmdline(*p)).replace('\0', " ");
            c.contains("containerd-shim") && c.contains(&socket)
        }) {
            for child in pids.iter().copied().filter(|p| parent(*p) == Some(shim)) {
                let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(shim), Signal::SIGKILL);
        }
    }
}

/// A private containerd and shoald on it with the test image
/// (`shoal-test/busybox:latest`) loaded, no swarm; `None` when skipped.
pub fn node_with_test_image() -> Option<(Containerd, Daemon)> {
    let ctrd = Containerd::start()?;
    let d = Daemon::with_containerd(&ctrd);
    let tar = make_test_image(d.dir.path(), false);
    d.ok(&["load", "-i", &tar.display().to_string()]);
    Some((ctrd, d))
}

/// [`node_with_test_image`] in a one-node swarm; `None` when skipped.
pub fn swarm_with_test_image() -> Option<(Containerd, Daemon)> {
    let (ctrd, d) = node_with_test_image()?;
    d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    Some((ctrd, d))
}

impl Daemon {
    /// Starts shoald against the private containerd `c`.
    pub fn with_containerd(c: &Containerd) -> Daemon {
        let socket = c.socket().display().to_string();
        Daemon::start_in(Some(c.node.clone()), &["--containerd", &socket])
    }

    /// Starts shoald against the private containerd `c` with environment
    /// variables of its own.
    pub fn with_containerd_env(c: &Containerd, env: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon::with_containerd(c);
        d.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.restart();
        d
    }

    /// The node namespaces shoald runs in, when it has a containerd.
    pub fn node(&self) -> Option<&NodeNs> {
        self.node.as_deref()
    }
}

/// Builds the test image with `compat-tests/scripts/make-test-image.sh`
/// (docker-archive, or OCI layout when `oci`) into `dir`; returns the tar.
pub fn make_test_image(dir: &Path, oci: bool) -> PathBuf {
    compat_tests::cluster::image::make_test_image(dir, oci).unwrap_or_else(|e| panic!("{e}"))
}
