//! Service VIPs balanced inside task namespaces, each test in a namespace
//! of its own (see `common`): connections to a VIP reach every backend,
//! follow records updates at once, are refused quickly when nothing serves,
//! work over UDP and from a backend to its own VIP, a task sees only its
//! own networks' VIPs, and the table goes with the task.

mod common;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::ErrorKind;
use std::io::Read;
use std::io::Write;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::net::TcpStream;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use common::*;
use netdrv::OverlayDriver;
use nix::sched::setns;
use nix::sched::CloneFlags;
use swarm::exec::Attachment;
use swarm::exec::NetworkAttacher;
use swarm::exec::NetworkRecords;
use swarm::exec::NetworkSpec;
use swarm::exec::ServiceRecords;
use swarm::exec::VipBackends;

const NET_A: &str = "na0000000000000000000000a";
const NET_B: &str = "nb0000000000000000000000b";
const BACKENDS: [(&str, &str); 3] = [
    ("b10000000000000000000000a", "10.0.1.3"),
    ("b20000000000000000000000a", "10.0.1.4"),
    ("b30000000000000000000000a", "10.0.1.5"),
];
const CLIENT: (&str, &str) = ("c10000000000000000000000a", "10.0.1.6");
/// On the other network, the only backend of its own service.
const OTHER: (&str, &str) = ("d10000000000000000000000b", "10.0.2.3");
const WEB_VIP: &str = "10.0.1.2";
const DB_VIP: &str = "10.0.2.2";
const PORT: u16 = 8080;
/// How long one client attempt may take.
const CLIENT_WAIT: Duration = Duration::from_secs(2);
/// Connections per round: a multiple of the backend count, so round robin
/// gives each an equal share.
const ROUND: usize = 12;

/// Attached to `net` at `address` in its /24.
fn on24(net: &NetworkSpec, address: &str) -> Vec<Attachment> {
    on(net, &format!("{address}/24"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The records with `web` served by the backends at `web` and `db` by the
/// other network's task.
fn records(web: &[&str]) -> ServiceRecords {
    ServiceRecords {
        networks: vec![
            NetworkRecords {
                network_id: NET_A.into(),
                names: BTreeMap::from([("web".to_string(), vec![ip(WEB_VIP)])]),
                vips: vec![VipBackends {
                    service: "web".into(),
                    vip: ip(WEB_VIP),
                    backends: web.iter().map(|a| ip(a)).collect(),
                }],
            },
            NetworkRecords {
                network_id: NET_B.into(),
                names: BTreeMap::from([("db".to_string(), vec![ip(DB_VIP)])]),
                vips: vec![VipBackends {
                    service: "db".into(),
                    vip: ip(DB_VIP),
                    backends: vec![ip(OTHER.1)],
                }],
            },
        ],
        ..Default::default()
    }
}

/// Runs `f` on a thread inside the namespace at `netns` and returns its
/// result; sockets it opens belong to that namespace.
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = File::open(netns).expect("open netns");
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// A server in the namespace at `netns` answering `name` to every TCP
/// connection and UDP datagram on [`PORT`]. It runs until the test
/// process ends (its sockets keep that namespace alive meanwhile).
fn serve(netns: &Path, name: &str) {
    let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT));
    let (tcp, udp) = in_netns(netns, move || {
        (
            TcpListener::bind(any).expect("bind tcp"),
            UdpSocket::bind(any).expect("bind udp"),
        )
    });
    let reply = name.to_string();
    std::thread::spawn(move || {
        for mut c in tcp.incoming().flatten() {
            let _ = c.write_all(reply.as_bytes());
        }
    });
    let reply = name.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(reply.as_bytes(), peer);
        }
    });
}

/// Attaches the [`BACKENDS`] to `net`, each serving its name; their
/// namespaces.
async fn serve_backends(driver: &OverlayDriver, net: &NetworkSpec) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for (task, addr) in BACKENDS {
        let ns = driver.attach(task, &on24(net, addr)).await.unwrap();
        serve(&ns.path, task);
        paths.push(ns.path);
    }
    paths
}

/// One TCP connection to `addr`: the name the server answered.
fn ask_tcp(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, CLIENT_WAIT)?;
    s.set_read_timeout(Some(CLIENT_WAIT))?;
    let mut name = String::new();
    s.read_to_string(&mut name)?;
    Ok(name)
}

/// One UDP exchange with `addr` from a new socket (a new conntrack flow).
fn ask_udp(addr: SocketAddr) -> std::io::Result<String> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(CLIENT_WAIT))?;
    s.connect(addr)?;
    s.send(b"who")?;
    let mut buf = [0u8; 64];
    let n = s.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `count` TCP (or UDP) exchanges with `vip`:[`PORT`] from inside
/// `netns`, one after the other.
fn ask_many(netns: &Path, vip: &str, count: usize, udp: bool) -> Vec<std::io::Result<String>> {
    let addr = SocketAddr::new(ip(vip), PORT);
    in_netns(netns, move || {
        (0..count)
            .map(|_| if udp { ask_udp(addr) } else { ask_tcp(addr) })
            .collect()
    })
}

/// The names that answered `count` exchanges; every exchange must succeed.
fn answers(netns: &Path, vip: &str, count: usize, udp: bool) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for (i, r) in ask_many(netns, vip, count, udp).into_iter().enumerate() {
        let name = r.unwrap_or_else(|e| panic!("exchange {i} with {vip} (udp: {udp}): {e}"));
        *seen.entry(name).or_insert(0) += 1;
    }
    seen
}

fn names(seen: &BTreeMap<String, usize>) -> BTreeSet<&str> {
    seen.keys().map(String::as_str).collect()
}

/// The `ip shoal_vip` table in `netns`, or `None` when it does not exist.
fn vip_table(netns: &Path) -> Option<String> {
    let out = in_ns(netns, &["nft", "list", "table", "ip", "shoal_vip"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn t30_vip_spreads_follows_and_refuses() {
    isolated("t30_vip_spreads_follows_and_refuses", || async {
        let state = StateDir::new();
        let driver = OverlayDriver::new(state.path.clone()).unwrap();
        let net_a = network(NET_A, "10.0.1.0/24", "10.0.1.1");
        let net_b = network(NET_B, "10.0.2.0/24", "10.0.2.1");
        let backends = serve_backends(&driver, &net_a).await;
        let other = driver
            .attach(OTHER.0, &on24(&net_b, OTHER.1))
            .await
            .unwrap();
        serve(&other.path, OTHER.0);
        // No records yet: no table anywhere.
        assert_eq!(vip_table(&backends[0]), None);

        let all: Vec<&str> = BACKENDS.iter().map(|b| b.1).collect();
        driver.update_dns(&records(&all)).await.unwrap();
        // Attached after the records: it gets its table at attach.
        let client = driver
            .attach(CLIENT.0, &on24(&net_a, CLIENT.1))
            .await
            .unwrap();
        let c = client.path.clone();

        // Every backend answers, in turn.
        let seen = tokio::task::spawn_blocking(move || answers(&c, WEB_VIP, ROUND, false))
            .await
            .unwrap();
        let want: BTreeSet<&str> = BACKENDS.iter().map(|b| b.0).collect();
        assert_eq!(names(&seen), want, "{seen:?}");
        assert!(seen.values().all(|n| *n == ROUND / 3), "{seen:?}");

        // Over UDP too, one flow per socket.
        let c = client.path.clone();
        let seen = tokio::task::spawn_blocking(move || answers(&c, WEB_VIP, ROUND, true))
            .await
            .unwrap();
        assert_eq!(names(&seen), want, "{seen:?}");

        // A backend that is to stop waits while the VIP still lists it;
        // the client is no backend and never waits.
        let long = Duration::from_secs(60);
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            driver.wait_unbalanced(BACKENDS[1].0, long),
        )
        .await;
        assert!(waited.is_err(), "returned while still a backend");
        tokio::time::timeout(
            Duration::from_secs(10),
            driver.wait_unbalanced(CLIENT.0, long),
        )
        .await
        .expect("the client is no backend");

        // Scaled down: new connections never reach the removed backend,
        // and it no longer waits.
        let scaled = records(&[BACKENDS[0].1, BACKENDS[2].1]);
        let waiting = driver.wait_unbalanced(BACKENDS[1].0, long);
        let (_, updated) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(waiting, driver.update_dns(&scaled))
        })
        .await
        .expect("the wait ends once the records drop the backend");
        updated.unwrap();
        let c = client.path.clone();
        let seen = tokio::task::spawn_blocking(move || answers(&c, WEB_VIP, ROUND, false))
            .await
            .unwrap();
        let want: BTreeSet<&str> = [BACKENDS[0].0, BACKENDS[2].0].into();
        assert_eq!(names(&seen), want, "{seen:?}");

        // A backend reaches its own service's VIP, itself included.
        let b0 = backends[0].clone();
        let seen = tokio::task::spawn_blocking(move || answers(&b0, WEB_VIP, 4, false))
            .await
            .unwrap();
        assert_eq!(names(&seen), want, "{seen:?}");

        // The other network's task has its own VIP, and it answers even
        // when it is the only backend and the client at once.
        let o = other.path.clone();
        let seen = tokio::task::spawn_blocking(move || answers(&o, DB_VIP, 2, false))
            .await
            .unwrap();
        assert_eq!(names(&seen), [OTHER.0].into(), "{seen:?}");
        let table = vip_table(&other.path).expect("the other task's table");
        assert!(table.contains(DB_VIP), "{table}");
        assert!(!table.contains(WEB_VIP), "{table}");
        let table = vip_table(&client.path).expect("the client's table");
        assert!(table.contains(WEB_VIP), "{table}");
        assert!(!table.contains(DB_VIP), "{table}");

        // Nothing serves: refused at once, over TCP and UDP.
        driver.update_dns(&records(&[])).await.unwrap();
        let c = client.path.clone();
        let (tcp, udp, took) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let tcp = ask_many(&c, WEB_VIP, 1, false).remove(0);
            let udp = ask_many(&c, WEB_VIP, 1, true).remove(0);
            (tcp, udp, started.elapsed())
        })
        .await
        .unwrap();
        assert_eq!(tcp.unwrap_err().kind(), ErrorKind::ConnectionRefused);
        // A refused datagram is dropped on its way out, so send() itself
        // fails (EPERM); the ICMP error also reaches the socket (refused).
        let udp = udp.unwrap_err().kind();
        assert!(
            matches!(
                udp,
                ErrorKind::ConnectionRefused | ErrorKind::PermissionDenied
            ),
            "{udp:?}"
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");

        // Back up: served again, by a backend that had been removed too.
        driver.update_dns(&records(&[BACKENDS[1].1])).await.unwrap();
        let c = client.path.clone();
        let seen = tokio::task::spawn_blocking(move || answers(&c, WEB_VIP, 3, false))
            .await
            .unwrap();
        assert_eq!(names(&seen), [BACKENDS[1].0].into(), "{seen:?}");

        // No VIPs any more: the tables go.
        driver.update_dns(&ServiceRecords::default()).await.unwrap();
        assert_eq!(vip_table(&client.path), None);
        assert_eq!(vip_table(&other.path), None);

        // Records again, then detach: the table went with the namespace.
        driver.update_dns(&records(&all)).await.unwrap();
        assert!(vip_table(&client.path).is_some());
        driver.detach(CLIENT.0).await.unwrap();
        assert!(!client.path.exists());
    });
}

#[test]
fn t31_vip_tables_come_back_after_restart() {
    isolated("t31_vip_tables_come_back_after_restart", || async {
        let state = StateDir::new();
        let net_a = network(NET_A, "10.0.1.0/24", "10.0.1.1");
        let (task, addr) = BACKENDS[0];
        let path = {
            let first = OverlayDriver::new(state.path.clone()).unwrap();
            let ns = first.attach(task, &on24(&net_a, addr)).await.unwrap();
            first.update_dns(&records(&[addr])).await.unwrap();
            ns.path
        };
        assert!(vip_table(&path).is_some());
        // A new driver knows nothing of what the namespaces hold: the next
        // records are applied everywhere, emptying what must be empty.
        let second = OverlayDriver::new(state.path.clone()).unwrap();
        second.update_dns(&ServiceRecords::default()).await.unwrap();
        assert_eq!(vip_table(&path), None);
        second.update_dns(&records(&[addr])).await.unwrap();
        assert!(vip_table(&path).is_some());
        // A repeated attach (as after a restart) puts back a table lost
        // behind the driver's back.
        in_ns(&path, &["nft", "delete", "table", "ip", "shoal_vip"]);
        assert_eq!(vip_table(&path), None);
        assert_eq!(
            second.attach(task, &on24(&net_a, addr)).await.unwrap().path,
            path
        );
        assert!(vip_table(&path).is_some());
        second.detach(task).await.unwrap();
        assert!(!path.exists());
    });
}

/// One datagram over a UDP socket that keeps its flow.
fn ask_on(s: &UdpSocket) -> std::io::Result<String> {
    s.send(b"who")?;
    let mut buf = [0u8; 64];
    let n = s.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A UDP client that keeps one socket keeps one conntrack flow, pinned to
/// one backend; once that backend is removed and its network released, the
/// flow's next datagram is balanced to a serving backend instead of going
/// to the gone address for as long as the client sends.
#[test]
fn t32_a_udp_flow_leaves_a_removed_backend() {
    isolated("t32_a_udp_flow_leaves_a_removed_backend", || async {
        let state = StateDir::new();
        let driver = OverlayDriver::new(state.path.clone()).unwrap();
        let net_a = network(NET_A, "10.0.1.0/24", "10.0.1.1");
        serve_backends(&driver, &net_a).await;
        let all: Vec<&str> = BACKENDS.iter().map(|b| b.1).collect();
        driver.update_dns(&records(&all)).await.unwrap();
        let client = driver
            .attach(CLIENT.0, &on24(&net_a, CLIENT.1))
            .await
            .unwrap();
        let sock = in_netns(&client.path, || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(CLIENT_WAIT)).unwrap();
            s.connect(SocketAddr::new(ip(WEB_VIP), PORT)).unwrap();
            s
        });
        let sock = std::sync::Arc::new(sock);
        let ask = |s: std::sync::Arc<UdpSocket>| async move {
            tokio::task::spawn_blocking(move || ask_on(&s))
                .await
                .unwrap()
        };
        let first = ask(sock.clone()).await.unwrap();
        assert_eq!(
            ask(sock.clone()).await.unwrap(),
            first,
            "one flow, one backend"
        );

        // Its backend is scaled away, stopped, and its network released.
        let rest: Vec<&str> = BACKENDS
            .iter()
            .filter(|b| b.0 != first)
            .map(|b| b.1)
            .collect();
        driver.update_dns(&records(&rest)).await.unwrap();
        driver.detach(&first).await.unwrap();

        let next = ask(sock.clone())
            .await
            .expect("the flow reaches a serving backend");
        assert_ne!(next, first);
        assert!(BACKENDS.iter().any(|b| b.0 == next), "{next}");
    });
}
