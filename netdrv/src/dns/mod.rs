//! The embedded DNS server at 127.0.0.11 inside every task namespace whose
//! resolv.conf names it (tasks on at least one non-ingress network).
//!
//! Why sockets made in the task's namespace but served from shoald's
//! runtime: a socket belongs to the namespace of the thread that created
//! it, for its whole life, whichever thread polls it later. So the UDP and
//! TCP sockets on 127.0.0.11:53 are bound on a short-lived thread that has
//! entered the task's namespace (see `netns::run_in`), then handed to tokio.
//! No runtime thread changes namespace, and no DNAT rule is needed (dockerd
//! listens on a random port and redirects port 53 to it with iptables; the
//! address and port the container sees are the same).
//!
//! Queries the swarm records cannot answer are forwarded, as they came, to
//! the node's upstream nameservers from the driver's own namespace: the
//! same servers dockerd would use (the host's, localhost ones dropped, the
//! public defaults when none is left). A task whose networks are all
//! internal has no way out, so nothing is forwarded for it (SERVFAIL),
//! which is what a container on an internal network sees from dockerd.
//!
//! Every server reads the records of all networks through one shared
//! pointer, which [`Dns::update`] replaces whole: a query sees either the
//! old records or the new ones, never a mix.

pub mod answer;

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::op::ResponseCode;
use ipnet::Ipv4Net;
use rand::seq::SliceRandom;
use swarm::exec::NetworkRecords;
use swarm::exec::ServiceRecords;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::timeout;

use self::answer::Outcome;
use self::answer::Records;
use crate::error::Error;
use crate::error::Result;
use crate::netlink::Netlink;
use crate::netns;
use crate::resolv::EMBEDDED_DNS;

/// The server's port.
const PORT: u16 = 53;
/// How long one upstream has to answer (dockerd's external I/O timeout).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(4);
/// How many upstreams are tried per query, in order.
const MAX_UPSTREAMS: usize = 3;
/// Queries being forwarded at once per task, and TCP connections open at
/// once per task (dockerd's limit of concurrent queries); past it a query
/// gets SERVFAIL and a connection is closed.
const MAX_CONCURRENT: usize = 100;
/// How long a TCP client may stay silent between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest DNS message over UDP (the buffer for one datagram).
const MAX_UDP: usize = 65_535;

/// The embedded server's address.
pub fn address() -> Ipv4Addr {
    // A constant of this crate, checked by the tests.
    EMBEDDED_DNS.parse().unwrap_or(Ipv4Addr::new(127, 0, 0, 11))
}

/// Whether a task's resolv.conf sends its queries to the embedded server.
pub fn resolv_conf_uses_embedded(resolv_conf: &str) -> bool {
    resolv_conf.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some("nameserver") && f.next() == Some(EMBEDDED_DNS)
    })
}

/// The upstream nameservers from the host's resolv.conf content: what is
/// left after dockerd's filtering (localhost and IPv6 servers dropped,
/// the public defaults when none remains), on port 53.
pub fn upstreams_from_host(host_resolv_conf: &str) -> Vec<SocketAddr> {
    let filtered = crate::resolv::for_task(host_resolv_conf, false);
    crate::resolv::ipv4_nameservers(&filtered)
        .into_iter()
        .filter(|a| !a.is_loopback())
        .map(|a| SocketAddr::from((a, PORT)))
        .collect()
}

/// What one task's server needs to answer.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// The task's networks, in attachment order.
    pub networks: Vec<String>,
    /// Where unknown names go; empty: nowhere (SERVFAIL).
    pub upstreams: Vec<SocketAddr>,
}

/// The servers of all tasks and the records they share.
#[derive(Debug, Default)]
pub struct Dns {
    records: Arc<RwLock<Arc<Records>>>,
    /// The two sources the shared records are built from: the swarm's
    /// service records and the node-local networks' names.
    sources: Mutex<(Vec<NetworkRecords>, Vec<NetworkRecords>)>,
    servers: Mutex<HashMap<String, JoinSet<()>>>,
}

impl Dns {
    /// Replaces the swarm's records every server answers from, at once.
    pub fn update(&self, records: &ServiceRecords) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.0 = records.networks.clone();
        self.publish(&sources);
    }

    /// Replaces the names of the node-local networks, at once.
    pub fn set_local(&self, networks: Vec<NetworkRecords>) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if sources.1 == networks {
            return;
        }
        sources.1 = networks;
        self.publish(&sources);
    }

    /// Builds the shared records from both sources and swaps them in.
    fn publish(&self, sources: &(Vec<NetworkRecords>, Vec<NetworkRecords>)) {
        let all = ServiceRecords {
            networks: sources.0.iter().chain(&sources.1).cloned().collect(),
            ..ServiceRecords::default()
        };
        let next = Arc::new(Records::new(&all));
        match self.records.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// Whether `task` has a running server.
    pub fn is_running(&self, task: &str) -> bool {
        self.lock().contains_key(task)
    }

    /// Starts `task`'s server in the namespace at `netns` unless it runs:
    /// 127.0.0.11/32 on the namespace's `lo`, then UDP and TCP port 53 on
    /// it. Call it with the driver's state lock held (one start at a time
    /// per task).
    pub async fn ensure(&self, task: &str, netns: &Path, view: TaskView) -> Result<()> {
        if self.is_running(task) {
            return Ok(());
        }
        {
            let inner = Netlink::in_netns(netns).await?;
            let lo = inner.must_index("lo").await?;
            inner.ensure_address(lo, Ipv4Net::from(address())).await?;
        }
        let bind = SocketAddr::from((address(), PORT));
        let (udp, tcp) = netns::run_in(netns, move || {
            let udp = std::net::UdpSocket::bind(bind)
                .map_err(Error::io(format!("bind udp {bind} for the embedded DNS")))?;
            let tcp = std::net::TcpListener::bind(bind)
                .map_err(Error::io(format!("bind tcp {bind} for the embedded DNS")))?;
            for r in [udp.set_nonblocking(true), tcp.set_nonblocking(true)] {
                r.map_err(Error::io("make the embedded DNS sockets non-blocking"))?;
            }
            Ok((udp, tcp))
        })
        .await?;
        let udp = UdpSocket::from_std(udp).map_err(Error::io("register the DNS udp socket"))?;
        let tcp = TcpListener::from_std(tcp).map_err(Error::io("register the DNS tcp socket"))?;
        let ctx = Arc::new(Ctx {
            records: self.records.clone(),
            view,
        });
        let mut set = JoinSet::new();
        set.spawn(serve_udp(Arc::new(udp), ctx.clone()));
        set.spawn(serve_tcp(tcp, ctx));
        self.lock().insert(task.to_string(), set);
        tracing::debug!(task, "embedded DNS server started");
        Ok(())
    }

    /// Stops `task`'s server, if any; its sockets are closed when this
    /// returns (they pin the namespace).
    pub async fn stop(&self, task: &str) {
        let set = self.lock().remove(task);
        if let Some(mut set) = set {
            set.shutdown().await;
            tracing::debug!(task, "embedded DNS server stopped");
        }
    }

    /// Stops the servers of the tasks not in `keep`.
    pub async fn stop_except(&self, keep: &HashSet<String>) {
        let gone: Vec<String> = self
            .lock()
            .keys()
            .filter(|t| !keep.contains(*t))
            .cloned()
            .collect();
        for t in gone {
            self.stop(&t).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinSet<()>>> {
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One server's view of the world.
struct Ctx {
    records: Arc<RwLock<Arc<Records>>>,
    view: TaskView,
}

impl Ctx {
    fn local(&self, query: &Message) -> Outcome {
        let records = match self.records.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        answer::answer(query, &records, &self.view.networks, |a| {
            a.shuffle(&mut rand::thread_rng())
        })
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, ctx: Arc<Ctx>) {
    let mut forwards = JoinSet::new();
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        while forwards.try_join_next().is_some() {}
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(error = %e, "embedded DNS: udp receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let raw = buf[..n].to_vec();
        let Ok(query) = Message::from_vec(&raw) else {
            continue;
        };
        let reply = match ctx.local(&query) {
            Outcome::Drop => continue,
            Outcome::Answer(resp) => answer::encode_udp(&resp, &query),
            Outcome::Forward if forwards.len() < MAX_CONCURRENT => {
                let (sock, ctx) = (sock.clone(), ctx.clone());
                forwards.spawn(async move {
                    let bytes = match forward_udp(&ctx.view.upstreams, &raw, &query).await {
                        Some(b) => Some(b),
                        None => servfail(&query, true),
                    };
                    if let Some(b) = bytes {
                        let _ = sock.send_to(&b, peer).await;
                    }
                });
                continue;
            }
            Outcome::Forward => servfail(&query, true),
        };
        if let Some(b) = reply {
            if let Err(e) = sock.send_to(&b, peer).await {
                tracing::debug!(error = %e, %peer, "embedded DNS: udp send failed");
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "embedded DNS: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if conns.len() >= MAX_CONCURRENT {
            continue;
        }
        conns.spawn(serve_conn(stream, ctx.clone()));
    }
}

/// Answers the queries of one TCP client until it goes quiet or away.
async fn serve_conn(mut stream: TcpStream, ctx: Arc<Ctx>) {
    while let Some(raw) = read_framed(&mut stream, TCP_IDLE).await {
        let Ok(query) = Message::from_vec(&raw) else {
            return;
        };
        let reply = match ctx.local(&query) {
            Outcome::Drop => return,
            Outcome::Answer(resp) => resp.to_vec().ok(),
            Outcome::Forward => match forward_tcp(&ctx.view.upstreams, &raw, &query).await {
                Some(b) => Some(b),
                None => servfail(&query, false),
            },
        };
        let Some(bytes) = reply else { return };
        if write_framed(&mut stream, &bytes).await.is_err() {
            return;
        }
    }
}

fn servfail(query: &Message, udp: bool) -> Option<Vec<u8>> {
    let resp = answer::error(query, ResponseCode::ServFail);
    if udp {
        answer::encode_udp(&resp, query)
    } else {
        resp.to_vec().ok()
    }
}

/// Whether `bytes` answer `query` usefully: same ID, a response, and not a
/// server failure or refusal (then the next upstream is asked).
fn usable_answer(bytes: &[u8], query: &Message) -> bool {
    match Message::from_vec(bytes) {
        Ok(m) => {
            m.metadata.id == query.metadata.id
                && m.metadata.message_type == hickory_proto::op::MessageType::Response
                && !matches!(
                    m.metadata.response_code,
                    ResponseCode::ServFail | ResponseCode::Refused
                )
        }
        Err(_) => false,
    }
}

/// Relays `raw` to the upstreams over UDP, in order; the first usable
/// answer comes back as it was sent.
async fn forward_udp(upstreams: &[SocketAddr], raw: &[u8], query: &Message) -> Option<Vec<u8>> {
    for up in upstreams.iter().take(MAX_UPSTREAMS) {
        match timeout(FORWARD_TIMEOUT, udp_exchange(*up, raw, query)).await {
            Ok(Ok(Some(bytes))) => return Some(bytes),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::debug!(upstream = %up, error = %e, "DNS forward failed"),
            Err(_) => tracing::debug!(upstream = %up, "DNS forward timed out"),
        }
    }
    None
}

async fn udp_exchange(
    up: SocketAddr,
    raw: &[u8],
    query: &Message,
) -> std::io::Result<Option<Vec<u8>>> {
    let local: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(up).await?;
    sock.send(raw).await?;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = sock.recv(&mut buf).await?;
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if m.metadata.id != query.metadata.id {
            // A stray datagram: keep waiting for ours.
            continue;
        }
        let bytes = buf[..n].to_vec();
        return Ok(usable_answer(&bytes, query).then_some(bytes));
    }
}

/// Relays `raw` to the upstreams over TCP, in order.
async fn forward_tcp(upstreams: &[SocketAddr], raw: &[u8], query: &Message) -> Option<Vec<u8>> {
    for up in upstreams.iter().take(MAX_UPSTREAMS) {
        let exchange = async {
            let mut s = TcpStream::connect(up).await.ok()?;
            write_framed(&mut s, raw).await.ok()?;
            read_framed(&mut s, FORWARD_TIMEOUT).await
        };
        if let Ok(Some(bytes)) = timeout(FORWARD_TIMEOUT, exchange).await {
            if usable_answer(&bytes, query) {
                return Some(bytes);
            }
        }
    }
    None
}

/// One length-prefixed message, within `limit`; `None` at end of stream,
/// on error or on time-out.
async fn read_framed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    timeout(limit, async {
        let len = stream.read_u16().await.ok()?;
        let mut raw = vec![0u8; usize::from(len)];
        stream.read_exact(&mut raw).await.ok()?;
        Some(raw)
    })
    .await
    .ok()
    .flatten()
}

async fn write_framed(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("DNS message over 65535 bytes"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_address() {
        assert_eq!(address(), Ipv4Addr::new(127, 0, 0, 11));
    }

    #[test]
    fn upstreams_skip_localhost_and_default_to_public() {
        let host = "nameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\n";
        assert_eq!(
            upstreams_from_host(host),
            ["10.1.2.3:53".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            upstreams_from_host("nameserver 127.0.0.1\n"),
            [
                "8.8.8.8:53".parse::<SocketAddr>().unwrap(),
                "8.8.4.4:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn resolv_conf_detection() {
        assert!(resolv_conf_uses_embedded(
            "search x\nnameserver 127.0.0.11\noptions ndots:0\n"
        ));
        assert!(!resolv_conf_uses_embedded("nameserver 8.8.8.8\n"));
    }
}
