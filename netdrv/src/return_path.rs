//! The way back of routing-mesh connections inside a task's namespace, so
//! that the task sees the client's own address (moby issue 25526).
//!
//! The ingress sandbox that takes a connection DNATs it to a task's address
//! on the ingress network and keeps the client's address as the source (see
//! [`crate::ingress`]). The task's answer to that address would follow its
//! default route out of the gateway bridge of whatever node it runs on, and
//! never meet the sandbox whose translation it has to retrace. So the task
//! sends it back where the connection came from, at layer 2:
//! - every frame arriving on the ingress interface puts the low 32 bits of
//!   its source MAC in the packet mark, and the whole MAC in the `peers`
//!   map under those bits (bounded: an entry per sandbox or task that ever
//!   sent one, at most [`PEERS`]);
//! - a new connection arriving there keeps that mark in conntrack, and its
//!   replies get it back after routing;
//! - at the egress hook of the gateway bridge interface a marked frame is
//!   readdressed to the MAC its connection came from and leaves by the
//!   ingress interface instead (`fwd`): to this node's sandbox on its
//!   bridge, or over VXLAN to another node's;
//! - TCP's MSS is clamped to the ingress interface's MTU both ways, since
//!   the answers leave through it although the route says otherwise.
//!
//! The tables are written in nft's own syntax: the JSON of nft 1.0.6
//! (Debian 12) has no map statement. They live and die with the namespace.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::process::Stdio;

use nftables::helper::NftablesError;

use crate::error::Result;
use crate::netns;
use crate::state::Link;
use crate::state::TaskRecord;

/// The tables' name, in families `netdev` and `ip`.
pub const TABLE: &str = "shoal_return";
/// How many senders the `peers` map remembers.
pub const PEERS: u32 = 1024;
/// IPv4 and TCP headers without options: the MSS is the MTU less these.
const HEADERS: u32 = 40;

/// What one task's tables need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPath {
    /// The task's interface on the ingress network.
    pub inbound: String,
    /// Its MAC, the source of the readdressed frames.
    pub inbound_mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
    /// The task's interface on the gateway bridge (its default route).
    pub egress: String,
}

impl ReturnPath {
    /// The tables `task` needs when `ingress` is the ingress network's ID:
    /// `None` unless it is on that network and has a way out.
    pub fn for_task(task: &TaskRecord, ingress: &str) -> Option<ReturnPath> {
        let inbound = task
            .interfaces
            .iter()
            .find(|i| matches!(&i.link, Link::Network { id, .. } if id == ingress))?;
        let egress = task
            .interfaces
            .iter()
            .find(|i| matches!(i.link, Link::Egress { .. }))?;
        Some(ReturnPath {
            inbound: inbound.name.clone(),
            inbound_mac: inbound.mac,
            mtu: inbound.mtu,
            egress: egress.name.clone(),
        })
    }

    /// The nft script that replaces both tables with these.
    pub fn to_script(&self) -> String {
        let (i, e) = (&self.inbound, &self.egress);
        let mac = self
            .inbound_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let mss = self.mtu.saturating_sub(HEADERS);
        let mut s = String::new();
        for family in ["netdev", "ip"] {
            // Declared then deleted: a missing table is no error.
            let _ = writeln!(s, "table {family} {TABLE}\ndelete table {family} {TABLE}");
        }
        let _ = writeln!(
            s,
            "table netdev {TABLE} {{
  map peers {{ type mark : ether_addr; size {PEERS}; flags dynamic; }}
  chain inbound {{
    type filter hook ingress device \"{i}\" priority 0; policy accept;
    meta mark set @ll,64,32 add @peers {{ meta mark : ether saddr }}
  }}
  chain outbound {{
    type filter hook egress device \"{e}\" priority 0; policy accept;
    meta mark != 0 ether daddr set meta mark map @peers ether saddr set {mac} fwd to \"{i}\"
  }}
}}
table ip {TABLE} {{
  chain prerouting {{
    type filter hook prerouting priority 0; policy accept;
    iifname \"{i}\" ct state new ct mark set meta mark
    iifname \"{i}\" tcp flags syn tcp option maxseg size > {mss} tcp option maxseg size set {mss}
  }}
  chain postrouting {{
    type filter hook postrouting priority 0; policy accept;
    ct direction reply ct mark != 0 meta mark set ct mark
    ct direction reply ct mark != 0 tcp flags syn tcp option maxseg size > {mss} tcp option maxseg size set {mss}
  }}
}}"
        );
        s
    }
}

/// Replaces the tables in the namespace at `netns` (`nft` is forked from a
/// thread inside it, so it inherits it).
pub async fn apply(netns: &Path, path: &ReturnPath) -> Result<()> {
    let script = path.to_script();
    netns::run_in(netns, move || Ok(run_nft(&script)?)).await
}

/// Whether this kernel takes a return path's rules: the netdev egress hook
/// (Linux 5.16 and later) with `fwd` in it. Tried in the caller's
/// namespace on `lo`, added and deleted in one transaction, so nothing is
/// left either way.
pub fn kernel_takes_it() -> bool {
    let probe = format!(
        "table netdev {TABLE}_probe {{
  map peers {{ type mark : ether_addr; size 1; flags dynamic; }}
  chain outbound {{
    type filter hook egress device \"lo\" priority 0; policy accept;
    meta mark != 0 ether daddr set meta mark map @peers fwd to \"lo\"
  }}
}}
delete table netdev {TABLE}_probe"
    );
    match run_nft(&probe) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "this kernel cannot send routing-mesh answers back by layer 2: tasks see the mesh's address instead of the client's");
            false
        }
    }
}

/// `nft -f -` with `script` on its standard input.
fn run_nft(script: &str) -> std::result::Result<(), NftablesError> {
    let failed = |inner| NftablesError::NftExecution {
        program: "nft".into(),
        inner,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(failed)?;
    }
    let out = child.wait_with_output().map_err(failed)?;
    if out.status.success() {
        return Ok(());
    }
    Err(NftablesError::NftFailed {
        program: "nft".into(),
        hint: "applying a task's return path".to_string(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Interface;

    fn iface(name: &str, link: Link, mtu: u32) -> Interface {
        Interface {
            name: name.to_string(),
            address: "10.0.0.5/24".parse().unwrap(),
            mtu,
            mac: [2, 0x42, 10, 0, 0, 5],
            peer: format!("v-{name}"),
            link,
        }
    }

    fn task(interfaces: Vec<Interface>) -> TaskRecord {
        TaskRecord {
            interfaces,
            resolv_conf: String::new(),
            names: Default::default(),
        }
    }

    fn on(id: &str) -> Link {
        Link::Network {
            id: id.to_string(),
            bridge: "br".to_string(),
        }
    }

    #[test]
    fn only_a_task_on_the_ingress_network_with_a_way_out_gets_one() {
        let egress = iface(
            "eth2",
            Link::Egress {
                gateway: "172.18.0.1".parse().unwrap(),
            },
            1500,
        );
        let both = task(vec![
            iface("eth0", on("app"), 1450),
            iface("eth1", on("ingress"), 1450),
            egress.clone(),
        ]);
        assert_eq!(
            ReturnPath::for_task(&both, "ingress"),
            Some(ReturnPath {
                inbound: "eth1".into(),
                inbound_mac: [2, 0x42, 10, 0, 0, 5],
                mtu: 1450,
                egress: "eth2".into(),
            })
        );
        assert_eq!(ReturnPath::for_task(&both, "other"), None);
        let no_way_out = task(vec![iface("eth0", on("ingress"), 1450)]);
        assert_eq!(ReturnPath::for_task(&no_way_out, "ingress"), None);
    }

    #[test]
    fn the_script_replaces_both_tables_and_clamps_to_the_ingress_mtu() {
        let s = ReturnPath {
            inbound: "eth1".into(),
            inbound_mac: [2, 0x42, 10, 0, 0, 5],
            mtu: 1450,
            egress: "eth2".into(),
        }
        .to_script();
        let deletes = s.find("delete table ip shoal_return").unwrap();
        let creates = s.find("table ip shoal_return {").unwrap();
        assert!(deletes < creates, "{s}");
        assert!(s.contains("hook ingress device \"eth1\""), "{s}");
        assert!(s.contains("hook egress device \"eth2\""), "{s}");
        assert!(
            s.contains("ether saddr set 02:42:0a:00:00:05 fwd to \"eth1\""),
            "{s}"
        );
        assert_eq!(s.matches("maxseg size set 1410").count(), 2, "{s}");
    }
}
