//! The encrypted overlay tunnel against the real kernel. Each test runs in
//! a namespace of its own (see `common`), which plays the LAN: a bridge
//! `lan0` holding 192.168.77.3 (the attacker's and the capture's place on
//! the wire) with two node namespaces on it, A (192.168.77.1) and B
//! (192.168.77.2), each with a VXLAN device (VNI 4200, port 4789, learning
//! off, one all-zero FDB entry towards the other node) holding
//! 10.200.0.1/24 or .2/24, and a [`Tunnel`] run by a runtime on a thread
//! inside the node's namespace.
//! - Traffic: ping, UDP and TCP over the overlay with the VNI encrypted;
//!   a marker sent in the clear shows on the wire, sealed it does not; a
//!   plain VXLAN datagram forged on the LAN reaches B while the VNI is
//!   plain and is dropped once it is encrypted.
//! - A key rotation in the middle of a TCP stream drops no frame.
//! - After `stop` nothing is left; after a crash `remove_leftovers`
//!   clears what the kernel kept.
//! - `seal_throughput` (ignored): bulk TCP over plain and sealed VXLAN.

mod common;

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

use common::*;
use netdrv::tunnel::remove_leftovers;
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

const VNI: u32 = 4200;
const LAN_ADDR: &str = "192.168.77.3";
/// How long any awaited state may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long a socket read waits.
const READ_WAIT: Duration = Duration::from_secs(3);

fn key(id: u32) -> Key {
    Key {
        id,
        secret: [id as u8 ^ 0x5a; 32],
    }
}

fn ring(ids: &[u32], primary: u32) -> Keyring {
    Keyring {
        keys: ids.iter().map(|&i| key(i)).collect(),
        primary,
    }
}

/// A network namespace bound on a file; unmounted and deleted on drop,
/// whatever happened in between.
struct Netns {
    path: PathBuf,
}

impl Netns {
    fn new(path: PathBuf) -> Netns {
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
fn within<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
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

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One node: its namespace and a current-thread runtime on a thread inside
/// it, where its tunnel runs.
struct Node {
    addr: Ipv4Addr,
    overlay: Ipv4Addr,
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    tunnel: Arc<tokio::sync::Mutex<Option<Tunnel>>>,
    // Last: the namespace goes after the thread that uses it.
    ns: Netns,
}

impl Node {
    fn new(ns: Netns, addr: Ipv4Addr, overlay: Ipv4Addr) -> Node {
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

    fn path(&self) -> &Path {
        &self.ns.path
    }

    /// Runs `fut` on the node's runtime and returns its output.
    async fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
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

    fn config(&self) -> TunnelConfig {
        TunnelConfig::new(self.addr)
    }

    async fn start(&self, keys: Keyring) {
        let slot = self.tunnel.clone();
        let cfg = self.config();
        self.run(async move {
            let t = Tunnel::start(cfg, keys).await.expect("start tunnel");
            *slot.lock().await = Some(t);
        })
        .await;
    }

    async fn set_vnis(&self, vnis: &[u32]) {
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

    async fn set_keys(&self, keys: Keyring) {
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

    async fn stats(&self) -> Stats {
        let slot = self.tunnel.clone();
        self.run(async move { slot.lock().await.as_ref().expect("tunnel").stats() })
            .await
    }

    async fn stop(&self) {
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
struct Lan {
    a: Node,
    b: Node,
    _dir: tempfile::TempDir,
}

fn lan() -> Lan {
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
fn node(dir: &Path, name: &str, n: u8, peer: u8) -> Node {
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
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the node's stats until `cond` holds, for at most [`WAIT`].
async fn wait_stats(node: &Node, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
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

fn pings(from: &Node, to: Ipv4Addr) -> bool {
    // The first may go while ARP over the overlay resolves.
    (0..5).any(|_| ping(from.path(), &to.to_string()))
}

fn marker() -> Vec<u8> {
    let mut m = b"SEALTEST-".to_vec();
    m.extend((0..24).map(|_| rand_byte()));
    m
}

fn rand_byte() -> u8 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(Instant::now()) as u8
}

/// Every frame on the LAN (both veths and the bridge) until dropped.
struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Vec<u8>>>>,
}

impl Capture {
    /// Starts capturing in this (the LAN's) namespace.
    fn start() -> Capture {
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
            while !flag.load(Ordering::Relaxed) {
                if let Ok(n) = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                    frames.push(buf[..n].to_vec());
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
    fn finish(mut self) -> Vec<Vec<u8>> {
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

fn contains(frames: &[Vec<u8>], needle: &[u8]) -> bool {
    frames
        .iter()
        .any(|f| f.windows(needle.len()).any(|w| w == needle))
}

/// Whether a captured frame is IPv4 UDP to `port`.
fn udp_to(frames: &[Vec<u8>], port: u16) -> bool {
    frames.iter().any(|f| {
        f.len() > 38
            && f[12..14] == [0x08, 0x00]
            && f[23] == 17
            && u16::from_be_bytes([f[14 + 22], f[14 + 23]]) == port
    })
}

/// Sends `payload` over the overlay from `from` to `to`:`port` (which
/// `rx`, made inside `to`, listens on) and returns what `rx` got.
fn udp_over(from: &Node, to: &Node, rx: &UdpSocket, port: u16, payload: &[u8]) -> Vec<u8> {
    let dst = SocketAddr::from((to.overlay, port));
    within(from.path(), || {
        let tx = UdpSocket::bind((from.overlay, 0)).expect("bind");
        tx.send_to(payload, dst).expect("send");
    });
    let mut buf = [0u8; 2048];
    let n = rx.recv(&mut buf).expect("datagram over the overlay");
    buf[..n].to_vec()
}

fn udp_listener(node: &Node, port: u16) -> UdpSocket {
    let sock = within(node.path(), || {
        UdpSocket::bind((node.overlay, port)).expect("bind")
    });
    sock.set_read_timeout(Some(READ_WAIT)).expect("timeout");
    sock
}

/// A plain VXLAN datagram as an outsider on the LAN would forge it: VNI
/// `vni`, an Ethernet frame to `dst_mac` carrying IPv4 UDP from `src` to
/// `dst`:`port` with `payload`.
fn forged_vxlan(
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

fn mac_of(node: &Node, ifname: &str) -> [u8; 6] {
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
fn tcp_echo(from: &Node, to: &Node, port: u16, len: usize) {
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
fn leftovers(ns: &Path) -> Vec<String> {
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

fn no_drops(s: &Stats) -> bool {
    s.dropped_auth == 0
        && s.dropped_replay == 0
        && s.dropped_malformed == 0
        && s.dropped_inner == 0
        && s.io_errors == 0
}

#[test]
fn traffic_is_sealed_and_plain_injection_is_dropped() {
    isolated(
        "traffic_is_sealed_and_plain_injection_is_dropped",
        || async {
            let Lan { a, b, _dir } = lan();
            a.start(ring(&[1], 1)).await;
            b.start(ring(&[1], 1)).await;

            // Plain VNI: traffic flows and shows on the wire.
            assert!(pings(&a, b.overlay), "plain ping");
            let rx = udp_listener(&b, 7000);
            let clear = marker();
            let cap = Capture::start();
            assert_eq!(udp_over(&a, &b, &rx, 7000, &clear), clear);
            let frames = cap.finish();
            assert!(contains(&frames, &clear), "plain VXLAN shows the payload");

            // A forged plain datagram from the LAN reaches B while plain...
            let forged_rx = udp_listener(&b, 7001);
            let lan_sock = UdpSocket::bind((LAN_ADDR, 0)).expect("bind on the LAN");
            let b_mac = mac_of(&b, "vx0");
            let forge = |payload: &[u8]| {
                let d = forged_vxlan(VNI, b_mac, a.overlay, b.overlay, 7001, payload);
                lan_sock.send_to(&d, (b.addr, 4789)).expect("send forged");
            };
            let injected = marker();
            forge(&injected);
            let mut buf = [0u8; 2048];
            let n = forged_rx
                .recv(&mut buf)
                .expect("forged datagram while plain");
            assert_eq!(&buf[..n], &injected[..], "the forgery is well-formed");

            // Encrypted.
            a.set_vnis(&[VNI]).await;
            b.set_vnis(&[VNI]).await;
            assert!(pings(&a, b.overlay), "sealed ping");
            assert!(pings(&b, a.overlay), "sealed ping back");
            tcp_echo(&a, &b, 7100, 200_000);
            let secret = marker();
            let cap = Capture::start();
            assert_eq!(udp_over(&a, &b, &rx, 7000, &secret), secret);
            let frames = cap.finish();
            assert!(!contains(&frames, &secret), "sealed payload on the wire");
            assert!(udp_to(&frames, 4790), "frames went to the tunnel port");
            assert!(!udp_to(&frames, 4789), "no plain VXLAN left on the wire");

            // ...and is dropped once the VNI is encrypted: a genuine datagram
            // sent after it arrives, the forgery never does.
            let injected = marker();
            forge(&injected);
            let genuine = marker();
            assert_eq!(udp_over(&a, &b, &forged_rx, 7001, &genuine), genuine);
            forged_rx.set_nonblocking(true).expect("nonblocking");
            assert!(
                forged_rx.recv(&mut buf).is_err(),
                "forged datagram delivered"
            );

            let (sa, sb) = (a.stats().await, b.stats().await);
            assert!(sa.sealed > 0 && sb.opened > 0, "{sa:?} {sb:?}");
            assert!(no_drops(&sa) && no_drops(&sb), "{sa:?} {sb:?}");

            a.stop().await;
            b.stop().await;
            for n in [&a, &b] {
                assert_eq!(leftovers(n.path()), Vec::<String>::new());
            }
            // Stopped, the overlay is plain again and still works.
            assert!(pings(&a, b.overlay), "ping after stop");
        },
    );
}

/// A TCP stream from `a` to `b` with a known pattern, until stopped;
/// returns the bytes sent and checks every byte received.
struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    client: Option<std::thread::JoinHandle<u64>>,
    server: Option<std::thread::JoinHandle<u64>>,
}

impl Stream {
    fn start(a: &Node, b: &Node, port: u16) -> Stream {
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
    async fn advance(&self, more: u64) {
        let from = self.sent.load(Ordering::Relaxed);
        let sent = self.sent.clone();
        wait_for("the stream to go on", || {
            sent.load(Ordering::Relaxed) >= from + more
        })
        .await;
    }

    fn finish(mut self) -> (u64, u64) {
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

#[test]
fn key_rotation_mid_stream_drops_nothing() {
    isolated("key_rotation_mid_stream_drops_nothing", || async {
        let Lan { a, b, _dir } = lan();
        a.start(ring(&[1], 1)).await;
        b.start(ring(&[1], 1)).await;
        a.set_vnis(&[VNI]).await;
        b.set_vnis(&[VNI]).await;
        let stream = Stream::start(&a, &b, 7200);
        stream.advance(1 << 20).await;

        // 1: the new key everywhere, the old one still primary.
        a.set_keys(ring(&[1, 2], 1)).await;
        b.set_keys(ring(&[1, 2], 1)).await;
        stream.advance(1 << 20).await;
        // 2: the new key primary, node by node; both are accepted.
        a.set_keys(ring(&[1, 2], 2)).await;
        wait_stats(&b, "B opening A's frames under key 2", |s| {
            s.opened_by_key.get(&2).is_some_and(|n| *n > 0)
        })
        .await;
        b.set_keys(ring(&[1, 2], 2)).await;
        // Frames arrive in order: once one under key 2 is opened, none
        // under key 1 is still on its way.
        wait_stats(&a, "A opening B's frames under key 2", |s| {
            s.opened_by_key.get(&2).is_some_and(|n| *n > 0)
        })
        .await;
        stream.advance(1 << 20).await;
        // 3: the old key goes.
        a.set_keys(ring(&[2], 2)).await;
        b.set_keys(ring(&[2], 2)).await;
        let before = b.stats().await.opened;
        stream.advance(1 << 20).await;
        wait_stats(&b, "more frames after the rotation", |s| {
            s.opened > before + 100
        })
        .await;

        let (sent, got) = stream.finish();
        assert_eq!(sent, got, "every byte arrived, in order");
        let (sa, sb) = (a.stats().await, b.stats().await);
        assert!(no_drops(&sa) && no_drops(&sb), "{sa:?} {sb:?}");
        assert!(sb.opened_by_key.get(&1).is_some_and(|n| *n > 0), "{sb:?}");
        assert!(sb.opened_by_key.get(&2).is_some_and(|n| *n > 0), "{sb:?}");

        a.stop().await;
        b.stop().await;
        for n in [&a, &b] {
            assert_eq!(leftovers(n.path()), Vec::<String>::new());
        }
    });
}

#[test]
fn leftovers_of_a_crash_are_removed() {
    isolated("leftovers_of_a_crash_are_removed", || async {
        let Lan { a, b: _b, _dir } = lan();
        a.start(ring(&[1], 1)).await;
        a.set_vnis(&[VNI]).await;
        let expected = vec![
            "TUN".to_string(),
            "rule".into(),
            "routes".into(),
            "nftables table".into(),
        ];
        let found: Vec<String> = leftovers(a.path())
            .into_iter()
            .map(|l| {
                if l.starts_with("routes") {
                    "routes".to_string()
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(found, expected);
        // A crash: the tasks die and the TUN with them, nothing is removed.
        let slot = a.tunnel.clone();
        a.run(async move { drop(slot.lock().await.take()) }).await;
        let ns = a.path().to_path_buf();
        wait_for("the TUN to go", || {
            !links(Some(&ns)).iter().any(|l| l == "shoal-seal")
        })
        .await;
        assert_eq!(
            leftovers(a.path()),
            vec!["rule".to_string(), "nftables table".into()]
        );
        // Encrypted VNIs fail closed meanwhile: no plaintext leaves.
        assert!(!ping(a.path(), "10.200.0.2"), "ping without a tunnel");
        let cfg = a.config();
        a.run(async move { remove_leftovers(&cfg).await.expect("remove leftovers") })
            .await;
        assert_eq!(leftovers(a.path()), Vec::<String>::new());
    });
}

const BENCH: &str = "SHOAL_SEAL_BENCH";
/// Bytes per bulk transfer, and the time bound of one.
const BULK: u64 = 512 << 20;
const BULK_TIME: Duration = Duration::from_secs(6);

/// Sends up to [`BULK`] bytes for up to [`BULK_TIME`] from `a` to `b` over
/// the overlay; returns MB/s.
fn bulk(a: &Node, b: &Node, port: u16) -> f64 {
    let listener = within(b.path(), || {
        TcpListener::bind((b.overlay, port)).expect("listen")
    });
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(READ_WAIT)).expect("timeout");
        let mut buf = vec![0u8; 1 << 18];
        let mut got = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        got
    });
    let dst = SocketAddr::from((b.overlay, port));
    let mut c = within(a.path(), || {
        TcpStream::connect_timeout(&dst, READ_WAIT).expect("connect")
    });
    let chunk = vec![0x42u8; 1 << 18];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < BULK && started.elapsed() < BULK_TIME {
        c.write_all(&chunk).expect("write");
        sent += chunk.len() as u64;
    }
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let got = server.join().expect("server");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(got, sent);
    got as f64 / secs / 1e6
}

fn set_mtu(n: &Node, mtu: u32) {
    let out = in_ns(
        n.path(),
        &["ip", "link", "set", "vx0", "mtu", &mtu.to_string()],
    );
    assert!(out.status.success());
}

#[test]
#[ignore = "benchmark: prints bulk TCP throughput over plain and sealed VXLAN"]
fn seal_throughput() {
    std::env::set_var(BENCH, "1");
    isolated("seal_throughput_run", throughput);
}

/// The body of [`seal_throughput`], run in its isolated child only.
#[test]
fn seal_throughput_run() {
    if std::env::var_os(BENCH).is_none() {
        eprintln!("skipped seal_throughput_run: run the ignored seal_throughput instead");
        return;
    }
    isolated("seal_throughput_run", throughput);
}

async fn throughput() {
    let Lan { a, b, _dir } = lan();
    a.start(ring(&[1], 1)).await;
    b.start(ring(&[1], 1)).await;
    assert!(pings(&a, b.overlay));
    let plain = bulk(&a, &b, 7300);
    a.set_vnis(&[VNI]).await;
    b.set_vnis(&[VNI]).await;
    assert!(pings(&a, b.overlay));
    let sealed = bulk(&a, &b, 7301);
    // An overlay MTU that leaves room for the tunnel's 64 bytes, so sealed
    // datagrams are not fragmented on the underlay.
    let mtu = 1450 - 64;
    set_mtu(&a, mtu);
    set_mtu(&b, mtu);
    let sealed_small = bulk(&a, &b, 7302);
    let (sa, sb) = (a.stats().await, b.stats().await);
    println!("seal throughput: plain VXLAN {plain:.0} MB/s; sealed (overlay MTU 1450) {sealed:.0} MB/s ({:.2}x); sealed (overlay MTU {mtu}) {sealed_small:.0} MB/s ({:.2}x)", sealed / plain, sealed_small / plain);
    println!("seal stats: A {sa:?}; B {sb:?}");
    a.stop().await;
    b.stop().await;
}
