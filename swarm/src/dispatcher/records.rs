//! The DNS view nodes serve to their tasks, computed from the store: per
//! network, each service's name to its VIP (or to its tasks' addresses with
//! `--endpoint-mode dnsrr`), `tasks.NAME` to the addresses of its running
//! tasks, and each running task's container name and network aliases to its
//! address. The ingress network has no names, as under dockerd.
//!
//! The same pass gives the load balancers their backends: each VIP's
//! serving tasks on its network, and each port published through the
//! routing mesh with the serving tasks' addresses on the ingress network.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::net::Ipv4Addr;

use crate::allocator::network::is_ingress;
use crate::allocator::network::node_spec;
use crate::allocator::vip::holds_addresses;
use crate::exec::IngressPort;
use crate::exec::LocalNode;
use crate::exec::NetworkKeys;
use crate::exec::NetworkPeers;
use crate::exec::NetworkRecords;
use crate::exec::NetworkSpec;
use crate::exec::Peer;
use crate::exec::ServiceRecords;
use crate::exec::VipBackends;
use crate::model::api;
use crate::model::api::TaskState;
use crate::model::Cluster;
use crate::model::Network;
use crate::model::Node;
use crate::model::Service;
use crate::model::Task;
use crate::store::Tables;

fn ip_of(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next()?.parse().ok()
}

fn add(names: &mut BTreeMap<String, Vec<IpAddr>>, name: &str, ip: IpAddr) {
    if name.is_empty() {
        return;
    }
    let v = names.entry(name.to_ascii_lowercase()).or_default();
    if !v.contains(&ip) {
        v.push(ip);
    }
}

/// Whether a task answers to its names: it runs and is meant to.
fn serving(t: &Task) -> bool {
    t.state() == TaskState::RUNNING && t.desired_state() == TaskState::RUNNING
}

/// The container name of a task, as the executor names it.
fn container_name(t: &Task) -> String {
    let id = t.api.id.as_deref().unwrap_or("");
    match t.api.slot.filter(|s| *s > 0) {
        Some(slot) => format!("{}.{slot}.{id}", t.service_name),
        None => format!("{}.{}.{id}", t.service_name, t.node_id().unwrap_or("")),
    }
}

fn is_dnsrr(s: &Service) -> bool {
    let mode = |e: Option<&api::EndpointSpec>| e.and_then(|e| e.mode);
    mode(s.api.endpoint.as_ref().and_then(|e| e.spec.as_ref()))
        == Some(api::EndpointSpecModeEnum::DNSRR)
        || mode(s.spec().endpoint_spec.as_ref()) == Some(api::EndpointSpecModeEnum::DNSRR)
}

/// The records as node `node_id` gets them: [`cluster_records`] plus the
/// overlay peers on other nodes and what concerns that node itself.
pub fn service_records(t: &Tables, node_id: &str) -> ServiceRecords {
    let mut r = cluster_records(t);
    r.peers = peers_for(t, node_id);
    let me = t.get::<Node>(node_id);
    r.local = LocalNode {
        data_addr: me.and_then(node_data_addr),
        data_port: t
            .iter::<Cluster>()
            .next()
            .and_then(|c| c.api.data_path_port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_DATA_PORT),
        ingress_address: me.and_then(|n| n.ingress_address.clone()),
        network_keys: keys_for(t, node_id),
    };
    r
}

/// The network keys, for a node with a task on an encrypted network only.
fn keys_for(t: &Tables, node_id: &str) -> Option<NetworkKeys> {
    let encrypted: Vec<&str> = t
        .iter::<Network>()
        .filter(|n| crate::allocator::network::is_encrypted(n))
        .filter_map(|n| n.api.id.as_deref())
        .collect();
    let needs = !encrypted.is_empty()
        && t.iter::<Task>().any(|task| {
            task.node_id() == Some(node_id)
                && holds_addresses(task)
                && task
                    .networks
                    .iter()
                    .any(|a| encrypted.contains(&a.network_id.as_str()))
        });
    if !needs {
        return None;
    }
    let keys = t.iter::<Cluster>().next()?.network_bootstrap_keys.clone();
    Some(NetworkKeys {
        primary: crate::manager::keymanager::primary(&keys)?,
        keys,
    })
}

/// The VXLAN UDP port when the cluster sets none (IANA's).
pub const DEFAULT_DATA_PORT: u16 = 4789;

/// Where a node's overlay traffic goes: its data-path address, else the
/// address it was last seen at.
pub fn node_data_addr(n: &Node) -> Option<Ipv4Addr> {
    n.data_addr
        .as_deref()
        .or(n.api.status.as_ref().and_then(|s| s.addr.as_deref()))
        .and_then(|a| a.parse().ok())
}

/// Every overlay network's addresses on nodes other than `node_id`: tasks
/// that hold their addresses (from assignment until they finish, so a
/// starting task is reachable before it reports running) and each node's
/// routing-mesh address on the ingress network.
pub fn peers_for(t: &Tables, node_id: &str) -> Vec<NetworkPeers> {
    let nodes: HashMap<&str, Ipv4Addr> = t
        .iter::<Node>()
        .filter_map(|n| Some((n.api.id.as_deref()?, node_data_addr(n)?)))
        .collect();
    let mine = nodes.get(node_id).copied();
    let mut by_net: BTreeMap<&str, (NetworkSpec, Vec<Peer>)> = t
        .iter::<Network>()
        .filter_map(|n| {
            let spec = node_spec(n);
            (spec.vni > 0).then(|| (n.api.id.as_deref().unwrap_or(""), (spec, Vec::new())))
        })
        .collect();
    let mut add = |net: &str, cidr: &str, node: Ipv4Addr| {
        let (Some((_, peers)), Some(IpAddr::V4(address))) = (by_net.get_mut(net), ip_of(cidr))
        else {
            return;
        };
        // A node's own addresses never go through its tunnel.
        if Some(node) != mine {
            peers.push(Peer { address, node });
        }
    };
    for task in t.iter::<Task>().filter(|t| holds_addresses(t)) {
        let Some(node) = task.node_id().filter(|n| *n != node_id) else {
            continue;
        };
        let Some(addr) = nodes.get(node) else {
            continue;
        };
        for a in &task.networks {
            if let Some(cidr) = a.addresses.first() {
                add(&a.network_id, cidr, *addr);
            }
        }
    }
    if let Some(ing) = t.iter::<Network>().find(|n| is_ingress(n)) {
        let ing = ing.api.id.as_deref().unwrap_or("");
        for n in t.iter::<Node>() {
            let id = n.api.id.as_deref().unwrap_or("");
            if let (false, Some(cidr), Some(addr)) =
                (id == node_id, n.ingress_address.as_deref(), nodes.get(id))
            {
                add(ing, cidr, *addr);
            }
        }
    }
    by_net
        .into_iter()
        .map(|(network_id, (spec, mut peers))| {
            peers.sort();
            peers.dedup();
            NetworkPeers {
                network_id: network_id.to_string(),
                vni: spec.vni,
                peers,
                encrypted: spec.encrypted,
            }
        })
        .collect()
}

/// Every non-ingress network's names and VIPs, and the routing mesh: the
/// part of the records that is the same for every node.
pub fn cluster_records(t: &Tables) -> ServiceRecords {
    let mut by_net: BTreeMap<String, BTreeMap<String, Vec<IpAddr>>> = BTreeMap::new();
    let mut ingress_net = None;
    for n in t.iter::<Network>() {
        if is_ingress(n) {
            ingress_net = Some(n);
        } else {
            by_net.insert(n.api.id.clone().unwrap_or_default(), BTreeMap::new());
        }
    }
    let services: HashMap<&str, &Service> = t
        .iter::<Service>()
        .map(|s| (s.api.id.as_deref().unwrap_or(""), s))
        .collect();
    // (service id, network id) -> serving task addresses there.
    let mut backends: HashMap<(&str, &str), Vec<IpAddr>> = HashMap::new();
    // Task addresses.
    for task in t.iter::<Task>().filter(|t| serving(t)) {
        let svc = services.get(task.service_id());
        let svc_name = svc.map(|s| s.name()).unwrap_or(&task.service_name);
        let dnsrr = svc.is_some_and(|s| is_dnsrr(s));
        for a in &task.networks {
            let Some(ip) = a.addresses.first().and_then(|c| ip_of(c)) else {
                continue;
            };
            backends
                .entry((task.service_id(), a.network_id.as_str()))
                .or_default()
                .push(ip);
            let Some(names) = by_net.get_mut(&a.network_id) else {
                continue;
            };
            // A standalone container is known by its names (its aliases).
            if crate::controlapi::attachment::is_attachment(task) {
                for alias in &a.aliases {
                    add(names, alias, ip);
                }
                continue;
            }
            add(names, &format!("tasks.{svc_name}"), ip);
            if dnsrr {
                add(names, svc_name, ip);
            }
            add(names, &container_name(task), ip);
            for alias in &a.aliases {
                add(names, alias, ip);
            }
        }
    }
    for v in backends.values_mut() {
        v.sort();
        v.dedup();
    }
    let backends_of = |svc: &str, net: &str| backends.get(&(svc, net)).cloned().unwrap_or_default();
    // Service names to VIPs, and the VIPs' backends.
    let mut vips: BTreeMap<String, Vec<VipBackends>> = BTreeMap::new();
    for (id, s) in &services {
        if is_dnsrr(s) {
            continue;
        }
        for vip in s
            .api
            .endpoint
            .as_ref()
            .and_then(|e| e.virtual_ips.as_ref())
            .into_iter()
            .flatten()
        {
            let (Some(net), Some(addr)) = (vip.network_id.as_deref(), vip.addr.as_deref()) else {
                continue;
            };
            if let (Some(names), Some(ip)) = (by_net.get_mut(net), ip_of(addr)) {
                add(names, s.name(), ip);
                vips.entry(net.to_string()).or_default().push(VipBackends {
                    service: s.name().to_string(),
                    vip: ip,
                    backends: backends_of(id, net),
                });
            }
        }
    }
    // The routing mesh: allocated ingress ports (published is set by then).
    let mut ingress = Vec::new();
    if let Some(net) = ingress_net {
        let net_id = net.api.id.as_deref().unwrap_or("");
        for (id, s) in &services {
            let ports = s.api.endpoint.as_ref().and_then(|e| e.ports.as_ref());
            for p in ports.into_iter().flatten() {
                let (Some(published), Some(target)) = (p.published_port, p.target_port) else {
                    continue;
                };
                let (Ok(published), Ok(target)) = (u16::try_from(published), u16::try_from(target))
                else {
                    continue;
                };
                if !crate::allocator::ports::is_ingress(p) || published == 0 {
                    continue;
                }
                ingress.push(IngressPort {
                    service: s.name().to_string(),
                    protocol: crate::allocator::ports::port_protocol(p),
                    published,
                    target,
                    backends: backends_of(id, net_id),
                });
            }
        }
    }
    ingress.sort_by_key(|p| (p.published, p.protocol as u8));
    ServiceRecords {
        networks: by_net
            .into_iter()
            .map(|(network_id, mut names)| {
                for v in names.values_mut() {
                    v.sort();
                }
                let mut vips = vips.remove(&network_id).unwrap_or_default();
                vips.sort_by_key(|v| v.vip);
                NetworkRecords {
                    network_id,
                    names,
                    vips,
                }
            })
            .collect(),
        ingress,
        ingress_network: ingress_net.map(node_spec),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::PortProtocol;
    use crate::model::NetworkAttachment;
    use crate::model::StoreObject;

    fn network(id: &str, ingress: bool) -> Network {
        let mut n = Network::default();
        n.api.id = Some(id.into());
        n.api.ingress = Some(ingress);
        n
    }

    fn service(id: &str, name: &str, vip: Option<(&str, &str)>, dnsrr: bool) -> Service {
        let mut s = Service::default();
        s.api.id = Some(id.into());
        s.api.spec = Some(api::ServiceSpec {
            name: Some(name.into()),
            endpoint_spec: Some(api::EndpointSpec {
                mode: Some(if dnsrr {
                    api::EndpointSpecModeEnum::DNSRR
                } else {
                    api::EndpointSpecModeEnum::VIP
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        s.api.endpoint = Some(api::ServiceEndpoint {
            virtual_ips: vip.map(|(n, a)| {
                vec![api::ServiceEndpointVirtualIps {
                    network_id: Some(n.into()),
                    addr: Some(a.into()),
                }]
            }),
            ..Default::default()
        });
        s
    }

    fn task(
        id: &str,
        svc: &str,
        name: &str,
        slot: i64,
        net: &str,
        addr: &str,
        state: TaskState,
    ) -> Task {
        let mut t = Task::default();
        t.api.id = Some(id.into());
        t.api.service_id = Some(svc.into());
        t.api.slot = Some(slot);
        t.service_name = name.into();
        t.api.desired_state = Some(TaskState::RUNNING);
        t.api.status = Some(api::TaskStatus {
            state: Some(state),
            ..Default::default()
        });
        t.networks = vec![NetworkAttachment {
            network_id: net.into(),
            addresses: vec![addr.into()],
            aliases: vec!["web-alias".into()],
        }];
        t
    }

    fn names<'a>(r: &'a ServiceRecords, net: &str) -> &'a BTreeMap<String, Vec<IpAddr>> {
        &r.networks
            .iter()
            .find(|n| n.network_id == net)
            .unwrap()
            .names
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn vips_tasks_names_and_dnsrr_per_network() {
        let mut t = Tables::default();
        t.put(network("ing", true).into_object());
        t.put(network("n1", false).into_object());
        t.put(network("n2", false).into_object());
        t.put(service("s1", "Web", Some(("n1", "10.0.1.2/24")), false).into_object());
        t.put(service("s2", "db", None, true).into_object());
        t.put(
            task(
                "t1",
                "s1",
                "Web",
                1,
                "n1",
                "10.0.1.3/24",
                TaskState::RUNNING,
            )
            .into_object(),
        );
        t.put(
            task(
                "t2",
                "s1",
                "Web",
                2,
                "n1",
                "10.0.1.4/24",
                TaskState::RUNNING,
            )
            .into_object(),
        );
        t.put(
            task(
                "t3",
                "s1",
                "Web",
                3,
                "n1",
                "10.0.1.5/24",
                TaskState::STARTING,
            )
            .into_object(),
        );
        t.put(task("t4", "s2", "db", 1, "n2", "10.0.2.3/24", TaskState::RUNNING).into_object());
        let r = cluster_records(&t);
        assert!(r.networks.iter().all(|n| n.network_id != "ing"));
        let n1 = names(&r, "n1");
        assert_eq!(n1["web"], vec![ip("10.0.1.2")]);
        assert_eq!(n1["tasks.web"], vec![ip("10.0.1.3"), ip("10.0.1.4")]);
        assert_eq!(n1["web.1.t1"], vec![ip("10.0.1.3")]);
        assert_eq!(n1["web-alias"], vec![ip("10.0.1.3"), ip("10.0.1.4")]);
        assert!(!n1.contains_key("db"), "db is not on n1");
        let n2 = names(&r, "n2");
        assert_eq!(
            n2["db"],
            vec![ip("10.0.2.3")],
            "dnsrr: the name lists tasks"
        );
        assert_eq!(n2["tasks.db"], vec![ip("10.0.2.3")]);
        let n1 = r.networks.iter().find(|n| n.network_id == "n1").unwrap();
        assert_eq!(
            n1.vips,
            vec![VipBackends {
                service: "Web".into(),
                vip: ip("10.0.1.2"),
                backends: vec![ip("10.0.1.3"), ip("10.0.1.4")],
            }],
            "the VIP spreads over running tasks only"
        );
        let n2 = r.networks.iter().find(|n| n.network_id == "n2").unwrap();
        assert!(n2.vips.is_empty(), "dnsrr services have no VIP");
        assert!(r.ingress.is_empty());
    }

    #[test]
    fn ingress_ports_list_serving_tasks_on_the_ingress_network() {
        let mut t = Tables::default();
        t.put(network("ing", true).into_object());
        let mut s = service("s1", "web", Some(("ing", "10.0.0.2/24")), false);
        let port = |published, target, mode| api::EndpointPortConfig {
            protocol: Some(api::EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(target),
            published_port: Some(published),
            publish_mode: Some(mode),
            ..Default::default()
        };
        s.api.endpoint.as_mut().unwrap().ports = Some(vec![
            port(8080, 80, api::EndpointPortConfigPublishModeEnum::INGRESS),
            port(8081, 81, api::EndpointPortConfigPublishModeEnum::HOST),
        ]);
        t.put(s.into_object());
        for (id, addr, state) in [
            ("t1", "10.0.0.5/24", TaskState::RUNNING),
            ("t2", "10.0.0.4/24", TaskState::RUNNING),
            ("t3", "10.0.0.6/24", TaskState::STARTING),
        ] {
            t.put(task(id, "s1", "web", 1, "ing", addr, state).into_object());
        }
        let r = cluster_records(&t);
        assert!(r.networks.is_empty(), "ingress has no names or VIPs");
        assert_eq!(
            r.ingress,
            vec![IngressPort {
                service: "web".into(),
                protocol: PortProtocol::Tcp,
                published: 8080,
                target: 80,
                backends: vec![ip("10.0.0.4"), ip("10.0.0.5")],
            }],
            "host-mode ports are not the mesh's; starting tasks get nothing"
        );
        assert_eq!(r.ingress_network.unwrap().id, "ing");
    }

    fn node(id: &str, data: &str, ingress: Option<&str>) -> Node {
        let mut n = Node::default();
        n.api.id = Some(id.into());
        n.data_addr = Some(data.into());
        n.ingress_address = ingress.map(str::to_string);
        n
    }

    fn overlay(id: &str, vni: u32, ingress: bool, encrypted: bool) -> Network {
        let mut n = network(id, ingress);
        let mut options = std::collections::HashMap::new();
        options.insert(
            crate::allocator::network::VXLAN_KEY.to_string(),
            vni.to_string(),
        );
        if encrypted {
            options.insert("encrypted".to_string(), String::new());
        }
        n.api.options = Some(options);
        n
    }

    fn on(mut t: Task, node: &str) -> Task {
        t.api.node_id = Some(node.into());
        t
    }

    fn peer(address: &str, node: &str) -> Peer {
        Peer {
            address: address.parse().unwrap(),
            node: node.parse().unwrap(),
        }
    }

    #[test]
    fn peers_are_other_nodes_live_addresses_and_ingress_addresses() {
        let mut t = Tables::default();
        t.put(overlay("ing", 4096, true, false).into_object());
        t.put(overlay("app", 4097, false, false).into_object());
        t.put(node("a", "192.168.1.1", Some("10.0.0.2/24")).into_object());
        t.put(node("b", "192.168.1.2", Some("10.0.0.3/24")).into_object());
        let live = task(
            "t1",
            "s",
            "web",
            1,
            "app",
            "10.0.1.5/24",
            TaskState::RUNNING,
        );
        let starting = task(
            "t2",
            "s",
            "web",
            2,
            "app",
            "10.0.1.6/24",
            TaskState::ASSIGNED,
        );
        let done = task(
            "t3",
            "s",
            "web",
            3,
            "app",
            "10.0.1.7/24",
            TaskState::COMPLETE,
        );
        let mine = task(
            "t4",
            "s",
            "web",
            4,
            "app",
            "10.0.1.8/24",
            TaskState::RUNNING,
        );
        t.put(on(live, "b").into_object());
        t.put(on(starting, "b").into_object());
        t.put(on(done, "b").into_object());
        t.put(on(mine, "a").into_object());

        let r = service_records(&t, "a");
        let app = r.peers.iter().find(|p| p.network_id == "app").unwrap();
        assert_eq!(app.vni, 4097);
        // A starting task is reachable; a finished one and this node's own
        // are not peers.
        assert_eq!(
            app.peers,
            vec![
                peer("10.0.1.5", "192.168.1.2"),
                peer("10.0.1.6", "192.168.1.2")
            ]
        );
        let ing = r.peers.iter().find(|p| p.network_id == "ing").unwrap();
        assert_eq!(ing.peers, vec![peer("10.0.0.3", "192.168.1.2")]);
        assert_eq!(r.local.data_addr, Some("192.168.1.1".parse().unwrap()));
        assert_eq!(r.local.ingress_address.as_deref(), Some("10.0.0.2/24"));
        assert_eq!(r.local.data_port, DEFAULT_DATA_PORT);
    }

    #[test]
    fn network_keys_reach_only_nodes_with_a_task_on_an_encrypted_network() {
        let mut t = Tables::default();
        let mut c = Cluster::default();
        c.api.id = Some("c".into());
        c.network_bootstrap_keys = (1..=3)
            .map(|id| crate::model::NetworkKey {
                id,
                secret: format!("k{id}"),
                created: u64::from(id),
            })
            .collect();
        t.put(c.into_object());
        t.put(overlay("plain", 4097, false, false).into_object());
        t.put(overlay("sealed", 4098, false, true).into_object());
        for (id, addr) in [
            ("a", "192.168.1.1"),
            ("b", "192.168.1.2"),
            ("c", "192.168.1.3"),
        ] {
            t.put(node(id, addr, None).into_object());
        }
        let sealed = task(
            "t1",
            "s",
            "x",
            1,
            "sealed",
            "10.0.2.5/24",
            TaskState::RUNNING,
        );
        let plain = task(
            "t2",
            "s",
            "y",
            1,
            "plain",
            "10.0.1.5/24",
            TaskState::RUNNING,
        );
        t.put(on(sealed, "a").into_object());
        t.put(on(plain, "b").into_object());

        let keys = service_records(&t, "a").local.network_keys.unwrap();
        assert_eq!(keys.keys.len(), 3);
        assert_eq!(keys.primary, 2, "the second newest seals");
        assert!(service_records(&t, "b").local.network_keys.is_none());
        assert!(service_records(&t, "c").local.network_keys.is_none());
        let r = service_records(&t, "b");
        let sealed = r.peers.iter().find(|p| p.network_id == "sealed").unwrap();
        assert!(sealed.encrypted);
        assert_eq!(sealed.peers, vec![peer("10.0.2.5", "192.168.1.1")]);
    }
}
