//! `endpoints.json` in a container's directory: the task's place on each
//! swarm network (name, ID, address, aliases, MAC) and its namespace path,
//! written when the task is attached, so that `container inspect` shows
//! `NetworkSettings` as dockerd does without asking the manager.

use std::net::Ipv4Addr;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;
use swarm::exec::Attachment;
use swarm::exec::TaskNetns;

/// The file name in the container's directory.
const FILE: &str = "endpoints.json";

/// One network endpoint of a task container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    /// The network's ID.
    pub network_id: String,
    /// The address with prefix length (`10.0.1.5/24`).
    pub address: String,
    /// The task's extra names on the network.
    pub aliases: Vec<String>,
    /// The interface's MAC address.
    pub mac: String,
    /// A random 64-hex ID for the endpoint, as libnetwork gives one.
    #[serde(default)]
    pub id: String,
    /// The network's gateway, where the container has one (the default
    /// bridge of a standalone container).
    #[serde(default)]
    pub gateway: String,
}

/// What `endpoints.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The task's network namespace file (dockerd's `SandboxKey`).
    pub sandbox: PathBuf,
    /// One entry per attachment, in interface order.
    pub endpoints: Vec<Endpoint>,
}

/// The interface's MAC, as the network driver sets it.
fn mac_of(cidr: &str) -> String {
    let ip: Option<Ipv4Addr> = cidr.split('/').next().and_then(|a| a.parse().ok());
    ip.map(|ip| {
        let m = swarm::exec::mac_for(ip);
        m.map(|b| format!("{b:02x}")).join(":")
    })
    .unwrap_or_default()
}

impl Endpoint {
    /// An endpoint on network `network` (ID `network_id`) with `address`
    /// (CIDR), a new endpoint ID and the MAC the driver gives the address.
    pub fn new(
        network: &str,
        network_id: &str,
        address: &str,
        aliases: Vec<String>,
        gateway: &str,
    ) -> Endpoint {
        Endpoint {
            network: network.to_string(),
            network_id: network_id.to_string(),
            address: address.to_string(),
            aliases,
            mac: mac_of(address),
            id: super::ids::random_hex(32),
            gateway: gateway.to_string(),
        }
    }
}

impl Endpoints {
    /// The endpoints of an attached task.
    pub fn of(netns: &TaskNetns, attachments: &[Attachment]) -> Endpoints {
        Endpoints {
            sandbox: netns.path.clone(),
            endpoints: attachments
                .iter()
                .map(|a| Endpoint {
                    network: a.network.name.clone(),
                    network_id: a.network.id.clone(),
                    address: a.address.clone(),
                    aliases: a.aliases.clone(),
                    mac: mac_of(&a.address),
                    id: super::ids::random_hex(32),
                    gateway: String::new(),
                })
                .collect(),
        }
    }

    /// These endpoints with the IDs `old` gave the same networks (a task
    /// moved between networks keeps the endpoints it stays on).
    pub fn keeping_ids(mut self, old: Option<&Endpoints>) -> Endpoints {
        for e in &mut self.endpoints {
            let same = old
                .into_iter()
                .flat_map(|o| &o.endpoints)
                .find(|o| o.network_id == e.network_id && o.address == e.address);
            if let Some(o) = same {
                e.id = o.id.clone();
            }
        }
        self
    }

    /// Writes them into `container_dir`.
    pub fn write(&self, container_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(container_dir.join(FILE), json)
    }

    /// Reads them from `container_dir`; `None` for a container with no
    /// networks (or from before the file existed).
    pub fn read(container_dir: &Path) -> Option<Endpoints> {
        let raw = std::fs::read(container_dir.join(FILE)).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_dockerd_macs() {
        let dir = tempfile::tempdir().unwrap();
        let att = Attachment {
            network: swarm::exec::NetworkSpec {
                id: "n1".into(),
                name: "appnet".into(),
                ..Default::default()
            },
            address: "10.0.1.5/24".into(),
            aliases: vec!["db".into()],
        };
        let netns = TaskNetns {
            path: "/x/netns/t1".into(),
            ..Default::default()
        };
        let e = Endpoints::of(&netns, &[att]);
        assert_eq!(e.endpoints[0].mac, "02:42:0a:00:01:05");
        e.write(dir.path()).unwrap();
        assert_eq!(Endpoints::read(dir.path()), Some(e));
        assert_eq!(Endpoints::read(&dir.path().join("missing")), None);
    }
}
