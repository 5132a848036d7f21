//! Swarm-scoped networks: create (allocated at once, so the first inspect
//! shows the subnet), inspect, list and remove, with dockerd's texts.

use super::resolve::resolve;
use crate::allocator::ipam;
use crate::allocator::network as alloc;
use crate::allocator::ports;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api;
use crate::model::Network;
use crate::model::Service;
use crate::model::StoreObject;
use crate::model::Task;
use crate::store::ReadTx;
use crate::store::Store;

/// The drivers a swarm network may use.
const SWARM_DRIVERS: &[&str] = &["overlay"];

/// libnetwork's plain error for a bad address: dockerd answers it with a
/// 500; shoal keeps the text and answers 400 (see
/// api-fixtures/KNOWN_DIFFERENCES.md).
fn go_error(msg: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

/// Checks the IPAM part of a create request (dockerd's texts).
fn validate_ipam(ipam: Option<&api::Ipam>) -> Result<()> {
    let configs = ipam.and_then(|i| i.config.as_ref());
    let any_subnet = configs
        .into_iter()
        .flatten()
        .any(|c| !c.subnet.as_deref().unwrap_or("").is_empty());
    for c in configs.into_iter().flatten() {
        let subnet = c.subnet.as_deref().unwrap_or("");
        // No subnet asks for one from the pools, which only works when no
        // entry names a subnet and this one names nothing inside one
        // either; otherwise the empty subnet is read, and refused, as
        // dockerd reads it.
        let names_addresses = [&c.ip_range, &c.gateway]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
            || c.auxiliary_addresses
                .as_ref()
                .is_some_and(|a| !a.is_empty());
        let parsed = if subnet.is_empty() && !any_subnet && !names_addresses {
            None
        } else {
            let (_, s) = ipam::parse_cidr(subnet)
                .map_err(|e| go_error(format!("Invalid subnet {subnet} : {e}")))?;
            Some(s)
        };
        if let Some(r) = c.ip_range.as_deref().filter(|r| !r.is_empty()) {
            let (_, range) =
                ipam::parse_cidr(r).map_err(|e| go_error(format!("Invalid range {r} : {e}")))?;
            if parsed.is_some_and(|s| !s.contains(range.base) || range.prefix < s.prefix) {
                return Err(Error::invalid(format!(
                    "ipam configuration: subnet {subnet} does not contain range {r}"
                )));
            }
        }
        if let Some(g) = c.gateway.as_deref().filter(|g| !g.is_empty()) {
            let ip = ipam::parse_ip(g).ok_or_else(|| {
                Error::invalid(format!("ipam configuration: invalid gateway {g}"))
            })?;
            if parsed.is_some_and(|s| !s.contains(ip)) {
                return Err(Error::invalid(format!(
                    "ipam configuration: subnet {subnet} does not contain gateway {g}"
                )));
            }
        }
    }
    Ok(())
}

/// Checks a create request as dockerd and swarmkit do.
pub fn validate(req: &api::NetworkCreateRequest) -> Result<()> {
    if req.name.is_empty() {
        return Err(Error::invalid("meta: name must be provided"));
    }
    let driver = req.driver.as_deref().unwrap_or("overlay");
    // A driver no node knows is looked up as a plugin first, as dockerd does.
    const BUILTIN: &[&str] = &["overlay", "bridge", "host", "null", "macvlan", "ipvlan"];
    if !BUILTIN.contains(&driver) {
        return Err(Error::new(
            crate::error::ErrorKind::NotFound,
            format!("plugin \"{driver}\" not found"),
        ));
    }
    if !SWARM_DRIVERS.contains(&driver) {
        return Err(Error::invalid(format!(
            "network driver {driver} is not supported for swarm networks"
        )));
    }
    if req.ingress == Some(true) && req.attachable == Some(true) {
        return Err(Error::invalid("ingress network cannot be attachable"));
    }
    validate_ipam(req.ipam.as_ref())
}

/// `POST /networks/create` for a swarm network; returns the new ID.
pub async fn create(store: &Store, mut req: api::NetworkCreateRequest) -> Result<String> {
    if req.driver.as_deref().unwrap_or("").is_empty() {
        req.driver = Some("overlay".into());
    }
    // dockerd names the default IPAM driver in the spec when the request
    // has an IPAM section that names none.
    if let Some(ipam) = req.ipam.as_mut() {
        if ipam.driver.as_deref().unwrap_or("").is_empty() {
            ipam.driver = Some("default".into());
        }
    }
    validate(&req)?;
    let n = alloc::new_network(req);
    let id = n.id().to_string();
    store
        .update(|tx| {
            let name = n.api.name.clone().unwrap_or_default();
            if tx.name_taken::<Network>(&name, "") {
                return Err(Error::new(
                    ErrorKind::NameConflict,
                    format!("network with name {name} already exists"),
                ));
            }
            let others = tx.list::<Network>();
            if alloc::is_ingress(&n) {
                if let Some(ing) = others.iter().find(|o| alloc::is_ingress(o)) {
                    return Err(Error::already_exists(format!(
                        "ingress network ({}) is already present",
                        ing.id()
                    )));
                }
            }
            let mut n = n.clone();
            alloc::allocate_network(&others, tx.cluster().as_ref(), &mut n)?;
            tx.create(n)
        })
        .await?;
    Ok(id)
}

/// `GET /networks/{id}` (ID, name or ID prefix).
pub fn get(store: &Store, input: &str) -> Result<Network> {
    store.view(|tx| resolve::<Network>(tx, input))
}

/// `GET /networks` (swarm networks only).
/// One node an overlay network spans, as `docker network inspect` lists
/// it under `Peers`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct NetworkPeer {
    /// The node's name on the overlay (dockerd: hostname and a short ID).
    pub name: String,
    /// Its data-path address.
    pub ip: String,
}

/// The nodes `network_id` spans: those holding a task address on it, and
/// for the ingress network every node with its routing-mesh address.
pub fn peers(store: &Store, network_id: &str) -> Vec<NetworkPeer> {
    store.view(|v| {
        let t = v.tables();
        let ingress = t.get::<Network>(network_id).is_some_and(alloc::is_ingress);
        let mut on: std::collections::BTreeSet<&str> = t
            .iter::<Task>()
            .filter(|task| crate::allocator::vip::holds_addresses(task))
            .filter(|task| task.networks.iter().any(|a| a.network_id == network_id))
            .filter_map(|task| task.node_id())
            .collect();
        let nodes: Vec<&crate::model::Node> = t.iter::<crate::model::Node>().collect();
        if ingress {
            on.extend(
                nodes
                    .iter()
                    .filter(|n| n.ingress_address.is_some())
                    .filter_map(|n| n.api.id.as_deref()),
            );
        }
        let mut out: Vec<NetworkPeer> = nodes
            .iter()
            .filter(|n| n.api.id.as_deref().is_some_and(|id| on.contains(id)))
            .filter_map(|n| {
                let id = n.api.id.as_deref()?;
                let ip = crate::dispatcher::records::node_data_addr(n)?;
                let short: String = id.chars().take(12).collect();
                Some(NetworkPeer {
                    name: format!("{}-{short}", super::node::hostname(n)),
                    ip: ip.to_string(),
                })
            })
            .collect();
        out.sort();
        out
    })
}

/// One swarm network a node is on, with the nodes it spans: what a
/// worker, which holds no copy of the store, shows of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeNetwork {
    /// The network.
    pub network: Network,
    /// The nodes it spans (`Peers`).
    pub peers: Vec<NetworkPeer>,
}

/// The swarm networks node `node_id` is on, oldest first, as dockerd's
/// worker shows them: those its live tasks and standalone containers hold
/// an address on, and the ingress network once the node has its
/// routing-mesh address.
pub fn on_node(store: &Store, node_id: &str) -> Vec<NodeNetwork> {
    let mut nets: Vec<Network> = store.view(|v| {
        let t = v.tables();
        let mut ids: std::collections::BTreeSet<&str> = t
            .iter::<Task>()
            .filter(|task| task.node_id() == Some(node_id))
            .filter(|task| crate::allocator::vip::holds_addresses(task))
            .flat_map(|task| task.networks.iter().map(|a| a.network_id.as_str()))
            .collect();
        let meshed = t
            .get::<crate::model::Node>(node_id)
            .is_some_and(|n| n.ingress_address.is_some());
        t.iter::<Network>()
            .filter(|n| ids.remove(n.id()) || (meshed && alloc::is_ingress(n)))
            .cloned()
            .collect()
    });
    nets.sort_by(|a, b| a.api.created.cmp(&b.api.created));
    nets.into_iter()
        .map(|n| NodeNetwork {
            peers: peers(store, n.id()),
            network: n,
        })
        .collect()
}

pub fn list(store: &Store) -> Vec<Network> {
    store.view(|tx| tx.list::<Network>())
}

fn service_uses(svc: &Service, n: &Network) -> bool {
    let id = n.id();
    let name = n.api.name.as_deref().unwrap_or("");
    let spec = svc.spec();
    let targets = spec
        .task_template
        .as_ref()
        .and_then(|t| t.networks.as_ref())
        .or(spec.networks.as_ref());
    let attached = targets.into_iter().flatten().any(|a| {
        let t = a.target.as_deref().unwrap_or("");
        t == id || t == name
    });
    attached
        || crate::allocator::vip::vips(svc)
            .iter()
            .any(|v| v.network_id.as_deref() == Some(id) && !alloc::is_ingress(n))
}

/// Why a network cannot be removed now, if it cannot.
fn in_use(tx: &ReadTx<'_>, n: &Network) -> Option<Error> {
    let id = n.id();
    let services = tx.tables().iter::<Service>();
    if alloc::is_ingress(n) {
        for s in services {
            let p = s.api.endpoint.as_ref().and_then(|e| e.ports.clone());
            if ports::uses_ingress(&p.unwrap_or_default()) {
                return Some(Error::precondition(format!(
                    "ingress network cannot be removed because service {} depends on it",
                    s.id()
                )));
            }
        }
        return None;
    }
    if let Some(s) = services.into_iter().find(|s| service_uses(s, n)) {
        return Some(Error::precondition(format!(
            "network {id} is in use by service {}",
            s.id()
        )));
    }
    // As in swarmkit, only tasks still meant to run block removal; tasks
    // already told to stop release their addresses with the network.
    let task = tx.tables().iter::<Task>().find(|t| {
        t.desired_state() <= crate::model::api::TaskState::RUNNING
            && crate::allocator::vip::holds_addresses(t)
            && t.networks.iter().any(|a| a.network_id == id)
    });
    task.map(|t| Error::precondition(format!("network {id} is in use by task {}", t.id())))
}

/// `DELETE /networks/{id}`: refused while a service or task uses it.
pub async fn remove(store: &Store, input: &str) -> Result<()> {
    store
        .update(|tx| {
            let base = tx.base_view();
            let n = resolve::<Network>(&base, input)?;
            if let Some(e) = in_use(&base, &n) {
                return Err(e);
            }
            tx.delete::<Network>(n.id())
        })
        .await
}

/// `POST /networks/prune`: removes those of `candidates` (network IDs) that
/// are neither the ingress network nor in use, and answers their names.
///
/// As dockerd, a network still in use is skipped, not an error; the routing
/// mesh's network goes only when a user removes it by name. One write covers
/// all of them, so a prune is all or nothing.
pub async fn prune(store: &Store, candidates: &[String]) -> Result<Vec<String>> {
    store
        .update(|tx| {
            let base = tx.base_view();
            let mut gone = Vec::new();
            for id in candidates {
                let Some(n) = base.get::<Network>(id) else {
                    continue;
                };
                if alloc::is_ingress(&n) || in_use(&base, &n).is_some() {
                    continue;
                }
                gone.push(n.api.name.clone().unwrap_or_default());
                tx.delete::<Network>(id)?;
            }
            Ok(gone)
        })
        .await
}

/// A stable 64-hex ID for a node-local network (`host`, `none`, ...), from
/// a per-daemon `seed` and the network name, as dockerd's local IDs look.
pub fn local_id(seed: &str, name: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{seed}/{name}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> api::NetworkCreateRequest {
        api::NetworkCreateRequest {
            name: name.into(),
            driver: Some("overlay".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn create_allocates_and_refuses_duplicates() {
        let store = Store::in_memory();
        let id = create(&store, req("n1")).await.unwrap();
        let n = get(&store, "n1").unwrap();
        assert_eq!(n.id(), id);
        assert!(alloc::is_allocated(&n));
        let e = create(&store, req("n1")).await.unwrap_err();
        assert_eq!(e.message(), "network with name n1 already exists");
        assert_eq!(e.kind(), ErrorKind::NameConflict);
        remove(&store, &id[..6]).await.unwrap();
        assert_eq!(
            get(&store, "n1").unwrap_err().message(),
            "network n1 not found"
        );
    }

    #[test]
    fn bad_subnet_is_dockerds_text_with_a_400() {
        let mut r = req("n");
        r.ipam = Some(api::Ipam {
            config: Some(vec![api::IpamConfig {
                subnet: Some("10.0.0.0/33".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let e = validate(&r).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.message(),
            "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"
        );
    }

    #[test]
    fn an_entry_without_a_subnet_beside_one_with_a_subnet_is_refused() {
        let entry = |subnet: &str, gateway: &str| api::IpamConfig {
            subnet: Some(subnet.into()),
            gateway: Some(gateway.into()),
            ..Default::default()
        };
        let with = |configs: Vec<api::IpamConfig>| {
            let mut r = req("n");
            r.ipam = Some(api::Ipam {
                config: Some(configs),
                ..Default::default()
            });
            validate(&r)
        };
        for bad in [
            vec![entry("10.1.0.0/24", ""), entry("", "")],
            vec![entry("", "10.1.0.1")],
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(
                (e.kind(), e.message()),
                (
                    ErrorKind::InvalidArgument,
                    "Invalid subnet  : invalid CIDR address: "
                )
            );
        }
        assert!(with(vec![entry("", "")]).is_ok());
    }

    #[tokio::test]
    async fn in_use_network_cannot_be_removed() {
        let store = Store::in_memory();
        let nid = create(&store, req("backend")).await.unwrap();
        let mut svc = Service::default();
        let sid = crate::model::new_id();
        svc.api.id = Some(sid.clone());
        svc.api.spec = Some(api::ServiceSpec {
            name: Some("user".into()),
            task_template: Some(api::TaskSpec {
                networks: Some(vec![api::NetworkAttachmentConfig {
                    target: Some("backend".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        store.update(|tx| tx.create(svc.clone())).await.unwrap();
        let e = remove(&store, "backend").await.unwrap_err();
        assert_eq!(
            e.message(),
            format!("rpc error: code = FailedPrecondition desc = network {nid} is in use by service {sid}")
        );
    }

    #[tokio::test]
    async fn a_node_sees_only_the_networks_it_holds_addresses_on() {
        let store = Store::in_memory();
        let mut attachable = req("att");
        attachable.attachable = Some(true);
        let att = create(&store, attachable).await.unwrap();
        let mut other = req("other");
        other.attachable = Some(true);
        create(&store, other).await.unwrap();
        let on =
            |node: &str, container: &str, network: &str| super::super::attachment::AttachRequest {
                node_id: node.into(),
                container_id: container.into(),
                network: network.into(),
                aliases: Vec::new(),
            };
        super::super::attachment::attach(&store, &on("node1", "c1", "att"))
            .await
            .unwrap();
        super::super::attachment::attach(&store, &on("node2", "c2", "other"))
            .await
            .unwrap();
        let seen: Vec<String> = on_node(&store, "node1")
            .iter()
            .map(|n| n.network.id().to_string())
            .collect();
        assert_eq!(seen, vec![att]);
        assert!(on_node(&store, "node3").is_empty());
    }
}
