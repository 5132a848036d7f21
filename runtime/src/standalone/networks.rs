//! Standalone containers and node-local networks: creating and removing
//! the networks (the records in [`crate::networks`], the bridges through
//! the node's network driver), what a container is attached to when it
//! starts, and `docker network connect/disconnect`.
//!
//! A container's networks are its network mode's (`HostConfig.NetworkMode`:
//! the default `bridge`, a node-local network or an attachable swarm
//! network) and every other network its `NetworkingConfig.EndpointsConfig`
//! names: `docker network connect` adds an entry there, `disconnect` takes
//! it away, so the record says where a container goes at its next start.
//! As under dockerd, a container holds an address only while it runs, and a
//! network can be removed while stopped containers still name it (their
//! next start fails).

use std::collections::HashMap;

use swarm::exec::ContainerNetworks;
use swarm::exec::LocalAttachment;
use swarm::exec::TaskNetns;
use swarm::model::api;

use super::error::Error;
use super::error::Result;
use super::net_events;
use super::record::Record;
use super::spec::NetworkMode;
use super::Standalone;
use crate::exec::endpoints::Endpoint;
use crate::networks;
use crate::networks::pool::InUse;
use crate::networks::Network;
use crate::view::ContainerInfo;

/// The node-local networks a container starts on, with the endpoint
/// settings it asked for on each.
pub(super) struct LocalPlan {
    /// The networks, the network mode's first.
    pub networks: Vec<(Network, api::EndpointSettings)>,
}

/// The aliases dockerd shows and answers for a container on a
/// user-defined network: the ones asked for, then its short ID.
fn local_aliases(id: &str, ep: &api::EndpointSettings) -> Vec<String> {
    let mut out: Vec<String> = ep.aliases.clone().unwrap_or_default();
    let short: String = id.chars().take(12).collect();
    if !out.contains(&short) {
        out.push(short);
    }
    out
}

/// The address `ep` asks for (`--ip`), if any.
fn asked_address(ep: &api::EndpointSettings) -> Option<String> {
    ep.ipam_config
        .as_ref()
        .and_then(|c| c.ipv4_address.clone())
        .filter(|a| !a.is_empty())
}

fn endpoints_config(record: &Record) -> HashMap<String, api::EndpointSettings> {
    record
        .config
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default()
}

impl Standalone {
    /// The node's local networks.
    pub fn networks(&self) -> &networks::LocalNetworks {
        &self.networks
    }

    /// `docker network create` with the bridge driver: the network is
    /// planned (addresses clear of the node's routes, the gateway bridge,
    /// the swarm's networks and the other local networks), its bridge made,
    /// then its record written.
    pub async fn create_network(
        &self,
        req: &api::NetworkCreateRequest,
    ) -> networks::Result<Network> {
        let Some(net) = &self.net else {
            return Err(networks::Error::Unsupported(
                "this daemon runs without a network driver".into(),
            ));
        };
        // One create or remove at a time: the checks see the others.
        let _op = self.network_op.lock().await;
        let node = net.local_subnets_in_use().await?;
        let parse = |s: &String| s.parse::<ipnet::Ipv4Net>().ok();
        let mut in_use = InUse {
            networks: node.gateway_bridge.iter().filter_map(parse).collect(),
            elsewhere: node.routes.iter().filter_map(parse).collect(),
        };
        if let Some(s) = &self.swarm_nets {
            in_use
                .elsewhere
                .extend(s.network_subnets().await.iter().filter_map(parse));
        }
        let n = self
            .networks
            .plan(req, &in_use, time::OffsetDateTime::now_utc())?;
        net.ensure_local_network(&n.spec()).await?;
        if let Err(e) = self.networks.insert(n.clone()) {
            if let Err(u) = net.remove_local_network(&n.id).await {
                tracing::warn!(network = %n.id, error = %u, "undoing a network create");
            }
            return Err(e);
        }
        net_events::local_network_event(&self.ctd, "create", &n);
        Ok(n)
    }

    /// `docker network rm` of a local network: refused while a container
    /// is attached to it, as dockerd refuses it.
    pub async fn remove_network(&self, n: &Network) -> networks::Result<()> {
        let _op = self.network_op.lock().await;
        if let Some(net) = &self.net {
            if !net.remove_local_network(&n.id).await? {
                return Err(networks::Error::ActiveEndpoints {
                    name: n.name.clone(),
                    id: n.id.clone(),
                });
            }
        }
        self.networks.delete(&n.id)?;
        net_events::local_network_event(&self.ctd, "destroy", n);
        Ok(())
    }

    /// Makes every recorded local network again on the node (at the
    /// daemon's start; after a reboot their bridges are gone).
    pub(super) async fn restore_networks(&self) {
        let Some(net) = &self.net else {
            return;
        };
        for n in self.networks.list() {
            if let Err(e) = net.ensure_local_network(&n.spec()).await {
                tracing::warn!(network = %n.name, error = %e, "making a local network again");
            }
        }
    }

    /// The local network the container's network mode names, if it is
    /// one.
    pub(super) fn mode_network(&self, mode: &NetworkMode) -> Option<Network> {
        match mode {
            NetworkMode::Network(n) => self.networks.get(n),
            _ => None,
        }
    }

    /// The local networks `record`'s container starts on, checked: each
    /// exists, and an address is asked for only where dockerd allows it.
    pub(super) fn local_plan(&self, record: &Record, mode: &NetworkMode) -> Result<LocalPlan> {
        let eps = endpoints_config(record);
        if mode == &NetworkMode::Bridge {
            let on_bridge = eps.get("bridge").or_else(|| eps.get("default"));
            if on_bridge.and_then(asked_address).is_some() {
                return Err(Error::Invalid(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
        }
        let primary = self.mode_network(mode);
        let mut out: Vec<(Network, api::EndpointSettings)> = Vec::new();
        if let (Some(n), NetworkMode::Network(key)) = (&primary, mode) {
            out.push((n.clone(), eps.get(key).cloned().unwrap_or_default()));
        }
        let mut keys: Vec<&String> = eps.keys().collect();
        keys.sort();
        for key in keys {
            let builtin = networks::PREDEFINED.contains(&key.as_str()) || key == "default";
            if builtin || NetworkMode::Network(key.clone()) == *mode {
                continue;
            }
            let Some(n) = self.networks.get(key) else {
                // Not a local network: the swarm network of the mode, by
                // another of its names, or one that is gone.
                if primary.is_none() && matches!(mode, NetworkMode::Network(_)) {
                    continue;
                }
                return Err(Error::NoSuchNetwork(key.clone()));
            };
            if !out.iter().any(|(o, _)| o.id == n.id) {
                out.push((n, eps[key].clone()));
            }
        }
        for (n, ep) in &out {
            if asked_address(ep).is_some() && !n.user_subnet {
                return Err(Error::Invalid(
                    "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                ));
            }
        }
        Ok(LocalPlan { networks: out })
    }

    /// What the node's driver attaches the container to.
    pub(super) fn container_networks(
        &self,
        id: &str,
        name: &str,
        plan: &LocalPlan,
        mode: &NetworkMode,
        swarm: Vec<swarm::exec::Attachment>,
    ) -> ContainerNetworks {
        let local = plan
            .networks
            .iter()
            .map(|(n, ep)| {
                let mut names = vec![name.to_string()];
                names.extend(local_aliases(id, ep));
                LocalAttachment {
                    network_id: n.id.clone(),
                    address: asked_address(ep).unwrap_or_default(),
                    aliases: names,
                }
            })
            .collect();
        ContainerNetworks {
            local,
            swarm,
            default_bridge: *mode == NetworkMode::Bridge,
        }
    }

    /// The endpoints `container inspect` and `network inspect` show for
    /// the container's local networks, as attached in `ns`.
    pub(super) fn local_endpoints(id: &str, plan: &LocalPlan, ns: &TaskNetns) -> Vec<Endpoint> {
        plan.networks
            .iter()
            .filter_map(|(n, ep)| {
                let address = ns.local.get(&n.id)?;
                Some(Endpoint::new(
                    &n.name,
                    &n.id,
                    address,
                    local_aliases(id, ep),
                    &n.gateway,
                ))
            })
            .collect()
    }

    /// `docker network connect` of a standalone container and a local
    /// network: recorded for its next starts, and made at once when it
    /// runs.
    pub async fn connect(
        self: &std::sync::Arc<Self>,
        c: &ContainerInfo,
        n: &Network,
        ep: api::EndpointSettings,
    ) -> Result<()> {
        let live = self.live(&c.id);
        let _op = live.op.lock().await;
        let mut record = self.record(&c.id)?;
        let mode = NetworkMode::of(&record.host_config())?;
        if matches!(mode, NetworkMode::Host | NetworkMode::None) {
            return Err(Error::Invalid(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        let plan = self.local_plan(&record, &mode)?;
        if plan.networks.iter().any(|(o, _)| o.id == n.id) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                record.name, n.name
            )));
        }
        let before = record.clone();
        let cfg = record
            .config
            .networking_config
            .get_or_insert_with(Default::default);
        cfg.endpoints_config
            .get_or_insert_with(Default::default)
            .insert(n.name.clone(), ep);
        self.apply_networks(c, &mut record, &mode, before).await
    }

    /// `docker network disconnect` of a standalone container and a local
    /// network it is on (not its network mode's).
    pub async fn disconnect(
        self: &std::sync::Arc<Self>,
        c: &ContainerInfo,
        n: &Network,
    ) -> Result<()> {
        let live = self.live(&c.id);
        let _op = live.op.lock().await;
        let mut record = self.record(&c.id)?;
        let mode = NetworkMode::of(&record.host_config())?;
        if self.mode_network(&mode).is_some_and(|m| m.id == n.id) {
            return Err(Error::Unsupported(format!(
                "disconnecting a container from the network of its network mode ({}) is not supported by this daemon",
                n.name
            )));
        }
        let before = record.clone();
        let mut eps = endpoints_config(&record);
        let keys: Vec<String> = eps
            .keys()
            .filter(|k| self.networks.get(k).is_some_and(|o| o.id == n.id))
            .cloned()
            .collect();
        if keys.is_empty() {
            return Err(Error::Failed(format!(
                "container {} is not connected to network {}",
                c.id, n.name
            )));
        }
        for k in keys {
            eps.remove(&k);
        }
        record
            .config
            .networking_config
            .get_or_insert_with(Default::default)
            .endpoints_config = Some(eps);
        self.apply_networks(c, &mut record, &mode, before).await?;
        // A running container's leaving is told by its move; dockerd tells
        // a stopped one's too.
        if !c.state.status.is_running() {
            let left = net_events::Joined::new(&n.id, &n.name, networks::BRIDGE_DRIVER);
            net_events::network_event(&self.ctd, "disconnect", &c.id, &left);
        }
        Ok(())
    }

    /// Saves `record` with its new networks and, when the container runs,
    /// moves it onto them; on failure the record `before` comes back.
    async fn apply_networks(
        &self,
        c: &ContainerInfo,
        record: &mut Record,
        mode: &NetworkMode,
        before: Record,
    ) -> Result<()> {
        let dir = self.dir(&c.id);
        self.local_plan(record, mode)?;
        record
            .save(&dir)
            .map_err(Error::files("write the container's record"))?;
        if !c.state.status.is_running() {
            return Ok(());
        }
        if let Err(e) = self.attach_network(&c.id, mode, record, true).await {
            if let Err(u) = before.save(&dir) {
                tracing::warn!(container = %c.id, error = %u, "restoring a container's record");
            }
            if let Err(u) = self.attach_network(&c.id, mode, &before, true).await {
                tracing::warn!(container = %c.id, error = %u, "restoring a container's networks");
            }
            return Err(e);
        }
        Ok(())
    }
}
