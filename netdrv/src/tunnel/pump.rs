//! The two tasks that move packets: TUN to sealed datagrams, and sealed
//! datagrams to TUN. Each owns its half of the state (the [`Sealer`], the
//! [`Opener`]) and learns about new keys from a watch channel, checked
//! before every packet, so a key change applies from the next packet on.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::net::SocketAddrV4;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tun_rs::AsyncDevice;

use super::frame::HEADER_LEN;
use super::frame::TAG_LEN;
use super::inner;
use super::keys::Keyring;
use super::opener::Opener;
use super::opener::Refused;
use super::sealer::Sealer;
use super::Stats;

/// The largest IPv4 packet, and so the largest frame body.
const MAX_PACKET: usize = u16::MAX as usize;

/// The tunnel's counters, shared by the tasks and [`super::Tunnel::stats`].
#[derive(Debug, Default)]
pub struct Counters {
    sealed: AtomicU64,
    opened: AtomicU64,
    dropped_replay: AtomicU64,
    dropped_auth: AtomicU64,
    dropped_malformed: AtomicU64,
    dropped_inner: AtomicU64,
    not_ours: AtomicU64,
    io_errors: AtomicU64,
    /// Opened frames by key ID: few keys, one uncontended lock per frame.
    by_key: Mutex<BTreeMap<u32, u64>>,
}

impl Counters {
    /// A snapshot.
    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            sealed: get(&self.sealed),
            opened: get(&self.opened),
            dropped_replay: get(&self.dropped_replay),
            dropped_auth: get(&self.dropped_auth),
            dropped_malformed: get(&self.dropped_malformed),
            dropped_inner: get(&self.dropped_inner),
            not_ours: get(&self.not_ours),
            io_errors: get(&self.io_errors),
            opened_by_key: self.by_key.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Where the tasks' packets come from and go to.
pub struct Ends {
    /// The TUN device.
    pub tun: Arc<AsyncDevice>,
    /// The socket bound on the data-path address and tunnel port.
    pub sock: Arc<UdpSocket>,
    /// The node's data-path address.
    pub local: Ipv4Addr,
    /// The VXLAN port.
    pub data_port: u16,
    /// The tunnel port, here and on every peer.
    pub tunnel_port: u16,
    /// Shared counters.
    pub counters: Arc<Counters>,
}

/// Whether an I/O error is worth going on after: the socket and device
/// report transient conditions (a full buffer, an interrupted call, an
/// ICMP error queued on the socket); anything else means the descriptor
/// is unusable.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock
            | ErrorKind::Interrupted
            | ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::OutOfMemory
    ) || e.raw_os_error() == Some(nix::libc::ENOBUFS)
}

/// Reads VXLAN datagrams from the TUN, seals them and sends each to its
/// destination's tunnel port, until `cancel`.
pub async fn seal_loop(
    ends: Ends,
    mut sealer: Sealer,
    mut keys: watch::Receiver<Arc<Keyring>>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PACKET + TAG_LEN];
    loop {
        let read = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            r = ends.tun.recv(&mut buf[HEADER_LEN..HEADER_LEN + MAX_PACKET]) => r,
        };
        let n = match read {
            Ok(n) => n,
            Err(e) if transient(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "tunnel: reading the TUN failed; sealing stops");
                return;
            }
        };
        let packet = &buf[HEADER_LEN..HEADER_LEN + n];
        let Some(dst) = inner::outbound(packet, ends.local, ends.data_port) else {
            bump(&ends.counters.not_ours);
            continue;
        };
        if keys.has_changed().unwrap_or(false) {
            sealer.set_keys(&keys.borrow_and_update());
        }
        let len = sealer.seal(&mut buf, n);
        let to = SocketAddrV4::new(dst, ends.tunnel_port);
        match ends.sock.send_to(&buf[..len], to).await {
            Ok(_) => bump(&ends.counters.sealed),
            Err(e) => {
                bump(&ends.counters.io_errors);
                tracing::debug!(error = %e, %to, "tunnel: sending a frame failed");
            }
        }
    }
}

/// Receives frames, opens them and writes the VXLAN datagrams inside to the
/// TUN, until `cancel`.
pub async fn open_loop(
    ends: Ends,
    mut opener: Opener,
    mut keys: watch::Receiver<Arc<Keyring>>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    let c = &ends.counters;
    loop {
        let received = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            r = ends.sock.recv_from(&mut buf) => r,
        };
        let (n, from) = match received {
            Ok(r) => r,
            Err(e) if transient(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "tunnel: receiving failed; opening stops");
                return;
            }
        };
        // Peers send from the tunnel port too: anything else is not a
        // tunnel end.
        let SocketAddr::V4(from) = from else {
            bump(&c.dropped_malformed);
            continue;
        };
        if from.port() != ends.tunnel_port {
            bump(&c.dropped_malformed);
            continue;
        }
        if keys.has_changed().unwrap_or(false) {
            opener.set_keys(keys.borrow_and_update().clone());
        }
        let (key_id, packet) = match opener.open(*from.ip(), &mut buf[..n]) {
            Ok(opened) => opened,
            Err(why) => {
                bump(match why {
                    Refused::Malformed => &c.dropped_malformed,
                    Refused::Auth => &c.dropped_auth,
                    Refused::Replay => &c.dropped_replay,
                    Refused::Inner => &c.dropped_inner,
                });
                continue;
            }
        };
        match ends.tun.send(packet).await {
            Ok(_) => {
                bump(&c.opened);
                if let Ok(mut m) = c.by_key.lock() {
                    *m.entry(key_id).or_default() += 1;
                }
            }
            Err(e) => {
                bump(&c.io_errors);
                tracing::debug!(error = %e, "tunnel: writing to the TUN failed");
            }
        }
    }
}
