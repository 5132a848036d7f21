//! The driver's side of node-local networks: making and removing them goes
//! the crate's one way (desired state, diff, actions, record) under the
//! state lock, like everything else.

use ipnet::Ipv4Net;
use swarm::exec::LocalNetwork;
use swarm::exec::NodeSubnets;

use super::LocalRecord;
use crate::error::Result;
use crate::gwbridge;
use crate::netlink::Netlink;
use crate::resolv;
use crate::state::mac_for;
use crate::state::PlanError;
use crate::OverlayDriver;

impl OverlayDriver {
    /// Makes `net` real, or finds it made (a repeated call at every
    /// daemon start); a bridge deleted behind the driver's back is made
    /// again. Another network's bridge name is refused.
    pub(crate) async fn ensure_local(&self, net: &LocalNetwork) -> Result<()> {
        let rec = LocalRecord::parse(net)?;
        let mut current = self.state.lock().await;
        let clash = current
            .local_networks
            .values()
            .find(|n| n.id != rec.id && n.bridge == rec.bridge);
        if let Some(other) = clash {
            return Err(PlanError::InvalidLocalNetwork {
                network: rec.id.clone(),
                reason: format!("bridge {} belongs to network {}", rec.bridge, other.id),
            }
            .into());
        }
        let host = Netlink::here()?;
        let mac = host.mac(&rec.bridge).await?;
        let present = mac.is_some();
        if present && current.local_networks.get(&rec.id) == Some(&rec) {
            return Ok(());
        }
        // A link of that name the driver did not make (another interface
        // of the node, named by `com.docker.network.bridge.name`) is never
        // taken over, nor deleted with the network later. The driver's
        // bridges carry the MAC their gateway address gives (a crash may
        // have left one unrecorded: that one is taken back).
        if mac.is_some_and(|m| m != mac_for(rec.gateway)) {
            return Err(PlanError::InvalidLocalNetwork {
                network: rec.id.clone(),
                reason: format!("the node already has an interface named {}", rec.bridge),
            }
            .into());
        }
        let mut before = current.clone();
        if !present {
            before.local_networks.remove(&rec.id);
        }
        let mut after = before.clone();
        after.local_networks.insert(rec.id.clone(), rec);
        self.move_to(&host, &mut current, &before, after).await?;
        tracing::info!(network = %net.id, bridge = %net.bridge, "local network ready");
        Ok(())
    }

    /// Removes node-local network `id` unless a task is attached to it
    /// (`false`).
    pub(crate) async fn remove_local(&self, id: &str) -> Result<bool> {
        let mut current = self.state.lock().await;
        if !current.local_networks.contains_key(id) {
            return Ok(true);
        }
        if super::in_use(&current, id) {
            return Ok(false);
        }
        let host = Netlink::here()?;
        let before = current.clone();
        let mut after = before.clone();
        after.local_networks.remove(id);
        self.move_to(&host, &mut current, &before, after).await?;
        tracing::info!(network = %id, "local network removed");
        Ok(true)
    }

    /// What a new node-local network's subnet must not overlap: the
    /// node's routes (its bridges' included) and the gateway bridge's
    /// subnet, made or as it would be picked now.
    pub(crate) async fn local_subnets(&self) -> Result<NodeSubnets> {
        let host = Netlink::here()?;
        let routes: Vec<Ipv4Net> = host.ipv4_routes().await?;
        let egress = self.state.lock().await.egress.clone();
        let egress = match egress {
            Some(e) => Some(e),
            None => {
                let ns = resolv::ipv4_nameservers(&self.host_resolv()?);
                gwbridge::choose_egress(&routes, &ns)
            }
        };
        Ok(NodeSubnets {
            routes: routes.iter().map(ToString::to_string).collect(),
            gateway_bridge: egress.map(|e| e.subnet.to_string()),
        })
    }
}
