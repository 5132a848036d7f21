//! Encrypted overlay networks without kernel ESP: a user-space tunnel that
//! seals the VXLAN datagrams of encrypted networks between nodes.
//!
//! Swarm encrypts an overlay (`--opt encrypted`) with kernel ESP. This
//! kernel has XFRM but no ESP, AES-GCM, ChaCha20 or WireGuard, while TUN
//! devices work; so the kernel's VXLAN devices stay as they are and only
//! their UDP datagrams take a detour through user space.
//!
//! # The path of a datagram
//!
//! Out: a network's VXLAN device sends `data_addr -> peer:data_port`. For
//! an encrypted VNI the `ip shoal-seal` table (see `steer`) marks it in
//! the output route hook; the kernel routes it again, and the rule
//! `fwmark <fwmark> lookup <table>` sends it to `default dev <tun>`. The
//! sealing task reads it whole from the TUN, checks that it is this node's
//! VXLAN datagram (`inner`), seals it (`frame`, `sealer`) and sends the
//! frame from `data_addr:tunnel_port` to `peer:tunnel_port`, the peer
//! being the datagram's destination.
//!
//! In: the opening task takes frames on that socket from peers' tunnel
//! ports only, reads the header, looks the key ID up in the ring, refuses
//! replays from the window of (sender, key) before any cryptography,
//! opens the frame under the sender's key, records the counter, checks
//! that the packet inside is a VXLAN datagram from the frame's sender to
//! this node's data port (`opener`), and writes it to the TUN. The kernel
//! delivers it to the VXLAN socket like any datagram from the wire.
//! Two details make that work: the packet's source is reached through
//! the underlay, not the TUN, and the TUN has no address, so any
//! reverse-path filter refuses it; the table therefore marks packets from
//! the TUN in prerouting and the TUN has `src_valid_mark`, so the check
//! looks the source up in the tunnel's table, which routes it into the
//! TUN, and the check passes whatever `all.rp_filter` says (the mark is
//! cleared again in the input hook, before the VXLAN device sees the
//! packet).
//!
//! Failing closed: the table also drops encrypted VNIs' datagrams that
//! would leave by any interface but the TUN (a missing route or rule, a
//! crashed shoald whose TUN went with it) and those that arrive by any
//! interface but the TUN (plain VXLAN injected from the underlay). A
//! dropped [`Tunnel`] or a crash leaves the rule and the table, so
//! encrypted networks stop rather than go out in the clear until
//! [`remove_leftovers`] (or a new [`Tunnel::start`]) clears them;
//! [`Tunnel::stop`] removes everything.
//!
//! # Keys, nonces and replays
//!
//! Every node has the same secrets (swarm's network keys), so no secret is
//! used as an AEAD key: each sender seals under HKDF(secret, key ID, its
//! data address) (`keys`). Nonces then only need to be unique per node: a
//! random 32-bit salt per run and a 64-bit counter that starts at the
//! clock in nanoseconds and grows by one per frame. Counters therefore go
//! on growing across restarts of a sender, and a receiver keeps a single
//! window of 2048 counters per (sender, key) (`replay`). A [`Keyring`]
//! holds up to three keys; frames under any of them are accepted, the
//! primary is sent with, and a change applies from the next packet on
//! while the windows of keys that stay are kept, so a rotation in three
//! steps (add everywhere; make primary; remove) drops nothing.
//!
//! AES-256-GCM (ring) was chosen over ChaCha20-Poly1305: on these hosts
//! ring seals a 1500-byte frame in about 0.5-0.7 us with AES-GCM against
//! 1.0-1.4 us with ChaCha20 (`frame::cost`, ignored test).
//!
//! # Threat model
//!
//! Authenticated and encrypted: the whole inner packet (the VXLAN
//! datagram's IPv4 and UDP headers, the VXLAN header with its VNI and the
//! overlay's Ethernet frame); authenticated: the frame header; bound to the
//! sender: its underlay address, through the key derivation and the inner
//! source check.
//!
//! An attacker on the underlay without the keys can see which nodes talk,
//! when and how much (sizes and timing), the key IDs and counters; can
//! drop, delay and reorder frames; and can make a node spend an HKDF and
//! an AEAD check per garbage datagram sent to the tunnel port. They cannot
//! read or change a frame, forge one, replay one to a running receiver
//! (it is in the window or older than it), redirect one to another node or
//! pass it off as another node's (another key), inject plain VXLAN into an
//! encrypted network (dropped in the input hook), or make a node forward
//! anything (only datagrams to its own data port are delivered).
//!
//! Not covered: networks that are not encrypted; a node that holds the
//! keys can read every node's traffic and, if it can also spoof source
//! addresses on the underlay, seal frames as another node (the keys are
//! cluster-wide, as in swarm's ESP mode); a receiver that restarts forgets
//! its windows, so frames recorded under a key still in the ring can be
//! replayed to it once each (swarm rotates the keys every 12 hours); a
//! sender that restarts with its clock stepped back is refused as a
//! replay until its counter passes the last one heard or the key changes.
//! Peers must see each other's data addresses unchanged (no NAT), as the
//! static VXLAN forwarding entries already require.
//!
//! # Cost
//!
//! A sealed frame adds [`OVERHEAD`] bytes plus its own IPv4 and UDP
//! headers: 64 bytes over the VXLAN datagram. With a 1500-byte underlay
//! the overlay MTU should be 1450 - 64 = 1386 for encrypted networks,
//! otherwise full-size frames are fragmented on the underlay (they still
//! arrive). The whole VXLAN datagram is sealed, as designed; sealing only
//! its payload and rebuilding the IPv4 and UDP headers on the way in
//! would save 28 bytes per frame.
//!
//! Bulk TCP between the two node namespaces of `tests/t50_seal.rs`
//! (`seal_throughput`, ignored test; 2 vCPUs shared with another build,
//! netdrv at opt-level 3, four runs): plain VXLAN 1240-2110 MB/s; sealed
//! 43-48 MB/s with the overlay MTU at 1450 and 37-55 MB/s at 1386, about
//! 1/30 to 1/45 of plain, with no frame dropped. The cost is per packet
//! in the kernel (perf: the TUN read, UDP send, UDP receive and TUN write
//! of every 1.5 KB packet, and the wake-ups between the two nodes' tasks;
//! the AEAD is about 1.3 % of CPU samples), while plain VXLAN moves
//! 64 KB GSO super-packets. Batching (recvmmsg/sendmmsg) and a TUN with
//! offloads (IFF_VNET_HDR, reading GSO super-packets and sealing them in
//! MTU-sized pieces) are where more would come from.

mod frame;
mod inner;
mod keys;
mod opener;
mod pump;
mod replay;
mod sealer;
mod steer;
mod tun;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use nix::sys::socket::setsockopt;
use nix::sys::socket::sockopt;
use ring::rand::SecureRandom;
use ring::rand::SystemRandom;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use self::frame::OVERHEAD;
pub use self::keys::Key;
pub use self::keys::Keyring;
pub use self::keys::MAX_KEYS;
pub use self::replay::WINDOW as REPLAY_WINDOW;
pub use self::steer::sandbox_delete_document;
pub use self::steer::sandbox_document;
pub use self::steer::TABLE as NFT_TABLE;
use crate::error::Error;
use crate::error::Result;
use crate::netlink::Netlink;

/// The VXLAN port swarm uses unless told otherwise.
pub const DEFAULT_DATA_PORT: u16 = 4789;
/// The tunnel's port by default: the next one after VXLAN's. Nothing else
/// in a swarm uses it (swarm's ports are 2377, 7946 and 4789; 4790 is
/// VXLAN-GPE's registered port, which neither the kernel nor swarm
/// listens on unless a VXLAN-GPE device is made).
pub const DEFAULT_TUNNEL_PORT: u16 = DEFAULT_DATA_PORT + 1;
/// The TUN device's name by default.
pub const DEFAULT_TUN_NAME: &str = "shoal-seal";
/// The fwmark of steered datagrams by default ("5ea1", seal).
pub const DEFAULT_FWMARK: u32 = 0x5ea1;
/// The routing table of steered datagrams by default.
pub const DEFAULT_TABLE: u32 = 0x5ea1;

/// Socket buffers of the tunnel socket: a burst of a few thousand frames
/// (one TCP window of a fast peer) is queued rather than dropped while the
/// opening task is busy.
const SOCKET_BUFFER: usize = 4 << 20;

/// Where the tunnel sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// The node's data-path address: the VXLAN devices' local address,
    /// where the tunnel socket is bound and what peers see frames from.
    pub data_addr: Ipv4Addr,
    /// The VXLAN UDP port (the swarm's data-path port).
    pub data_port: u16,
    /// The UDP port frames are sent from and to, the same on every node.
    pub tunnel_port: u16,
    /// The TUN device's name (at most 15 bytes).
    pub tun_name: String,
    /// The fwmark that steers datagrams into the TUN; no other user of
    /// fwmarks on the node may set it.
    pub fwmark: u32,
    /// The policy routing table holding the route into the TUN; the
    /// tunnel owns it whole.
    pub table: u32,
}

impl TunnelConfig {
    /// The configuration with every default for a node at `data_addr`.
    pub fn new(data_addr: Ipv4Addr) -> TunnelConfig {
        TunnelConfig {
            data_addr,
            data_port: DEFAULT_DATA_PORT,
            tunnel_port: DEFAULT_TUNNEL_PORT,
            tun_name: DEFAULT_TUN_NAME.to_string(),
            fwmark: DEFAULT_FWMARK,
            table: DEFAULT_TABLE,
        }
    }

    fn steering(&self) -> steer::Steering {
        steer::Steering {
            data_port: self.data_port,
            tun: self.tun_name.clone(),
            fwmark: self.fwmark,
        }
    }
}

/// What the tunnel did so far (counters since start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sealed and sent.
    pub sealed: u64,
    /// Frames opened and handed to the kernel.
    pub opened: u64,
    /// Authentic-looking frames refused as replays (or too old to tell).
    pub dropped_replay: u64,
    /// Frames under no key of the ring, or whose tag did not match.
    pub dropped_auth: u64,
    /// Datagrams that are no frame (short, unknown version, wrong source
    /// port).
    pub dropped_malformed: u64,
    /// Authentic frames whose packet is not a VXLAN datagram from the
    /// sender to this node.
    pub dropped_inner: u64,
    /// Packets routed into the TUN that are not this node's VXLAN
    /// datagrams (not sealed).
    pub not_ours: u64,
    /// Failed sends to peers or writes to the TUN.
    pub io_errors: u64,
    /// `opened`, by key ID.
    pub opened_by_key: BTreeMap<u32, u64>,
}

/// A running tunnel: its TUN, routing rule and route, nftables table, and
/// the two tasks that seal and open.
///
/// Dropping it stops the tasks and so removes the TUN and its route, but
/// leaves the rule and the nftables table (encrypted VNIs then fail
/// closed); [`Tunnel::stop`] removes everything, [`remove_leftovers`]
/// cleans up after a crash.
pub struct Tunnel {
    cfg: TunnelConfig,
    keys: watch::Sender<Arc<Keyring>>,
    counters: Arc<pump::Counters>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Starts a tunnel in the network namespace of the calling runtime's
    /// threads (shoald's host namespace), after removing what a previous
    /// run may have left. No VNI is encrypted until
    /// [`set_encrypted_vnis`](Self::set_encrypted_vnis).
    ///
    /// Fails if `keys` is not a valid ring, the tunnel port is taken, or a
    /// kernel object cannot be made; whatever was made is removed again.
    pub async fn start(cfg: TunnelConfig, keys: Keyring) -> Result<Tunnel> {
        keys.validate()?;
        remove_leftovers(&cfg).await?;
        let sock = bind(&cfg)?;
        let made = Self::make(&cfg, sock, keys).await;
        if made.is_err() {
            if let Err(e) = remove_leftovers(&cfg).await {
                tracing::warn!(error = %e, "tunnel: undoing a failed start");
            }
        }
        made
    }

    async fn make(
        cfg: &TunnelConfig,
        sock: tokio::net::UdpSocket,
        keys: Keyring,
    ) -> Result<Tunnel> {
        let tun = Arc::new(tun::create(&cfg.tun_name)?);
        let nl = Netlink::here()?;
        let index = nl.must_index(&cfg.tun_name).await?;
        let rt = handle()?;
        steer::add_route(&rt, cfg.table, index).await?;
        steer::add_rule(&rt, cfg.fwmark, cfg.table).await?;
        crate::nft::apply(&steer::table_document(&cfg.steering(), &BTreeSet::new())).await?;

        let keys = Arc::new(keys);
        let (tx, rx) = watch::channel(keys.clone());
        let counters = Arc::new(pump::Counters::default());
        let sock = Arc::new(sock);
        let ends = || pump::Ends {
            tun: tun.clone(),
            sock: sock.clone(),
            local: cfg.data_addr,
            data_port: cfg.data_port,
            tunnel_port: cfg.tunnel_port,
            counters: counters.clone(),
        };
        let sealer = sealer::Sealer::new(cfg.data_addr, &keys, random_salt()?, clock_nanos());
        let opener = opener::Opener::new(cfg.data_addr, cfg.data_port, keys);
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(pump::seal_loop(ends(), sealer, rx.clone(), cancel.clone()));
        tasks.spawn(pump::open_loop(ends(), opener, rx, cancel.clone()));
        tracing::info!(tun = %cfg.tun_name, addr = %cfg.data_addr, port = cfg.tunnel_port, "tunnel started");
        Ok(Tunnel {
            cfg: cfg.clone(),
            keys: tx,
            counters,
            cancel,
            tasks,
        })
    }

    /// Makes `keys` the ring from the next packet on: frames are sealed
    /// with its primary and accepted under any of its keys. Replay state
    /// of keys that stay is kept. See [`Keyring`] for a rotation that
    /// drops nothing.
    pub fn set_keys(&self, keys: Keyring) -> Result<()> {
        keys.validate()?;
        self.keys.send_replace(Arc::new(keys));
        Ok(())
    }

    /// Makes `vnis` the encrypted VNIs, in one nftables transaction: their
    /// datagrams are sealed from then on, and their plain datagrams from
    /// outside are dropped. Other VNIs pass in the clear.
    pub async fn set_encrypted_vnis(&self, vnis: BTreeSet<u32>) -> Result<()> {
        if let Some(v) = vnis.iter().find(|v| **v > steer::MAX_VNI) {
            return Err(Error::io("set encrypted VNIs")(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("VNI {v} does not fit in 24 bits"),
            )));
        }
        crate::nft::apply(&steer::table_document(&self.cfg.steering(), &vnis)).await
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// The configuration the tunnel runs with.
    pub fn config(&self) -> &TunnelConfig {
        &self.cfg
    }

    /// Stops the tasks and removes everything the tunnel made: the TUN,
    /// the routing rule, the routes of its table and the nftables table.
    /// Encrypted VNIs' datagrams go out in the clear afterwards: stop a
    /// tunnel once no encrypted network is left (or for good).
    pub async fn stop(mut self) -> Result<()> {
        self.cancel.cancel();
        // The tasks hold the TUN: it is closed (and gone) once they end.
        while self.tasks.join_next().await.is_some() {}
        remove_leftovers(&self.cfg).await?;
        tracing::info!(tun = %self.cfg.tun_name, "tunnel stopped");
        Ok(())
    }
}

/// Removes what a tunnel with `cfg` makes (the TUN, the routing rule, the
/// routes of its table, the nftables table), whatever is there; for a
/// shoald that restarts after a crash. Every step runs; the first failure
/// is returned.
pub async fn remove_leftovers(cfg: &TunnelConfig) -> Result<()> {
    let mut first = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "tunnel: cleanup step failed");
            first.get_or_insert(e);
        }
    };
    keep(crate::nft::apply(&steer::delete_document()).await);
    match handle() {
        Ok(rt) => {
            keep(steer::remove_rules(&rt, cfg.fwmark, cfg.table).await);
            keep(steer::flush_table(&rt, cfg.table).await);
        }
        Err(e) => keep(Err(e)),
    }
    match Netlink::here() {
        Ok(nl) => keep(nl.delete_link(&cfg.tun_name).await),
        Err(e) => keep(Err(e)),
    }
    first.map_or(Ok(()), Err)
}

/// A netlink handle in the caller's namespace, for rules and routes.
fn handle() -> Result<rtnetlink::Handle> {
    crate::netlink_io::connect().map_err(Error::io("open netlink socket"))
}

/// The tunnel socket, with large buffers (forced past the sysctl limits:
/// shoald runs as root).
fn bind(cfg: &TunnelConfig) -> Result<tokio::net::UdpSocket> {
    let at = SocketAddrV4::new(cfg.data_addr, cfg.tunnel_port);
    let sock = std::net::UdpSocket::bind(at)
        .map_err(Error::io(format!("bind the tunnel socket on {at}")))?;
    if setsockopt(&sock, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        setsockopt(&sock, sockopt::RcvBuf, &SOCKET_BUFFER)
            .map_err(Error::sys("set the tunnel socket's receive buffer"))?;
    }
    if setsockopt(&sock, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        setsockopt(&sock, sockopt::SndBuf, &SOCKET_BUFFER)
            .map_err(Error::sys("set the tunnel socket's send buffer"))?;
    }
    sock.set_nonblocking(true)
        .map_err(Error::io("make the tunnel socket non-blocking"))?;
    tokio::net::UdpSocket::from_std(sock).map_err(Error::io("register the tunnel socket"))
}

fn random_salt() -> Result<u32> {
    let mut salt = [0u8; 4];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::io("draw the tunnel salt")(io::Error::other("no system randomness")))?;
    Ok(u32::from_be_bytes(salt))
}

/// Nanoseconds since the epoch: where this run's frame counters start.
fn clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0)
}
