//! The harness of `t50_seal`: the LAN namespace with two node namespaces
//! on it, a runtime per node for its tunnel, a capture of the LAN, and
//! traffic helpers. See `t50_seal.rs` for the topology.

use std::collections::BTreeSet;
use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::io::Write;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::net::TcpStream;
use std::net::UdpSocket;
use std::path::Path;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use netdrv::tunnel::Key;
use netdrv::tunnel::Keyring;
use netdrv::tunnel::Stats;
use netdrv::tunnel::Tunnel;
use netdrv::tunnel::TunnelConfig;
use nix::sched::setns;
use nix::sched::unshare;
use nix::sched::CloneFlags;
use nix::sys::socket::recv;
use nix::sys::socket::setsockopt;
use nix::sys::socket::socket;
use nix::sys::socket::sockopt;
use nix::sys::socket::AddressFamily;
use nix::sys::socket::MsgFlags;
use nix::sys::socket::SockFlag;
use nix::sys::socket::SockProtocol;
use nix::sys::socket::SockType;
use nix::sys::time::TimeVal;

use crate::common::*;
pub const VNI: u32 = 4200;
pub const LAN_ADDR: &str = "192.168.77.3";
/// How long any awaited state may take.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a socket read waits.
pub const READ_WAIT: Duration = Duration::from_secs(3);

pub fn key(id: u32) -> Key {
    Key {
        id,
        secret: [id as u8 ^ 0x5a; 32],
    }
}

pub fn ring(ids: &[u32], primary: u32) -> Keyring {
    Keyring {
        keys: ids.iter().map(|&i| key(i)).collect(),
        primary,
    }
}

/// A network namespace bound on a file; unmounted and deleted on drop,
/// whatever happened in between.
pub struct Netns {
    path: PathBuf,
}

impl Netns {
    pub fn new(path: PathBuf) -> Netns {
        File::create(&path).expect("namespace file");
        let target = path.clone();
        std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare");
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .expect("bind the namespace");
        })
        .join()
        .expect("namespace thread");
        Netns { path }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `f` on a thread inside `ns`: sockets it makes stay there.
pub fn within<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(ns).expect("open namespace");
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One node: its namespace and a current-thread runtime on a thread inside
/// it, where its tunnel runs.
pub struct Node {
    pub addr: Ipv4Addr,
    pub overlay: Ipv4Addr,
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub tunnel: Arc<tokio::sync::Mutex<Option<Tunnel>>>,
    // Last: the namespace goes after the thread that uses it.
    ns: Netns,
}

impl Node {
    pub fn new(ns: Netns, addr: Ipv4Addr, overlay: Ipv4Addr) -> Node {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let file = File::open(&ns.path).expect("open namespace");
        let thread = std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("node runtime");
            rt.block_on(async move {
                while let Some(job) = rx.recv().await {
                    job.await;
                }
            });
        });
        Node {
            addr,
            overlay,
            jobs: Some(tx),
            thread: Some(thread),
            tunnel: Arc::new(tokio::sync::Mutex::new(None)),
            ns,
        }
    }

    pub fn path(&self) -> &Path {
        &self.ns.path
    }

    /// Runs `fut` on the node's runtime and returns its output.
    pub async fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = tx.send(fut.await);
        });
        self.jobs
            .as_ref()
            .expect("node running")
            .send(job)
            .unwrap_or_else(|_| panic!("node thread gone"));
        rx.await.expect("node job answered")
    }

    pub fn config(&self) -> TunnelConfig {
        TunnelConfig::new(self.addr)
    }

    pub async fn start(&self, keys: Keyring) {
        let slot = self.tunnel.clone();
        let cfg = self.config();
        self.run(async move {
            let t = Tunnel::start(cfg, keys).await.expect("start tunnel");
            *slot.lock().await = Some(t);
        })
        .await;
    }

    pub async fn set_vnis(&self, vnis: &[u32]) {
        let slot = self.tunnel.clone();
        let vnis: BTreeSet<u32> = vnis.iter().copied().collect();
        self.run(async move {
            let guard = slot.lock().await;
            guard
                .as_ref()
                .expect("tunnel")
                .set_encrypted_vnis(vnis)
                .await
                .expect("set encrypted VNIs");
        })
        .await;
    }

    pub async fn set_keys(&self, keys: Keyring) {
        let slot = self.tunnel.clone();
        self.run(async move {
            slot.lock()
                .await
                .as_ref()
                .expect("tunnel")
                .set_keys(keys)
                .expect("set keys");
        })
        .await;
    }

    pub async fn stats(&self) -> Stats {
        let slot = self.tunnel.clone();
        self.run(async move { slot.lock().await.as_ref().expect("tunnel").stats() })
            .await
    }

    pub async fn stop(&self) {
        let slot = self.tunnel.clone();
        self.run(async move {
            let t = slot.lock().await.take().expect("tunnel");
            t.stop().await.expect("stop tunnel");
        })
        .await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Closing the queue ends the node's runtime, and its tunnel tasks.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The LAN (this namespace) and the two nodes on it.
pub struct Lan {
    pub a: Node,
    pub b: Node,
    pub _dir: tempfile::TempDir,
}

pub fn lan() -> Lan {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&["ip", "link", "set", "lo", "up"]);
    ok(&["ip", "link", "add", "lan0", "type", "bridge"]);
    ok(&[
        "ip",
        "addr",
        "add",
        &format!("{LAN_ADDR}/24"),
        "dev",
        "lan0",
    ]);
    ok(&["ip", "link", "set", "lan0", "up"]);
    let a = node(dir.path(), "a", 1, 2);
    let b = node(dir.path(), "b", 2, 1);
    Lan { a, b, _dir: dir }
}

/// Node `name` at 192.168.77.`n`, its VXLAN towards 192.168.77.`peer`.
pub fn node(dir: &Path, name: &str, n: u8, peer: u8) -> Node {
    let ns = Netns::new(dir.join(name));
    let p = ns.path.to_str().expect("path").to_string();
    let port = format!("v{name}");
    let addr = Ipv4Addr::new(192, 168, 77, n);
    let overlay = Ipv4Addr::new(10, 200, 0, n);
    ok(&[
        "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &p,
    ]);
    ok(&["ip", "link", "set", &port, "master", "lan0", "up"]);
    let inside = |args: &[&str]| {
        let out = in_ns(&ns.path, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    inside(&["ip", "link", "set", "lo", "up"]);
    inside(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
    inside(&["ip", "link", "set", "eth0", "up"]);
    inside(&[
        "ip",
        "link",
        "add",
        "vx0",
        "mtu",
        "1450",
        "type",
        "vxlan",
        "id",
        &VNI.to_string(),
        "dstport",
        "4789",
        "local",
        &addr.to_string(),
        "nolearning",
    ]);
    inside(&["ip", "addr", "add", &format!("{overlay}/24"), "dev", "vx0"]);
    inside(&["ip", "link", "set", "vx0", "up"]);
    inside(&[
        "bridge",
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx0",
        "dst",
        &format!("192.168.77.{peer}"),
    ]);
    Node::new(ns, addr, overlay)
}

/// Polls `cond` until it holds, for at most [`WAIT`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the node's stats until `cond` holds, for at most [`WAIT`].
pub async fn wait_stats(node: &Node, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = node.stats().await;
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn pings(from: &Node, to: Ipv4Addr) -> bool {
    // The first may go while ARP over the overlay resolves.
    (0..5).any(|_| ping(from.path(), &to.to_string()))
}

pub fn marker() -> Vec<u8> {
    let mut m = b"SEALTEST-".to_vec();
    m.extend((0..24).map(|_| rand_byte()));
    m
}

pub fn rand_byte() -> u8 {
    rand::random()
}

/// Every frame on the LAN (both veths and the bridge) until dropped.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Vec<u8>>>>,
}

impl Capture {
    /// Starts capturing in this (the LAN's) namespace.
    pub fn start() -> Capture {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::EthAll,
        )
        .expect("packet socket");
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 50_000)).expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 65536];
            // Stopped, it still drains what is queued (it stops at the first
            // read that waits in vain), so a frame that arrived just before
            // `finish` is never lost to a slow thread.
            // On a LAN that never goes quiet, at most a second more.
            let mut stopped: Option<Instant> = None;
            loop {
                if flag.load(Ordering::Relaxed) {
                    let since = *stopped.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(1) {
                        break;
                    }
                }
                match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                    Ok(n) => frames.push(buf[..n].to_vec()),
                    Err(_) if stopped.is_some() => break,
                    Err(_) => {}
                }
            }
            frames
        });
        Capture {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns what was seen.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("capture thread")
            .join()
            .expect("capture")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn contains(frames: &[Vec<u8>], needle: &[u8]) -> bool {
    frames
        .iter()
        .any(|f| f.windows(needle.len()).any(|w| w == needle))
}

/// Whether a captured frame is IPv4 UDP to `port`.
pub fn udp_to(frames: &[Vec<u8>], port: u16) -> bool {
    frames.iter().any(|f| {
        f.len() > 38
            && f[12..14] == [0x08, 0x00]
            && f[23] == 17
            && u16::from_be_bytes([f[14 + 22], f[14 + 23]]) == port
    })
}

/// Sends `payload` over the overlay from `from` to `to`:`port` (which
/// `rx`, made inside `to`, listens on) and returns what `rx` got.
pub fn udp_over(from: &Node, to: &Node, rx: &UdpSocket, port: u16, payload: &[u8]) -> Vec<u8> {
    let dst = SocketAddr::from((to.overlay, port));
    within(from.path(), || {
        let tx = UdpSocket::bind((from.overlay, 0)).expect("bind");
        tx.send_to(payload, dst).expect("send");
    });
    let mut buf = [0u8; 2048];
    let n = rx.recv(&mut buf).expect("datagram over the overlay");
    buf[..n].to_vec()
}

pub fn udp_listener(node: &Node, port: u16) -> UdpSocket {
    let sock = within(node.path(), || {
        UdpSocket::bind((node.overlay, port)).expect("bind")
    });
    sock.set_read_timeout(Some(READ_WAIT)).expect("timeout");
    sock
}

/// A plain VXLAN datagram as an outsider on the LAN would forge it: VNI
/// `vni`, an Ethernet frame to `dst_mac` carrying IPv4 UDP from `src` to
/// `dst`:`port` with `payload`.
pub fn forged_vxlan(
    vni: u32,
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0];
    p.extend_from_slice(&vni.to_be_bytes()[1..]);
    p.push(0);
    p.extend_from_slice(&dst_mac);
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]);
    let total = (28 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&ip);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

pub fn mac_of(node: &Node, ifname: &str) -> [u8; 6] {
    let links = ip_json(Some(node.path()), &["link", "show", ifname]);
    let text = links[0]["address"].as_str().expect("MAC").to_string();
    let mut mac = [0u8; 6];
    for (i, part) in text.split(':').enumerate() {
        mac[i] = u8::from_str_radix(part, 16).expect("hex");
    }
    mac
}

/// A TCP echo round trip of `len` bytes from `from` to `to` over the
/// overlay.
pub fn tcp_echo(from: &Node, to: &Node, port: u16, len: usize) {
    let listener = within(to.path(), || {
        TcpListener::bind((to.overlay, port)).expect("listen")
    });
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(READ_WAIT)).expect("timeout");
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).expect("read");
        s.write_all(&buf).expect("echo");
    });
    let dst = SocketAddr::from((to.overlay, port));
    let mut c = within(from.path(), || {
        TcpStream::connect_timeout(&dst, READ_WAIT).expect("connect")
    });
    c.set_read_timeout(Some(READ_WAIT)).expect("timeout");
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    c.write_all(&data).expect("write");
    let mut back = vec![0u8; len];
    c.read_exact(&mut back).expect("read echo");
    assert!(back == data, "echo differs");
    server.join().expect("server");
}

/// Whether anything of a tunnel is left in `ns`.
pub fn leftovers(ns: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if links(Some(ns)).iter().any(|l| l == "shoal-seal") {
        found.push("TUN".to_string());
    }
    let rules = ip_json(Some(ns), &["rule"]);
    if rules
        .as_array()
        .expect("rules")
        .iter()
        .any(|r| r["fwmark"] == "0x5ea1")
    {
        found.push("rule".to_string());
    }
    let out = in_ns(ns, &["ip", "-j", "route", "show", "table", "24225"]);
    let routes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if routes.as_array().is_some_and(|r| !r.is_empty()) {
        found.push(format!("routes {routes}"));
    }
    if in_ns(ns, &["nft", "list", "table", "ip", "shoal-seal"])
        .status
        .success()
    {
        found.push("nftables table".to_string());
    }
    found
}

pub fn no_drops(s: &Stats) -> bool {
    s.dropped_auth == 0
        && s.dropped_replay == 0
        && s.dropped_malformed == 0
        && s.dropped_inner == 0
        && s.io_errors == 0
}

pub struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    client: Option<std::thread::JoinHandle<u64>>,
    server: Option<std::thread::JoinHandle<u64>>,
}

impl Stream {
    pub fn start(a: &Node, b: &Node, port: u16) -> Stream {
        let listener = within(b.path(), || {
            TcpListener::bind((b.overlay, port)).expect("listen")
        });
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(READ_WAIT)).expect("timeout");
            let mut at: u64 = 0;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = s.read(&mut buf).expect("stream read");
                if n == 0 {
                    return at;
                }
                for &byte in &buf[..n] {
                    assert_eq!(byte, (at % 251) as u8, "stream byte {at}");
                    at += 1;
                }
            }
        });
        let dst = SocketAddr::from((b.overlay, port));
        let mut c = within(a.path(), || {
            TcpStream::connect_timeout(&dst, READ_WAIT).expect("connect")
        });
        c.set_write_timeout(Some(READ_WAIT)).expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (flag, count) = (stop.clone(), sent.clone());
        let client = std::thread::spawn(move || {
            let chunk: Vec<u8> = (0..251 * 64).map(|i| (i % 251) as u8).collect();
            let mut total = 0u64;
            while !flag.load(Ordering::Relaxed) {
                c.write_all(&chunk).expect("stream write");
                total += chunk.len() as u64;
                count.store(total, Ordering::Relaxed);
            }
            c.shutdown(std::net::Shutdown::Write).expect("shutdown");
            total
        });
        Stream {
            stop,
            sent,
            client: Some(client),
            server: Some(server),
        }
    }

    /// Waits until `more` bytes past the current count are sent.
    pub async fn advance(&self, more: u64) {
        let from = self.sent.load(Ordering::Relaxed);
        let sent = self.sent.clone();
        wait_for("the stream to go on", || {
            sent.load(Ordering::Relaxed) >= from + more
        })
        .await;
    }

    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.client.take().expect("client").join().expect("client");
        let got = self.server.take().expect("server").join().expect("server");
        (sent, got)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
