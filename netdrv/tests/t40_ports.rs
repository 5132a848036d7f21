//! Published ports against the real kernel, each test in a namespace of its
//! own (see `common`), which plays the node: small servers in the tasks'
//! namespaces answer their own name; clients on the node connect to its
//! loopback and to its second address, and an outside client (a namespace
//! of its own behind a veth) to that address.
//! - Routing mesh: every backend answers on every node address, TCP and
//!   UDP; a backend the records drop gets no new connection; a removed port
//!   is refused; a task reaches its own node's published port; the mesh
//!   stands without local tasks and goes with the last port, and a
//!   restarted driver takes it down.
//! - Host mode: the port reaches exactly its task; ports another task, a
//!   listening process or the mesh holds fail with dockerd's texts.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::ErrorKind;
use std::io::Read;
use std::io::Write;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::net::TcpStream;
use std::net::UdpSocket;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use netdrv::OverlayDriver;
use nix::sched::setns;
use nix::sched::CloneFlags;
use swarm::exec::Attachment;
use swarm::exec::HostPort;
use swarm::exec::IngressPort;
use swarm::exec::NetworkAttacher;
use swarm::exec::NetworkSpec;
use swarm::exec::PortProtocol;
use swarm::exec::ServiceRecords;

const NET_ING: &str = "ing00000000000000000000aa";
const NET_APP: &str = "app00000000000000000000bb";
const TASK_A: &str = "ta0000000000000000000000a";
const TASK_B: &str = "tb0000000000000000000000b";
/// The node's second address, on the veth towards the outside client.
const NODE_ADDR: &str = "192.0.2.10";
const CLIENT_ADDR: &str = "192.0.2.20";
/// How long a client waits for a connection or an answer.
const WAIT: Duration = Duration::from_secs(2);
/// Connections per check: enough for round robin to visit every backend
/// twice.
const TRIES: usize = 6;

fn ingress_net() -> NetworkSpec {
    NetworkSpec {
        id: NET_ING.into(),
        name: "ingress".into(),
        subnet: "10.0.0.0/24".into(),
        gateway: "10.0.0.1".into(),
        mtu: 1450,
        ingress: true,
        internal: false,
        ..Default::default()
    }
}

fn app_net() -> NetworkSpec {
    NetworkSpec {
        id: NET_APP.into(),
        name: "app".into(),
        subnet: "10.0.1.0/24".into(),
        gateway: "10.0.1.1".into(),
        mtu: 1450,
        ingress: false,
        internal: false,
        ..Default::default()
    }
}

fn on(net: NetworkSpec, address: &str) -> Vec<Attachment> {
    vec![Attachment {
        network: net,
        address: address.into(),
        aliases: vec![],
    }]
}

/// The records with `ports` published in ingress mode (targets 80).
fn mesh(ports: &[(PortProtocol, u16, &[&str])]) -> ServiceRecords {
    ServiceRecords {
        ingress: ports
            .iter()
            .map(|(protocol, published, backends)| IngressPort {
                service: "web".into(),
                protocol: *protocol,
                published: *published,
                target: 80,
                backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
            })
            .collect(),
        ingress_network: Some(ingress_net()),
        ..ServiceRecords::default()
    }
}

fn tcp(published: u16) -> HostPort {
    HostPort {
        protocol: PortProtocol::Tcp,
        published,
        target: 80,
    }
}

/// An outside client: a namespace (bound on a file in the test's
/// temporary directory, unmounted on drop) joined to the node by the veth
/// `c0` (its side) / `d0` (the node's, holding [`NODE_ADDR`]). Also brings
/// the node's loopback up.
struct Client {
    netns: PathBuf,
}

impl Client {
    fn new(state: &StateDir) -> Client {
        let netns = state.path.with_file_name("client");
        File::create(&netns).unwrap();
        let bind = format!("--net={}", netns.display());
        ok(&["unshare", &bind, "true"]);
        let me = std::process::id().to_string();
        let veth = [
            "ip", "link", "add", "c0", "type", "veth", "peer", "name", "d0",
        ];
        let mut args = vec!["nsenter", bind.as_str()];
        args.extend_from_slice(&veth);
        args.extend_from_slice(&["netns", &me]);
        ok(&args);
        ok(&["ip", "link", "set", "lo", "up"]);
        ok(&["ip", "addr", "add", &format!("{NODE_ADDR}/24"), "dev", "d0"]);
        ok(&["ip", "link", "set", "d0", "up"]);
        let client_addr = format!("{CLIENT_ADDR}/24");
        for cmd in [
            vec!["ip", "addr", "add", client_addr.as_str(), "dev", "c0"],
            vec!["ip", "link", "set", "c0", "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ] {
            assert!(in_ns(&netns, &cmd).status.success(), "{cmd:?}");
        }
        Client { netns }
    }

    /// Who answers `TRIES` new TCP connections to the node's address.
    fn tcp(&self, port: u16) -> BTreeSet<String> {
        inside(&self.netns, move || answers(|| ask_tcp(NODE_ADDR, port)))
    }

    /// Who answers `TRIES` new UDP flows to the node's address.
    fn udp(&self, port: u16) -> BTreeSet<String> {
        inside(&self.netns, move || answers(|| ask_udp(NODE_ADDR, port)))
    }

    /// Whether a TCP connection to the node's address is refused.
    fn refused(&self, port: u16) -> bool {
        inside(&self.netns, move || refused(ask_tcp(NODE_ADDR, port)))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.netns, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// TCP and UDP servers on port 80 inside a task's namespace, answering
/// `name`; they stop when dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(netns: &Path, name: &'static str) -> Server {
        let ns = File::open(netns).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
            let listener = TcpListener::bind("0.0.0.0:80").unwrap();
            listener.set_nonblocking(true).unwrap();
            let udp = UdpSocket::bind("0.0.0.0:80").unwrap();
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 64];
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(name.as_bytes());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("accept: {e}"),
                }
                if let Ok((_, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(name.as_bytes(), from);
                }
            }
        });
        ready_rx.recv_timeout(WAIT).expect("server ready");
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One TCP connection to `addr:port` and what the server says.
fn ask_tcp(addr: &str, port: u16) -> std::io::Result<String> {
    let to: SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&to, WAIT)?;
    s.set_read_timeout(Some(WAIT))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// One UDP exchange with `addr:port` from a fresh socket (a new flow).
fn ask_udp(addr: &str, port: u16) -> std::io::Result<String> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(WAIT))?;
    s.send_to(b"who", format!("{addr}:{port}"))?;
    let mut buf = [0u8; 64];
    let (n, _) = s.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Who answers `TRIES` new connections.
fn answers(ask: impl Fn() -> std::io::Result<String>) -> BTreeSet<String> {
    (0..TRIES)
        .map(|i| ask().unwrap_or_else(|e| panic!("try {i}: {e}")))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn refused(r: std::io::Result<String>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

/// Runs `f` on a thread inside the namespace at `netns`.
fn inside<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = File::open(netns).unwrap();
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Nothing of the driver is left: links, tables, namespaces.
fn assert_all_gone(dir: &Path) {
    assert_eq!(links(None), ["lo", "d0"]);
    assert!(!nft_table_exists());
    assert_eq!(files_in(&dir.join("netns")), Vec::<String>::new());
    assert_eq!(files_in(&dir.join("sbox")), Vec::<String>::new());
}

#[test]
fn t10_routing_mesh_spreads_and_follows_records() {
    isolated("t10_routing_mesh_spreads_and_follows_records", || async {
        let state = StateDir::new();
        let client = Client::new(&state);
        let dir = state.path.clone();
        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let a = driver
            .attach(TASK_A, &on(ingress_net(), "10.0.0.5/24"))
            .await
            .unwrap();
        let b = driver
            .attach(TASK_B, &on(ingress_net(), "10.0.0.6/24"))
            .await
            .unwrap();
        let _sa = Server::start(&a.path, "A");
        let sb = Server::start(&b.path, "B");
        let both: &[&str] = &["10.0.0.5", "10.0.0.6"];
        driver
            .update_dns(&mesh(&[
                (PortProtocol::Tcp, 8080, both),
                (PortProtocol::Udp, 8080, both),
            ]))
            .await
            .unwrap();

        for addr in ["127.0.0.1", NODE_ADDR] {
            assert_eq!(answers(|| ask_tcp(addr, 8080)), set(&["A", "B"]), "{addr}");
            assert_eq!(answers(|| ask_udp(addr, 8080)), set(&["A", "B"]), "{addr}");
        }
        assert_eq!(client.tcp(8080), set(&["A", "B"]));
        assert_eq!(client.udp(8080), set(&["A", "B"]));
        // A task reaches its own node's published port (hairpin).
        let from_a = inside(&a.path, || {
            (0..TRIES)
                .map(|_| ask_tcp(NODE_ADDR, 8080).unwrap())
                .collect::<BTreeSet<_>>()
        });
        assert_eq!(from_a, set(&["A", "B"]));

        // B is to stop: it waits while a published port lists it.
        let long = Duration::from_secs(60);
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            driver.wait_unbalanced(TASK_B, long),
        )
        .await;
        assert!(waited.is_err(), "returned while still a backend");

        // B stops serving: no new connection reaches it.
        driver
            .update_dns(&mesh(&[(PortProtocol::Tcp, 8080, &["10.0.0.5"])]))
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            driver.wait_unbalanced(TASK_B, long),
        )
        .await
        .expect("the wait ends once the records drop the backend");
        drop(sb);
        assert_eq!(answers(|| ask_tcp("127.0.0.1", 8080)), set(&["A"]));
        assert_eq!(client.tcp(8080), set(&["A"]));
        // The UDP port is gone; so is a port without backends.
        assert!(ask_udp("127.0.0.1", 8080).is_err());
        driver
            .update_dns(&mesh(&[(PortProtocol::Tcp, 8080, &[])]))
            .await
            .unwrap();
        assert!(refused(ask_tcp("127.0.0.1", 8080)));

        // The port is removed: refused, and the mesh's plumbing is gone
        // while the tasks keep their network.
        driver.update_dns(&mesh(&[])).await.unwrap();
        assert!(refused(ask_tcp("127.0.0.1", 8080)));
        assert!(refused(ask_tcp(NODE_ADDR, 8080)));
        assert!(client.refused(8080));
        assert!(!links(None).contains(&"vg-ingress-sbox".to_string()));
        assert!(ping(&a.path, "10.0.0.6"));
        // Published again (`--publish-add`): served again.
        driver
            .update_dns(&mesh(&[(PortProtocol::Tcp, 9090, &["10.0.0.5"])]))
            .await
            .unwrap();
        assert_eq!(answers(|| ask_tcp(NODE_ADDR, 9090)), set(&["A"]));
        assert_eq!(client.tcp(9090), set(&["A"]));

        // Without local tasks the mesh stands; with the last port it goes.
        driver.detach(TASK_A).await.unwrap();
        driver.detach(TASK_B).await.unwrap();
        let sandbox = driver.sandbox_path(NET_ING);
        assert!(sandbox.exists());
        assert!(links(None).contains(&"vg-ingress-sbox".to_string()));
        driver.update_dns(&mesh(&[])).await.unwrap();
        assert_all_gone(&dir);
    });
}

#[test]
fn t20_mesh_without_local_tasks_and_restart() {
    isolated("t20_mesh_without_local_tasks_and_restart", || async {
        let state = StateDir::new();
        let client = Client::new(&state);
        let dir = state.path.clone();
        let sandbox: PathBuf;
        {
            let first = OverlayDriver::new(dir.clone()).unwrap();
            first
                .update_dns(&mesh(&[(PortProtocol::Tcp, 8080, &[])]))
                .await
                .unwrap();
            sandbox = first.sandbox_path(NET_ING);
            // The sandbox is plumbed and forwards, with its own table.
            let ruleset =
                String::from_utf8(in_ns(&sandbox, &["nft", "list", "table", "ip", "shoal"]).stdout)
                    .unwrap();
            assert!(ruleset.contains("masquerade"), "{ruleset}");
            let fwd = in_ns(&sandbox, &["cat", "/proc/sys/net/ipv4/ip_forward"]);
            assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1");
            // No backend: refused, from the node and from outside.
            assert!(refused(ask_tcp("127.0.0.1", 8080)));
            assert!(client.refused(8080));
        }
        // A restarted driver sees the same records as nothing new, then
        // takes the mesh down when the port goes.
        let second = OverlayDriver::new(dir.clone()).unwrap();
        second
            .update_dns(&mesh(&[(PortProtocol::Tcp, 8080, &[])]))
            .await
            .unwrap();
        assert!(sandbox.exists());
        second.update_dns(&mesh(&[])).await.unwrap();
        assert_all_gone(&dir);
        second.prune(&Default::default()).await.unwrap();
        assert_all_gone(&dir);
    });
}

#[test]
fn t30_host_mode_ports_and_conflicts() {
    isolated("t30_host_mode_ports_and_conflicts", || async {
        let state = StateDir::new();
        let client = Client::new(&state);
        let dir = state.path.clone();
        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let a = driver
            .attach(TASK_A, &on(app_net(), "10.0.1.5/24"))
            .await
            .unwrap();
        // A task on no network: only its way out, which carries the port.
        let b = driver.attach(TASK_B, &[]).await.unwrap();
        let _sa = Server::start(&a.path, "A");
        let _sb = Server::start(&b.path, "B");

        driver
            .publish_host_ports(TASK_A, &[tcp(8081)])
            .await
            .unwrap();
        // Again (a repeated call): the same.
        driver
            .publish_host_ports(TASK_A, &[tcp(8081)])
            .await
            .unwrap();
        for addr in ["127.0.0.1", NODE_ADDR] {
            assert_eq!(answers(|| ask_tcp(addr, 8081)), set(&["A"]), "{addr}");
        }
        assert_eq!(client.tcp(8081), set(&["A"]));

        // Taken by another task.
        let err = driver
            .publish_host_ports(TASK_B, &[tcp(8081)])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 0.0.0.0:8081 failed: port is already allocated"
        );
        // Taken by a process on the node.
        let _process = TcpListener::bind("0.0.0.0:8082").unwrap();
        let err = driver
            .publish_host_ports(TASK_B, &[tcp(8082)])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error starting userland proxy: listen tcp4 0.0.0.0:8082: bind: address already in use"
        );
        // Taken by the routing mesh.
        driver
            .update_dns(&mesh(&[(PortProtocol::Tcp, 8084, &[])]))
            .await
            .unwrap();
        let err = driver
            .publish_host_ports(TASK_B, &[tcp(8084)])
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("listen tcp4 0.0.0.0:8084"),
            "{err}"
        );
        driver.update_dns(&mesh(&[])).await.unwrap();

        // The same number over UDP, and a free one: B's.
        let udp = HostPort {
            protocol: PortProtocol::Udp,
            published: 8081,
            target: 80,
        };
        driver
            .publish_host_ports(TASK_B, &[udp, tcp(8083)])
            .await
            .unwrap();
        assert_eq!(answers(|| ask_tcp(NODE_ADDR, 8083)), set(&["B"]));
        assert_eq!(answers(|| ask_udp("127.0.0.1", 8081)), set(&["B"]));
        assert_eq!(client.udp(8081), set(&["B"]));
        assert_eq!(answers(|| ask_tcp("127.0.0.1", 8081)), set(&["A"]));

        // Detach takes a task's ports along.
        driver.detach(TASK_A).await.unwrap();
        assert!(refused(ask_tcp("127.0.0.1", 8081)));
        assert!(client.refused(8081));
        assert_eq!(answers(|| ask_tcp("127.0.0.1", 8083)), set(&["B"]));
        // Unattached tasks publish nothing.
        assert!(driver
            .publish_host_ports(TASK_A, &[tcp(8085)])
            .await
            .is_err());
        driver.detach(TASK_B).await.unwrap();
        assert!(refused(ask_tcp("127.0.0.1", 8083)));
        assert_all_gone(&dir);
    });
}
