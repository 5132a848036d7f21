//! Encrypted overlay networks without kernel ESP: a user-space tunnel that
//! seals the VXLAN datagrams of encrypted networks between nodes.
//!
//! DESIGN_PLACEHOLDER

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
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(Error::io("open netlink socket"))?;
    tokio::spawn(conn);
    Ok(handle)
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
