//! The embedded DNS server at 127.0.0.11, queried from inside task
//! namespaces, each test in a namespace of its own (see `common`): swarm
//! names of the task's own networks only, `tasks.NAME` with every address,
//! record updates seen at once, unknown names forwarded to the upstream
//! nameservers (a fake one in the test's namespace), SERVFAIL when none
//! answers, and no server after detach.

mod common;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::io::Write;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use hickory_proto::op::Message;
use hickory_proto::op::Query;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::Name;
use hickory_proto::rr::RData;
use hickory_proto::rr::Record;
use hickory_proto::rr::RecordType;
use netdrv::OverlayDriver;
use nix::sched::setns;
use nix::sched::CloneFlags;
use swarm::exec::NetworkAttacher;
use swarm::exec::NetworkRecords;
use swarm::exec::ServiceRecords;

const NET_A: &str = "na0000000000000000000000a";
const NET_B: &str = "nb0000000000000000000000b";
const NET_INT: &str = "ni0000000000000000000000c";
const NET_INGRESS: &str = "ng0000000000000000000000d";
const TASK_1: &str = "t10000000000000000000000a";
const TASK_2: &str = "t20000000000000000000000a";
const TASK_3: &str = "t30000000000000000000000b";
const TASK_4: &str = "t40000000000000000000000c";
const TASK_5: &str = "t50000000000000000000000d";

/// What the fake upstream knows.
const UPSTREAM_NAME: &str = "example.test.";
const UPSTREAM_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
/// How long a test client waits for one answer.
const CLIENT_WAIT: Duration = Duration::from_secs(3);

fn records(web: &str) -> ServiceRecords {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    ServiceRecords {
        networks: vec![
            NetworkRecords {
                network_id: NET_A.into(),
                names: BTreeMap::from([
                    ("web".to_string(), vec![ip(web)]),
                    (
                        "tasks.web".to_string(),
                        vec![ip("10.0.1.3"), ip("10.0.1.4")],
                    ),
                ]),
                ..Default::default()
            },
            NetworkRecords {
                network_id: NET_B.into(),
                names: BTreeMap::from([("db".to_string(), vec![ip("10.0.2.2")])]),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// Sends one query to 127.0.0.11:53 from inside the namespace open as
/// `ns`, over UDP or TCP, and waits (bounded) for the answer.
fn query_in(ns: &File, name: &str, rtype: RecordType, tcp: bool) -> std::io::Result<Message> {
    let ns = ns.try_clone()?;
    let name = name.to_string();
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(&name).expect("name"), rtype));
        let raw = q.to_vec().expect("encode");
        let server = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 11), 53));
        let bytes = if tcp {
            let mut s = std::net::TcpStream::connect_timeout(&server, CLIENT_WAIT)?;
            s.set_read_timeout(Some(CLIENT_WAIT))?;
            let mut framed = (raw.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&raw);
            s.write_all(&framed)?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len)?;
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut body)?;
            body
        } else {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(CLIENT_WAIT))?;
            s.connect(server)?;
            s.send(&raw)?;
            let mut buf = vec![0u8; 65535];
            let n = s.recv(&mut buf)?;
            buf.truncate(n);
            buf
        };
        let m = Message::from_vec(&bytes).map_err(std::io::Error::other)?;
        assert_eq!(m.metadata.id, q.metadata.id, "answer to another query");
        Ok(m)
    })
    .join()
    .expect("client thread")
}

fn query(ns: &Path, name: &str, rtype: RecordType) -> Message {
    let f = File::open(ns).expect("open netns");
    query_in(&f, name, rtype, false).unwrap_or_else(|e| panic!("query {name}: {e}"))
}

fn v4s(m: &Message) -> BTreeSet<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(A(a)) => Some(a),
            _ => None,
        })
        .collect()
}

fn set(addrs: &[&str]) -> BTreeSet<Ipv4Addr> {
    addrs.iter().map(|a| a.parse().unwrap()).collect()
}

/// A fake upstream nameserver on `addr` in the test's namespace: it knows
/// [`UPSTREAM_NAME`] and says NXDOMAIN to everything else. It runs until
/// the test process ends.
fn fake_upstream(addr: SocketAddr) {
    let sock = std::net::UdpSocket::bind(addr).expect("bind the fake upstream");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
            resp.metadata.recursion_available = true;
            resp.queries = q.queries.clone();
            match q.queries.first() {
                Some(first)
                    if first.name().to_ascii().eq_ignore_ascii_case(UPSTREAM_NAME)
                        && first.query_type() == RecordType::A =>
                {
                    resp.answers.push(Record::from_rdata(
                        first.name().clone(),
                        30,
                        RData::A(A(UPSTREAM_ADDR)),
                    ));
                }
                _ => resp.metadata.response_code = ResponseCode::NXDomain,
            }
            let _ = sock.send_to(&resp.to_vec().expect("encode"), peer);
        }
    });
}

#[test]
fn t20_embedded_dns_answers_per_network() {
    isolated("t20_embedded_dns_answers_per_network", || async {
        ok(&["ip", "link", "set", "lo", "up"]);
        let upstream: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        fake_upstream(upstream);
        let state = StateDir::new();
        let driver = OverlayDriver::new(state.path.clone())
            .unwrap()
            .with_upstreams(vec![upstream]);
        let a = network(NET_A, "10.0.1.0/24", "10.0.1.1");
        let b = network(NET_B, "10.0.2.0/24", "10.0.2.1");
        let t1 = driver.attach(TASK_1, &on(&a, "10.0.1.5/24")).await.unwrap();
        let t2 = driver.attach(TASK_2, &on(&a, "10.0.1.6/24")).await.unwrap();
        let t3 = driver.attach(TASK_3, &on(&b, "10.0.2.5/24")).await.unwrap();
        for t in [TASK_1, TASK_2, TASK_3] {
            assert!(driver.dns_running(t), "{t}");
        }
        assert!(
            ipv4s(&addr_of(&t1.path, "lo")).contains(&"127.0.0.11/32".to_string()),
            "{:?}",
            addr_of(&t1.path, "lo")
        );

        // Before any records: every name goes upstream.
        let m = query(&t1.path, "web", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

        driver.update_dns(&records("10.0.1.2")).await.unwrap();

        let m = query(&t1.path, "web", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(v4s(&m), set(&["10.0.1.2"]));
        assert_eq!(m.answers[0].ttl, 600);
        assert_eq!(
            v4s(&query(&t1.path, "WEB.", RecordType::A)),
            set(&["10.0.1.2"])
        );
        assert_eq!(
            v4s(&query(&t2.path, "tasks.web", RecordType::A)),
            set(&["10.0.1.3", "10.0.1.4"])
        );
        // AAAA of a swarm name: empty, not NXDOMAIN.
        let m = query(&t1.path, "web", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty(), "{m:?}");
        // Over TCP too.
        let f1 = File::open(&t1.path).unwrap();
        let m = query_in(&f1, "tasks.web", RecordType::A, true).unwrap();
        assert_eq!(v4s(&m), set(&["10.0.1.3", "10.0.1.4"]));

        // A task resolves only its own networks' names; the rest is the
        // upstream's business (NXDOMAIN from it here).
        let m = query(&t1.path, "db", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.answers.is_empty());
        assert_eq!(
            v4s(&query(&t3.path, "db", RecordType::A)),
            set(&["10.0.2.2"])
        );
        let m = query(&t3.path, "web", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

        // Unknown names are forwarded and the upstream's answer relayed.
        let m = query(&t1.path, "example.test", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(v4s(&m), BTreeSet::from([UPSTREAM_ADDR]));
        let m = query_in(&f1, "example.test", RecordType::A, true);
        // The fake upstream has no TCP: SERVFAIL, still an answer.
        assert_eq!(m.unwrap().metadata.response_code, ResponseCode::ServFail);

        // A stock client.
        let out = in_ns(&t1.path, &["busybox", "nslookup", "web", "127.0.0.11"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("10.0.1.2"), "{text}");

        // Updates are seen at once.
        driver.update_dns(&records("10.0.1.20")).await.unwrap();
        assert_eq!(
            v4s(&query(&t1.path, "web", RecordType::A)),
            set(&["10.0.1.20"])
        );
        assert_eq!(
            v4s(&query(&t2.path, "web", RecordType::A)),
            set(&["10.0.1.20"])
        );

        // Detach stops the server: the namespace, held open here, no
        // longer answers.
        driver.detach(TASK_1).await.unwrap();
        assert!(!driver.dns_running(TASK_1));
        assert!(query_in(&f1, "web", RecordType::A, false).is_err());
        assert!(query_in(&f1, "web", RecordType::A, true).is_err());
        // The others keep theirs.
        assert_eq!(
            v4s(&query(&t2.path, "web", RecordType::A)),
            set(&["10.0.1.20"])
        );

        // Attach again: a new server with the current records.
        let t1 = driver.attach(TASK_1, &on(&a, "10.0.1.5/24")).await.unwrap();
        assert_eq!(
            v4s(&query(&t1.path, "web", RecordType::A)),
            set(&["10.0.1.20"])
        );

        // Prune stops the servers of the tasks it removes.
        driver
            .prune(&[TASK_2.to_string()].into_iter().collect())
            .await
            .unwrap();
        assert!(!driver.dns_running(TASK_1));
        assert!(!driver.dns_running(TASK_3));
        assert!(driver.dns_running(TASK_2));
        driver.detach(TASK_2).await.unwrap();
        assert!(!driver.dns_running(TASK_2));
    });
}

#[test]
fn t21_embedded_dns_without_upstream() {
    isolated("t21_embedded_dns_without_upstream", || async {
        ok(&["ip", "link", "set", "lo", "up"]);
        let state = StateDir::new();
        // Nothing listens there: every forward fails at once.
        let driver = OverlayDriver::new(state.path.clone())
            .unwrap()
            .with_upstreams(vec!["127.0.0.1:9".parse().unwrap()]);
        let a = network(NET_A, "10.0.1.0/24", "10.0.1.1");
        let t1 = driver.attach(TASK_1, &on(&a, "10.0.1.5/24")).await.unwrap();
        driver.update_dns(&records("10.0.1.2")).await.unwrap();
        let m = query(&t1.path, "nowhere.test", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(
            v4s(&query(&t1.path, "web", RecordType::A)),
            set(&["10.0.1.2"])
        );

        // Internal networks only: no way out, nothing forwarded.
        let mut internal = network(NET_INT, "10.0.3.0/24", "10.0.3.1");
        internal.internal = true;
        let t4 = driver
            .attach(TASK_4, &on(&internal, "10.0.3.5/24"))
            .await
            .unwrap();
        assert!(driver.dns_running(TASK_4));
        let m = query(&t4.path, "example.test", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);

        // Ingress only: the embedded server as under dockerd, with no
        // names of the mesh (it has none) and forwarding.
        let mut ingress = network(NET_INGRESS, "10.0.0.0/24", "10.0.0.1");
        ingress.ingress = true;
        let t5 = driver
            .attach(TASK_5, &on(&ingress, "10.0.0.5/24"))
            .await
            .unwrap();
        assert!(t5.resolv_conf.contains("127.0.0.11"), "{}", t5.resolv_conf);
        assert!(driver.dns_running(TASK_5));
        let m = query(&t5.path, "web", RecordType::A);
        assert!(m.answers.is_empty(), "{m:?}");

        for t in [TASK_1, TASK_4, TASK_5] {
            driver.detach(t).await.unwrap();
            assert!(!driver.dns_running(t));
        }
    });
}
