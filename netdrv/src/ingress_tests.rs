use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::json;
use swarm::exec::Attachment;
use swarm::exec::IngressPort;
use swarm::exec::NetworkSpec;

use super::*;
use crate::state::diff;
use crate::state::needs_egress;
use crate::state::parse_attachments;
use crate::state::task_record;
use crate::state::Action;

const ING: &str = "ingress00000000000000000a";

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn spec() -> NetworkSpec {
    NetworkSpec {
        id: ING.into(),
        name: "ingress".into(),
        subnet: "10.0.0.0/24".into(),
        gateway: "10.0.0.1".into(),
        mtu: 0,
        ingress: true,
        internal: false,
        ..Default::default()
    }
}

fn egress() -> Egress {
    Egress {
        subnet: net("172.18.0.0/16"),
        gateway: Ipv4Addr::new(172, 18, 0, 1),
    }
}

fn port(protocol: PortProtocol, published: u16, backends: &[&str]) -> IngressPort {
    IngressPort {
        service: "web".into(),
        protocol,
        published,
        target: 80,
        backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
    }
}

fn records(ports: Vec<IngressPort>) -> ServiceRecords {
    ServiceRecords {
        ingress: ports,
        ingress_network: Some(spec()),
        ..ServiceRecords::default()
    }
}

/// `state` with the routing mesh the records ask for.
fn mesh(state: &NodeState, recs: &ServiceRecords) -> NodeState {
    match wanted(recs).unwrap() {
        None => state.with_ingress(None, None),
        Some(w) => {
            let e = state.egress.clone().unwrap_or_else(egress);
            let network = state
                .networks
                .get(&w.network.id)
                .cloned()
                .unwrap_or(w.network);
            let rec = plan(state, &network, w.ports, w.lb_address, &e).unwrap();
            state.with_ingress(Some((network, rec)), Some(&e))
        }
    }
}

fn attach(state: &NodeState, task: &str, address: &str) -> NodeState {
    let planned = parse_attachments(&[Attachment {
        network: spec(),
        address: address.into(),
        aliases: vec![],
    }])
    .unwrap();
    let e = needs_egress(&planned, false).then(egress);
    let rec = task_record(state, task, &planned, e.as_ref(), String::new()).unwrap();
    state.with_task(task, rec, &planned, e.as_ref())
}

#[test]
fn nothing_wanted_without_ports_or_network() {
    assert_eq!(wanted(&records(vec![])).unwrap(), None);
    let no_net = ServiceRecords {
        ingress: vec![port(PortProtocol::Tcp, 8080, &[])],
        ..ServiceRecords::default()
    };
    assert_eq!(wanted(&no_net).unwrap(), None);
}

#[test]
fn wanted_sorts_dedups_and_keeps_ipv4() {
    let recs = records(vec![
        port(PortProtocol::Udp, 9000, &["10.0.0.5"]),
        port(PortProtocol::Tcp, 9000, &["10.0.0.6", "fd00::1"]),
        port(PortProtocol::Tcp, 8080, &[]),
        port(PortProtocol::Tcp, 8080, &["10.0.0.9"]),
    ]);
    let Wanted { network, ports, .. } = wanted(&recs).unwrap().unwrap();
    assert_eq!(network.id, ING);
    assert_eq!(network.bridge, "shoal-ingress00");
    let keys: Vec<(u16, PortProtocol, Vec<Ipv4Addr>)> = ports
        .into_iter()
        .map(|p| (p.published, p.protocol, p.backends))
        .collect();
    assert_eq!(
        keys,
        vec![
            (8080, PortProtocol::Tcp, vec![]),
            (9000, PortProtocol::Tcp, vec![Ipv4Addr::new(10, 0, 0, 6)]),
            (9000, PortProtocol::Udp, vec![Ipv4Addr::new(10, 0, 0, 5)]),
        ]
    );
}

#[test]
fn mesh_without_local_tasks_makes_sandbox_and_gateway_bridge() {
    let before = NodeState::default();
    let after = mesh(&before, &records(vec![port(PortProtocol::Tcp, 8080, &[])]));
    let rec = after.ingress.clone().unwrap();
    assert_eq!(rec.iface.name, INGRESS_IFACE);
    assert_eq!(rec.iface.peer, INGRESS_PEER);
    assert_eq!(rec.iface.address, net("172.18.0.2/16"));
    assert_eq!(after.egress, Some(egress()));
    assert_eq!(
        diff(&before, &after),
        vec![
            Action::CreateGwBridge(egress()),
            Action::ApplyNft(crate::nft::Ruleset::for_state(&after).unwrap()),
            Action::CreateNetwork(after.networks[ING].clone()),
            Action::CreateIngress(rec.clone()),
            Action::ApplyIngressNft {
                network: ING.into(),
                ruleset: SandboxRuleset::for_record(&rec),
            },
        ]
    );
    // The same records again: nothing to do.
    let again = mesh(&after, &records(vec![port(PortProtocol::Tcp, 8080, &[])]));
    assert_eq!(again, after);
    // No ports any more: everything goes, in reverse.
    let gone = mesh(&after, &records(vec![]));
    assert_eq!(gone, NodeState::default());
    assert_eq!(
        diff(&after, &gone),
        vec![
            Action::RemoveIngress(rec),
            Action::RemoveNetwork(ING.into()),
            Action::DeleteNft,
            Action::RemoveGwBridge,
        ]
    );
}

#[test]
fn backend_changes_only_replace_the_sandbox_table() {
    let one = mesh(
        &NodeState::default(),
        &records(vec![port(PortProtocol::Tcp, 8080, &["10.0.0.5"])]),
    );
    let two = mesh(
        &one,
        &records(vec![port(
            PortProtocol::Tcp,
            8080,
            &["10.0.0.5", "10.0.0.6"],
        )]),
    );
    let rec = two.ingress.clone().unwrap();
    assert_eq!(rec.iface, one.ingress.as_ref().unwrap().iface);
    assert_eq!(
        diff(&one, &two),
        vec![Action::ApplyIngressNft {
            network: ING.into(),
            ruleset: SandboxRuleset::for_record(&rec),
        }]
    );
    // A new port also changes the node's DNAT.
    let three = mesh(
        &two,
        &records(vec![
            port(PortProtocol::Tcp, 8080, &["10.0.0.5", "10.0.0.6"]),
            port(PortProtocol::Udp, 8080, &["10.0.0.5"]),
        ]),
    );
    let actions = diff(&two, &three);
    assert_eq!(actions.len(), 2);
    assert!(matches!(actions[0], Action::ApplyNft(_)));
    assert!(matches!(actions[1], Action::ApplyIngressNft { .. }));
}

#[test]
fn mesh_and_tasks_share_the_network_and_gateway_bridge() {
    let recs = records(vec![port(PortProtocol::Tcp, 8080, &["10.0.0.5"])]);
    let task = attach(&NodeState::default(), "t1", "10.0.0.5/24");
    let both = mesh(&task, &recs);
    // The sandbox exists already: only its plumbing is added, and its
    // gateway bridge address is the next free one.
    let actions = diff(&task, &both);
    assert!(matches!(actions[0], Action::ApplyNft(_)));
    assert!(matches!(actions[1], Action::CreateIngress(_)));
    assert_eq!(actions.len(), 3);
    assert_eq!(
        both.ingress.as_ref().unwrap().iface.address,
        net("172.18.0.3/16")
    );
    // The last task leaves: the mesh keeps the network and the bridge.
    let mesh_only = both.without_tasks(["t1"]);
    assert!(mesh_only.networks.contains_key(ING));
    assert_eq!(mesh_only.egress, Some(egress()));
    assert!(!diff(&both, &mesh_only)
        .iter()
        .any(|a| matches!(a, Action::RemoveNetwork(_) | Action::RemoveGwBridge)));
    // A new task does not take the sandbox's address.
    let back = attach(&mesh_only, "t2", "10.0.0.6/24");
    let eth1 = &back.tasks["t2"].interfaces[1];
    assert_eq!(eth1.address, net("172.18.0.2/16"));
    // The mesh goes: the tasks keep the network.
    let no_mesh = mesh(&back, &records(vec![]));
    assert!(no_mesh.networks.contains_key(ING));
    let actions = diff(&back, &no_mesh);
    assert!(matches!(actions.last(), Some(Action::RemoveIngress(_))));
}

#[test]
fn state_with_mesh_round_trips_through_json() {
    let s = mesh(
        &NodeState::default(),
        &records(vec![port(PortProtocol::Udp, 53, &["10.0.0.5"])]),
    );
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<NodeState>(&text).unwrap(), s);
}

fn sandbox_doc(backends: &[&str]) -> serde_json::Value {
    let ruleset = SandboxRuleset {
        inbound: "gw0".into(),
        bridge: "shoal-ingress00".into(),
        ports: vec![IngressRule {
            protocol: PortProtocol::Tcp,
            published: 8080,
            target: 80,
            backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
        }],
        source: None,
        local_sources: "172.18.0.0/16".parse().unwrap(),
    };
    serde_json::to_value(ruleset.to_nftables()).unwrap()
}

fn sandbox_want(dnat: Option<serde_json::Value>) -> serde_json::Value {
    let mut cmds = vec![
        json!({"add": {"table": {"family": "ip", "name": "shoal"}}}),
        json!({"delete": {"table": {"family": "ip", "name": "shoal"}}}),
        json!({"add": {"table": {"family": "ip", "name": "shoal"}}}),
        json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": "prerouting",
            "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}}),
        json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
        json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": "forward",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}}),
        json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": "forward", "expr": [
            {"match": {"left": {"ct": {"key": "status"}}, "right": "dnat", "op": "in"}},
            {"accept": null}
        ]}}}),
        json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": "forward", "expr": [
            {"match": {"left": {"meta": {"key": "iifname"}}, "right": "shoal-ingress00", "op": "=="}},
            {"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal-ingress00", "op": "=="}},
            {"accept": null}
        ]}}}),
    ];
    if let Some(addr) = dnat {
        cmds.push(json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": "prerouting", "expr": [
            {"match": {"left": {"meta": {"key": "iifname"}}, "right": "gw0", "op": "=="}},
            {"match": {"left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080, "op": "=="}},
            {"dnat": {"addr": addr, "port": 80}}
        ]}}}));
    }
    cmds.push(json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": "postrouting", "expr": [
        {"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal-ingress00", "op": "=="}},
        {"masquerade": null}
    ]}}}));
    json!({ "nftables": cmds })
}

#[test]
fn sandbox_spreads_new_connections_round_robin() {
    let got = sandbox_doc(&["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
    let map = json!({"map": {
        "key": {"numgen": {"mode": "inc", "mod": 3}},
        "data": {"set": [[0, "10.0.0.5"], [1, "10.0.0.6"], [2, "10.0.0.7"]]}
    }});
    assert_eq!(got, sandbox_want(Some(map)));
}

#[test]
fn sandbox_single_backend_and_none() {
    assert_eq!(
        sandbox_doc(&["10.0.0.5"]),
        sandbox_want(Some(json!("10.0.0.5")))
    );
    // No backend: no rule, the sandbox refuses by itself.
    assert_eq!(sandbox_doc(&[]), sandbox_want(None));
}

#[test]
fn sandbox_with_a_node_address_keeps_clients_and_translates_only_the_node() {
    let ruleset = SandboxRuleset {
        inbound: "gw0".into(),
        bridge: "shoal-ingress00".into(),
        ports: Vec::new(),
        source: Some("10.0.0.9".parse().unwrap()),
        local_sources: "172.18.0.0/16".parse().unwrap(),
    };
    let doc = serde_json::to_value(ruleset.to_nftables()).unwrap();
    let last = doc["nftables"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!(
        last,
        json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": "postrouting", "expr": [
            {"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal-ingress00", "op": "=="}},
            {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "op": "=="}},
            {"snat": {"addr": "10.0.0.9"}}
        ]}}})
    );
}
