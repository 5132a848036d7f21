use std::net::Ipv4Addr;

use serde_json::json;
use swarm::exec::HostPort;

use super::*;
use crate::ingress::IngressRecord;
use crate::ingress::IngressRule;
use crate::state::Egress;
use crate::state::Interface;
use crate::state::TaskRecord;

fn egress_state() -> NodeState {
    NodeState {
        egress: Some(Egress {
            subnet: "172.18.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(172, 18, 0, 1),
        }),
        ..NodeState::default()
    }
}

fn gw_iface(name: &str, addr: &str) -> Interface {
    Interface {
        name: name.into(),
        address: addr.parse().unwrap(),
        mtu: 1500,
        mac: [0; 6],
        peer: format!("vg-{name}"),
        link: Link::Egress {
            gateway: Ipv4Addr::new(172, 18, 0, 1),
        },
    }
}

/// The document's commands after the table's replacement.
fn body(rs: &Ruleset) -> Vec<serde_json::Value> {
    let doc = serde_json::to_value(rs.to_nftables()).unwrap();
    let all = doc["nftables"].as_array().unwrap().clone();
    assert_eq!(
        all[..3],
        [
            json!({"add": {"table": {"family": "ip", "name": "shoal"}}}),
            json!({"delete": {"table": {"family": "ip", "name": "shoal"}}}),
            json!({"add": {"table": {"family": "ip", "name": "shoal"}}}),
        ]
    );
    all[3..].to_vec()
}

fn rule_json(chain: &str, expr: serde_json::Value) -> serde_json::Value {
    json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": chain, "expr": expr}}})
}

fn chain_json(name: &str, kind: &str, hook: &str, prio: i32) -> serde_json::Value {
    json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
}

#[test]
fn no_egress_no_table() {
    assert_eq!(Ruleset::for_state(&NodeState::default()), None);
}

#[test]
fn masquerade_document_is_golden() {
    let rs = Ruleset::for_state(&egress_state()).unwrap();
    assert!(rs.forwards.is_empty());
    let want = vec![
        chain_json("guard", "filter", "prerouting", -300),
        chain_json("postrouting", "nat", "postrouting", 100),
        rule_json(
            "guard",
            json!([
                {"match": {"left": {"meta": {"key": "iifname"}}, "right": "shoal_gwbridge", "op": "=="}},
                {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}},
                           "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}, "op": "=="}},
                {"drop": null}
            ]),
        ),
        rule_json(
            "postrouting",
            json!([
                {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
                           "right": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "op": "=="}},
                {"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal_gwbridge", "op": "!="}},
                {"masquerade": null}
            ]),
        ),
    ];
    assert_eq!(body(&rs), want);
}

#[test]
fn published_ports_document_is_golden() {
    let mut state = egress_state();
    state.ingress = Some(IngressRecord {
        network: "ing".into(),
        iface: gw_iface("gw0", "172.18.0.3/16"),
        ports: vec![IngressRule {
            protocol: PortProtocol::Tcp,
            published: 8080,
            target: 80,
            backends: vec![Ipv4Addr::new(10, 0, 0, 5)],
        }],
        lb_address: None,
    });
    state.tasks.insert(
        "t1".into(),
        TaskRecord {
            interfaces: vec![gw_iface("eth0", "172.18.0.2/16")],
            resolv_conf: String::new(),
            names: Default::default(),
        },
    );
    let udp = HostPort {
        protocol: PortProtocol::Udp,
        published: 8081,
        target: 53,
    };
    state.host_ports.insert("t1".into(), vec![udp]);
    // Ports of a task that is gone (or has no way in) are left out.
    state.host_ports.insert("gone".into(), vec![udp]);

    let rs = Ruleset::for_state(&state).unwrap();
    assert_eq!(
        rs.forwards,
        vec![
            Forward {
                protocol: PortProtocol::Tcp,
                port: 8080,
                to: vec![Ipv4Addr::new(172, 18, 0, 3)],
                to_port: 8080
            },
            Forward {
                protocol: PortProtocol::Udp,
                port: 8081,
                to: vec![Ipv4Addr::new(172, 18, 0, 2)],
                to_port: 53
            },
        ]
    );
    let got = body(&rs);
    let br = json!({"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal_gwbridge", "op": "=="}});
    let local = |flag: &str| json!({"match": {"left": {"fib": {"result": "type", "flags": [flag]}}, "right": "local", "op": "=="}});
    let jump = json!({"jump": {"target": "published"}});
    let want = vec![
        rule_json(
            "postrouting",
            json!([br, local("saddr"), {"masquerade": null}]),
        ),
        rule_json(
            "postrouting",
            json!([br, {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "op": "=="}},
                {"match": {"left": {"ct": {"key": "status"}}, "right": "dnat", "op": "in"}},
                {"masquerade": null}]),
        ),
        json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": "published"}}}),
        chain_json("prerouting", "nat", "prerouting", -100),
        rule_json("prerouting", json!([local("daddr"), jump])),
        chain_json("output", "nat", "output", -100),
        rule_json("output", json!([local("daddr"), jump])),
        rule_json(
            "published",
            json!([
                {"match": {"left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080, "op": "=="}},
                {"dnat": {"addr": "172.18.0.3", "port": 8080}}
            ]),
        ),
        rule_json(
            "published",
            json!([
                {"match": {"left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 8081, "op": "=="}},
                {"dnat": {"addr": "172.18.0.2", "port": 53}}
            ]),
        ),
    ];
    // After the guard, its rule and the egress masquerade.
    assert_eq!(got[4..], want[..]);
}

fn net_iface(name: &str, addr: &str) -> Interface {
    Interface {
        link: Link::Network {
            id: "ing".into(),
            bridge: "br-ing".into(),
        },
        ..gw_iface(name, addr)
    }
}

/// A mesh port whose backends all run here goes straight to their
/// gateway bridge addresses at the target port, in turn; one backend
/// elsewhere sends the port through the ingress sandbox.
#[test]
fn mesh_ports_skip_the_sandbox_when_every_backend_is_local() {
    let mut state = egress_state();
    let rule = |backends: Vec<Ipv4Addr>| IngressRule {
        protocol: PortProtocol::Tcp,
        published: 8080,
        target: 80,
        backends,
    };
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6));
    state.ingress = Some(IngressRecord {
        network: "ing".into(),
        iface: gw_iface("gw0", "172.18.0.3/16"),
        ports: vec![rule(vec![a, b])],
        lb_address: None,
    });
    for (task, ing, gw) in [
        ("t1", "10.0.0.5/24", "172.18.0.4/16"),
        ("t2", "10.0.0.6/24", "172.18.0.5/16"),
    ] {
        state.tasks.insert(
            task.into(),
            TaskRecord {
                interfaces: vec![net_iface("eth0", ing), gw_iface("eth1", gw)],
                resolv_conf: String::new(),
                names: Default::default(),
            },
        );
    }
    let rs = Ruleset::for_state(&state).unwrap();
    let to = vec![Ipv4Addr::new(172, 18, 0, 4), Ipv4Addr::new(172, 18, 0, 5)];
    assert_eq!(
        rs.forwards,
        vec![Forward {
            protocol: PortProtocol::Tcp,
            port: 8080,
            to,
            to_port: 80
        }]
    );
    let sandbox = Forward {
        protocol: PortProtocol::Tcp,
        port: 8080,
        to: vec![Ipv4Addr::new(172, 18, 0, 3)],
        to_port: 8080,
    };
    // Tasks of this node reach the port through the sandbox.
    assert_eq!(rs.from_tasks, vec![sandbox.clone()]);
    let got = body(&rs);
    let rules = |chain: &str| -> Vec<serde_json::Value> {
        got.iter()
            .filter(|c| c["add"]["rule"]["chain"] == chain)
            .map(|c| c["add"]["rule"]["expr"].clone())
            .collect()
    };
    let local = json!({"match": {"left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local", "op": "=="}});
    let from_bridge = json!({"match": {"left": {"meta": {"key": "iifname"}}, "right": "shoal_gwbridge", "op": "=="}});
    assert_eq!(
        rules("prerouting"),
        vec![
            json!([from_bridge, local, {"jump": {"target": "from_tasks"}}]),
            json!([local, {"jump": {"target": "published"}}]),
        ]
    );
    assert_eq!(
        rules("output"),
        vec![json!([local, {"jump": {"target": "published"}}])]
    );
    assert_eq!(
        rules("published")[0][1],
        json!({"dnat": {"addr": {"map": {
            "key": {"numgen": {"mode": "inc", "mod": 2}},
            "data": {"set": [[0, "172.18.0.4"], [1, "172.18.0.5"]]}}}, "port": 80}})
    );
    assert_eq!(
        rules("from_tasks")[0][1],
        json!({"dnat": {"addr": "172.18.0.3", "port": 8080}})
    );

    // A backend that is not a task here: through the sandbox.
    let ingress = state.ingress.as_mut().unwrap();
    ingress.ports = vec![rule(vec![a, Ipv4Addr::new(10, 0, 0, 9)])];
    let sandbox = Forward {
        protocol: PortProtocol::Tcp,
        port: 8080,
        to: vec![Ipv4Addr::new(172, 18, 0, 3)],
        to_port: 8080,
    };
    assert_eq!(
        Ruleset::for_state(&state).unwrap().forwards,
        vec![sandbox.clone()]
    );
    // No backend at all: the sandbox refuses.
    state.ingress.as_mut().unwrap().ports = vec![rule(vec![])];
    assert_eq!(Ruleset::for_state(&state).unwrap().forwards, vec![sandbox]);
}

#[test]
fn delete_document_tolerates_absence() {
    let got = serde_json::to_value(delete_table()).unwrap();
    let want = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": "shoal"}}},
        {"delete": {"table": {"family": "ip", "name": "shoal"}}}
    ]});
    assert_eq!(got, want);
}
