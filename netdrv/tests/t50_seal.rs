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
mod seal;

use std::io::Read;
use std::io::Write;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::net::TcpStream;
use std::net::UdpSocket;
use std::time::Duration;
use std::time::Instant;

use common::*;
use netdrv::tunnel::remove_leftovers;
use seal::*;

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
    // As a sandbox has it: the device on a bridge that marks what leaves
    // by it, so the overlay can take the TUN's MTU.
    let mut marked = Vec::new();
    for n in [&a, &b] {
        bridge_and_mark(n);
    }
    for (i, mtu) in [1386u32, 9000, 65_000].into_iter().enumerate() {
        for n in [&a, &b] {
            set_overlay_mtu(n, mtu);
        }
        assert!(pings(&a, b.overlay));
        marked.push(format!("{mtu}: {:.0} MB/s", bulk(&a, &b, 7310 + i as u16)));
    }
    let (sa, sb) = (a.stats().await, b.stats().await);
    println!("seal throughput: plain VXLAN {plain:.0} MB/s; sealed (overlay MTU 1450, unmarked) {sealed:.0} MB/s ({:.2}x); sealed and marked, by overlay MTU: {marked:?}", sealed / plain);
    println!("seal stats: A {sa:?}; B {sb:?}");
    a.stop().await;
    b.stop().await;
}

/// Moves the node's overlay address from `vx0` to a bridge `br0` holding
/// `vx0`, and gives the namespace the sandbox table of an encrypted
/// network (netdrv's own document, applied with `nft -j -f`).
fn bridge_and_mark(n: &Node) {
    let addr = format!("{}/24", n.overlay);
    for args in [
        &["ip", "link", "add", "br0", "type", "bridge"][..],
        &["ip", "addr", "del", &addr, "dev", "vx0"],
        &["ip", "link", "set", "vx0", "master", "br0"],
        &["ip", "addr", "add", &addr, "dev", "br0"],
        &["ip", "link", "set", "br0", "up"],
    ] {
        let out = in_ns(n.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let doc = netdrv::tunnel::sandbox_document("vx0", netdrv::tunnel::DEFAULT_FWMARK);
    let file = n.path().with_extension("nft.json");
    std::fs::write(&file, serde_json::to_vec(&doc).expect("json")).expect("write");
    let out = in_ns(n.path(), &["nft", "-j", "-f", file.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets the overlay's MTU on both of the node's devices, and forgets the
/// path MTUs learned under the old one.
fn set_overlay_mtu(n: &Node, mtu: u32) {
    let mtu = mtu.to_string();
    for args in [
        &["ip", "link", "set", "vx0", "mtu", &mtu][..],
        &["ip", "link", "set", "br0", "mtu", &mtu],
        &["ip", "route", "flush", "cache"],
    ] {
        let out = in_ns(n.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
