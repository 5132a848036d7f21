//! The node side of networking: what the executor asks of the network
//! driver (`netdrv`) for each task. Addresses come from the manager's
//! allocator; the driver only makes them real in the kernel.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use serde::Serialize;

use super::ExecError;

/// One swarm network as a node needs it to plumb a task into it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// The network's ID.
    pub id: String,
    /// Its name (`ingress`, `app_default`, ...).
    pub name: String,
    /// The subnet in CIDR form (`10.0.1.0/24`).
    pub subnet: String,
    /// The gateway address, without prefix (`10.0.1.1`).
    pub gateway: String,
    /// Interface MTU (dockerd's overlay default is 1450).
    pub mtu: u32,
    /// The routing-mesh network.
    pub ingress: bool,
    /// `--internal`: no route out.
    pub internal: bool,
    /// The VXLAN ID (4096 and up); 0: none allocated (no tunnel).
    #[serde(default)]
    pub vni: u32,
    /// `--opt encrypted`: traffic between nodes is sealed.
    #[serde(default)]
    pub encrypted: bool,
}

/// A task's place on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network.
    pub network: NetworkSpec,
    /// The task's address in CIDR form (`10.0.1.5/24`).
    pub address: String,
    /// Extra DNS names of the task on this network.
    pub aliases: Vec<String>,
}

/// The MAC dockerd gives an interface with this IPv4 address: `02:42` and
/// the four address bytes. The driver sets it; the container API shows it.
pub fn mac_for(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A task's network namespace, ready for its container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskNetns {
    /// The namespace file to join (`linux.namespaces[network].path`).
    pub path: PathBuf,
    /// `/etc/resolv.conf` for the container.
    pub resolv_conf: String,
    /// Interface name and address (CIDR) of each attachment, in order.
    pub interfaces: Vec<(String, String)>,
    /// The address (CIDR) and gateway of the interface on the node's
    /// gateway bridge, when the task has one: its way out of the node,
    /// and a standalone container's `bridge` network.
    pub egress: Option<(String, String)>,
    /// The address (CIDR) on each node-local bridge network the container
    /// is on, by network ID (see [`NetworkAttacher::attach_container`]).
    pub local: BTreeMap<String, String>,
}

/// A node-local bridge network (`docker network create` with the bridge
/// driver) as the node's driver makes it: a Linux bridge in the node's
/// namespace holding the gateway address, with masquerade for the way out
/// unless internal, and isolated from every other bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalNetwork {
    /// The network's ID.
    pub id: String,
    /// The bridge's name (`br-` and the start of the ID, or the
    /// `com.docker.network.bridge.name` option).
    pub bridge: String,
    /// The subnet in CIDR form.
    pub subnet: String,
    /// The gateway address, without prefix.
    pub gateway: String,
    /// Where containers' addresses come from (CIDR, inside the subnet);
    /// empty: the whole subnet.
    pub ip_range: String,
    /// `--internal`: no way out of the node and no way in.
    pub internal: bool,
    /// The bridge's and its ports' MTU; 0: 1500.
    pub mtu: u32,
}

/// The subnets the node's own networking uses, for a new node-local
/// network's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSubnets {
    /// The node's routes (CIDR), the default route aside.
    pub routes: Vec<String>,
    /// The gateway bridge's subnet (the default `bridge` network), made
    /// or as it would be picked now.
    pub gateway_bridge: Option<String>,
}

/// A standalone container's place on one node-local bridge network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAttachment {
    /// The network's ID (made with [`NetworkAttacher::ensure_local_network`]).
    pub network_id: String,
    /// The address asked for (`--ip`, without prefix); empty: the driver
    /// gives the lowest free one of the network's range, or the one the
    /// container already has there.
    pub address: String,
    /// The container's names on the network (its name, short ID and
    /// `--network-alias`es), answered by the embedded DNS server of every
    /// container on the same network.
    pub aliases: Vec<String>,
}

/// Every network of a standalone container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerNetworks {
    /// Node-local bridge networks, in order (first interfaces).
    pub local: Vec<LocalAttachment>,
    /// Attachable swarm networks (addresses from the swarm's allocator).
    pub swarm: Vec<Attachment>,
    /// On the node's default `bridge` (the gateway bridge), whatever else
    /// it is on.
    pub default_bridge: bool,
}

/// The names resolvable on one network: service names (to their VIP, or
/// to task addresses with `--endpoint-mode dnsrr`), `tasks.NAME` (to every
/// task address), task container names and network aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecords {
    /// The network's ID.
    pub network_id: String,
    /// Lower-case name to addresses, in a stable order.
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// The virtual IPs of the services on this network (not with
    /// `--endpoint-mode dnsrr`) and the tasks behind each, for the load
    /// balancer in the namespaces of the tasks on this network.
    #[serde(default)]
    pub vips: Vec<VipBackends>,
}

/// One service VIP on one network and the addresses connections to it are
/// spread across: its running (and, with a health check, healthy) tasks'
/// addresses on that network, in a stable order. Empty: nothing answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipBackends {
    /// The service's name, for rule comments and logs.
    pub service: String,
    /// The VIP, without prefix.
    pub vip: IpAddr,
    /// The serving tasks' addresses on the network.
    pub backends: Vec<IpAddr>,
}

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A port published in ingress mode (the routing mesh): every node forwards
/// `published` on all its addresses to `target` of one of the service's
/// serving tasks, through their addresses on the ingress network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressPort {
    /// The service's name, for rule comments and logs.
    pub service: String,
    /// The protocol.
    pub protocol: PortProtocol,
    /// The port on every node.
    pub published: u16,
    /// The port in the task.
    pub target: u16,
    /// The serving tasks' addresses on the ingress network, stable order.
    pub backends: Vec<IpAddr>,
}

/// A port a task publishes in host mode (`--publish mode=host`): only the
/// node it runs on forwards `published` to the task's `target`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPort {
    /// The protocol.
    pub protocol: PortProtocol,
    /// The port on the node.
    pub published: u16,
    /// The port in the task.
    pub target: u16,
}

/// An address on an overlay network that lives on another node: a task's,
/// or that node's routing-mesh address on the ingress network. The MAC
/// follows from the address ([`mac_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Peer {
    /// The address on the network.
    pub address: std::net::Ipv4Addr,
    /// The node's data-path address, where its VXLAN traffic goes.
    pub node: std::net::Ipv4Addr,
}

/// The remote addresses of one overlay network, for its VXLAN forwarding
/// table on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPeers {
    /// The network's ID.
    pub network_id: String,
    /// Its VXLAN ID.
    pub vni: u32,
    /// Addresses on other nodes, in a stable order.
    pub peers: Vec<Peer>,
    /// `--opt encrypted`: its traffic between nodes is sealed with the
    /// network keys.
    #[serde(default)]
    pub encrypted: bool,
}

/// The keys encrypted overlays seal with, as a node gets them (only a node
/// with a task on an encrypted network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkKeys {
    /// Every key frames are accepted under, oldest first.
    pub keys: Vec<crate::model::NetworkKey>,
    /// The ID of the key to seal with: the second newest, so that a new key
    /// reaches every node before anyone seals with it.
    pub primary: u32,
}

/// What the records say about the node they are sent to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalNode {
    /// Its data-path address (the VXLAN source); `None` outside a cluster.
    pub data_addr: Option<std::net::Ipv4Addr>,
    /// The cluster's VXLAN UDP port (`--data-path-port`, 4789 by default).
    pub data_port: u16,
    /// Its own address on the ingress network (CIDR), the routing mesh's
    /// source towards tasks on other nodes.
    pub ingress_address: Option<String>,
    /// The network keys, when this node has a task on an encrypted network.
    #[serde(default)]
    pub network_keys: Option<NetworkKeys>,
}

/// The service view of the cluster for this node's tasks: the names and
/// VIPs of each network, and the ports of the routing mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecords {
    /// One entry per network.
    pub networks: Vec<NetworkRecords>,
    /// Every port published in ingress mode, by any service.
    #[serde(default)]
    pub ingress: Vec<IngressPort>,
    /// The ingress network, when the swarm has one: a node forwards the
    /// routing mesh's ports through it even with no task of its own on it.
    #[serde(default)]
    pub ingress_network: Option<NetworkSpec>,
    /// Every overlay network's addresses on other nodes (the dispatcher
    /// computes them for the node it sends them to).
    #[serde(default)]
    pub peers: Vec<NetworkPeers>,
    /// The receiving node itself.
    #[serde(default)]
    pub local: LocalNode,
}

/// Gives standalone containers their place on attachable swarm networks:
/// an address from the manager's allocator, as swarmkit's network
/// attachment tasks do (see `controlapi::attachment`).
#[async_trait]
pub trait AttachmentAllocator: Send + Sync {
    /// Container `container_id`'s attachment to `network` (name, ID or ID
    /// prefix) with `aliases`, made or found.
    async fn attach(
        &self,
        container_id: &str,
        network: &str,
        aliases: &[String],
    ) -> crate::error::Result<Attachment>;
    /// Gives back every address the container holds.
    async fn detach(&self, container_id: &str) -> crate::error::Result<()>;
    /// The subnets of the swarm's networks, as far as this node knows
    /// them (a manager knows all), for node-local networks to avoid.
    async fn network_subnets(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Makes tasks' networks real on this node.
#[async_trait]
pub trait NetworkAttacher: Send + Sync {
    /// Creates (or finds, after a restart) task `task_id`'s network
    /// namespace: loopback up, one interface per attachment with its
    /// address and MTU, and a route out of the node unless every network is
    /// internal. Networks are set up on first use.
    async fn attach(
        &self,
        task_id: &str,
        attachments: &[Attachment],
    ) -> Result<TaskNetns, ExecError>;
    /// Removes the task's namespace and interfaces; a network no task uses
    /// any more is torn down. Idempotent.
    async fn detach(&self, task_id: &str) -> Result<(), ExecError>;
    /// Forwards the task's host-mode published ports on this node to it
    /// (after [`NetworkAttacher::attach`]; [`NetworkAttacher::detach`]
    /// removes them). A port this node already uses fails with dockerd's
    /// text and the task is rejected.
    async fn publish_host_ports(&self, task_id: &str, ports: &[HostPort]) -> Result<(), ExecError> {
        let _ = (task_id, ports);
        Ok(())
    }
    /// Waits, at most `limit`, until no load balancer on this node (a VIP
    /// or a published port) sends new connections to `task_id` any more:
    /// the manager takes a task off the records when it is to stop, and
    /// the executor calls this before stopping its container, so a scale
    /// down or an update drops no connection (dockerd sleeps 2 s instead).
    async fn wait_unbalanced(&self, task_id: &str, limit: std::time::Duration) {
        let _ = (task_id, limit);
    }
    /// Makes node-local bridge network `net` real (or finds it made, after
    /// a restart): its bridge, and its rules among all the networks'.
    async fn ensure_local_network(&self, net: &LocalNetwork) -> Result<(), ExecError> {
        let _ = net;
        Err(ExecError::Unsupported)
    }
    /// Removes node-local bridge network `id` with its bridge and rules;
    /// `Ok(false)` and nothing removed while a container is attached to
    /// it. Unknown networks are no error.
    async fn remove_local_network(&self, id: &str) -> Result<bool, ExecError> {
        let _ = id;
        Ok(true)
    }
    /// What a new node-local network's subnet must not overlap.
    async fn local_subnets_in_use(&self) -> Result<NodeSubnets, ExecError> {
        Ok(NodeSubnets::default())
    }
    /// [`NetworkAttacher::attach`] for a standalone container, which may
    /// also be on node-local bridge networks: with a non-internal one it
    /// leaves the node through that network's bridge instead of the
    /// gateway bridge (unless it is on the default `bridge` too). A
    /// repeated call moves it onto the networks given, addresses kept.
    async fn attach_container(
        &self,
        container_id: &str,
        networks: &ContainerNetworks,
    ) -> Result<TaskNetns, ExecError> {
        if !networks.local.is_empty() {
            return Err(ExecError::Unsupported);
        }
        self.attach(container_id, &networks.swarm).await
    }
    /// Removes what belongs to tasks not in `keep` (left from a crash).
    async fn prune(&self, keep: &HashSet<String>) -> Result<(), ExecError>;
    /// Replaces the names the embedded DNS answers in tasks' namespaces: a
    /// task resolves only names of the networks it is attached to.
    async fn update_dns(&self, records: &ServiceRecords) -> Result<(), ExecError> {
        let _ = records;
        Ok(())
    }
}
