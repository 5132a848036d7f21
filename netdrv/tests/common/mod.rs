//! Test harness for kernel-touching tests: each test re-executes its own
//! binary under `unshare --net --mount`, so everything it does (bridges,
//! veths, nftables tables, namespace bind mounts, `nft` and `ip` child
//! processes) happens in a fresh network and mount namespace that dies with
//! it. The host namespace is never touched: the child refuses to run if it
//! finds itself in the parent's network namespace.

#![allow(dead_code)]

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;

const ISOLATED: &str = "NETDRV_TEST_ISOLATED";
const PARENT_NETNS: &str = "NETDRV_TEST_PARENT_NETNS";
/// The whole child run, namespace set-up included.
const CHILD_DEADLINE: Duration = Duration::from_secs(90);
/// The test body inside the child.
const BODY_DEADLINE: Duration = Duration::from_secs(60);

fn netns_inode() -> u64 {
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .expect("stat /proc/self/ns/net")
}

/// Runs `body` in a fresh network and mount namespace (see the module
/// docs). `name` is the test's name, as libtest filters it.
pub fn isolated<F, Fut>(name: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(ISOLATED).is_some() {
        let parent: u64 = std::env::var(PARENT_NETNS)
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("parent netns inode");
        assert_ne!(
            parent,
            netns_inode(),
            "refusing to run in the parent's network namespace"
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(BODY_DEADLINE, body())
                .await
                .expect("test body timed out");
        });
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped {name}: needs root (network namespaces, bridges, nftables)");
        return;
    }
    for tool in ["unshare", "nsenter", "ip", "nft", "busybox"] {
        if !on_path(tool) {
            eprintln!("skipped {name}: `{tool}` not found (bash scripts/deps.sh installs it)");
            return;
        }
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ISOLATED, "1")
        .env(PARENT_NETNS, netns_inode().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: isolated run exceeded {CHILD_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(status.success(), "{name}: isolated run failed ({status})");
    // A filter that matched nothing would pass silently.
    assert!(
        stdout.contains("1 passed"),
        "{name}: the isolated run did not run the test"
    );
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// A state directory in a temporary directory. The driver turns its
/// `netns` and `sbox` folders into mount points (inside the test's private
/// mount namespace); they are detached here first, so the temporary
/// directory can be deleted even when a test fails half-way.
pub struct StateDir {
    /// The driver's state directory.
    pub path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl StateDir {
    pub fn new() -> StateDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        StateDir {
            path: tmp.path().join("netdrv"),
            _tmp: tmp,
        }
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        for sub in ["netns", "sbox"] {
            // Detaches the folder's mount and every namespace file below it.
            let _ = nix::mount::umount2(&self.path.join(sub), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Runs a command with a time bound (`timeout 10`).
pub fn run(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("10")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args` inside the network namespace bound at `netns`.
pub fn in_ns(netns: &Path, args: &[&str]) -> Output {
    let net = format!("--net={}", netns.display());
    let mut all = vec!["nsenter", net.as_str()];
    all.extend_from_slice(args);
    run(&all)
}

/// `ip -j <what>` inside `netns` (or here when `None`), parsed.
pub fn ip_json(netns: Option<&Path>, what: &[&str]) -> Value {
    let mut args = vec!["ip", "-j"];
    args.extend_from_slice(what);
    let out = match netns {
        Some(ns) => in_ns(ns, &args),
        None => run(&args),
    };
    assert!(
        out.status.success(),
        "ip {what:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ip -j output")
}

/// One ping with a one-second wait, from inside `netns`.
pub fn ping(netns: &Path, addr: &str) -> bool {
    in_ns(netns, &["busybox", "ping", "-c1", "-W1", addr])
        .status
        .success()
}

/// The names of the links in `netns` (or here).
pub fn links(netns: Option<&Path>) -> Vec<String> {
    ip_json(netns, &["link"])
        .as_array()
        .expect("link list")
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

/// A link's entry of `ip -j addr` in `netns`.
pub fn addr_of(netns: &Path, ifname: &str) -> Value {
    ip_json(Some(netns), &["addr"])
        .as_array()
        .expect("addr list")
        .iter()
        .find(|l| l["ifname"] == ifname)
        .cloned()
        .unwrap_or_else(|| panic!("no {ifname} in {}", netns.display()))
}

/// The IPv4 addresses (CIDR) of an `ip -j addr` entry.
pub fn ipv4s(entry: &Value) -> Vec<String> {
    entry["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["family"] == "inet")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether nftables has the `ip shoal` table here.
pub fn nft_table_exists() -> bool {
    run(&["nft", "list", "table", "ip", "shoal"])
        .status
        .success()
}

/// A plain swarm network spec for kernel tests (name `net-` and the ID's
/// first two characters).
pub fn network(id: &str, subnet: &str, gateway: &str) -> swarm::exec::NetworkSpec {
    swarm::exec::NetworkSpec {
        id: id.into(),
        name: format!("net-{}", &id[..2]),
        subnet: subnet.into(),
        gateway: gateway.into(),
        mtu: 1450,
        ingress: false,
        internal: false,
        ..Default::default()
    }
}

/// One attachment to `net` at `address` (CIDR).
pub fn on(net: &swarm::exec::NetworkSpec, address: &str) -> Vec<swarm::exec::Attachment> {
    vec![swarm::exec::Attachment {
        network: net.clone(),
        address: address.into(),
        aliases: vec![],
    }]
}
