//! What a node keeps about its membership across restarts (no secrets:
//! keys live in the key stores).

use std::path::Path;

use serde::Deserialize;
use serde::Serialize;

use crate::ca::identity::Role;
use crate::error::Error;
use crate::error::Result;

fn manager() -> Role {
    Role::Manager
}

/// This node's membership facts, in `<data-root>/swarm/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// This node's swarm ID.
    pub node_id: String,
    /// The raft member ID.
    pub raft_id: u64,
    /// `--listen-addr` (host:port).
    pub listen_addr: String,
    /// `--advertise-addr` (host:port).
    pub advertise_addr: String,
    /// `--data-path-addr`.
    pub data_path_addr: String,
    /// Manager or worker (what its certificate says).
    #[serde(default = "manager")]
    pub role: Role,
    /// The managers a worker reaches (`ip:port`), the latest it heard of.
    #[serde(default)]
    pub remotes: Vec<String>,
    /// The cluster's ID.
    #[serde(default)]
    pub cluster_id: String,
    /// The cluster's CA generation this node's certificate belongs to.
    #[serde(default)]
    pub ca_generation: u64,
}

impl NodeState {
    /// Reads the state under `swarm_dir`; `None` outside any swarm.
    pub fn load(swarm_dir: &Path) -> Result<Option<NodeState>> {
        match std::fs::read(swarm_dir.join("state.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::internal(format!("swarm state: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(format!("swarm state: {e}"))),
        }
    }

    /// Writes the state under `swarm_dir`, durable on return.
    pub fn save(&self, swarm_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::internal(e.to_string()))?;
        crate::raft::encryption::write_durable(&swarm_dir.join("state.json"), &bytes)
            .map_err(|e| Error::internal(format!("swarm state: {e}")))
    }

    /// The IP part of the advertise address.
    pub fn advertise_ip(&self) -> String {
        crate::manager::init::ip_of(&self.advertise_addr)
    }

    /// What the agent reports of where this node is reached.
    pub fn node_addrs(&self) -> crate::agent::NodeAddrs {
        let addr = self.advertise_ip();
        // Given as an IP (the CLI's usual form) or as ip:port.
        let data = match self.data_path_addr.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => crate::manager::init::ip_of(&self.data_path_addr),
        };
        crate::agent::NodeAddrs {
            data_addr: if data.is_empty() { addr.clone() } else { data },
            addr,
        }
    }
}
