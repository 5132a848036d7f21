use std::net::IpAddr;

use serde_json::json;
use swarm::exec::NetworkRecords;
use swarm::exec::VipBackends;

use super::*;
use crate::state::Interface;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip(service: &str, addr: &str, backends: &[&str]) -> VipBackends {
    VipBackends {
        service: service.into(),
        vip: ip(addr),
        backends: backends.iter().map(|b| ip(b)).collect(),
    }
}

fn records() -> ServiceRecords {
    ServiceRecords {
        networks: vec![
            NetworkRecords {
                network_id: "na".into(),
                vips: vec![
                    vip("web", "10.0.1.2", &["10.0.1.3", "10.0.1.4", "10.0.1.3"]),
                    vip("empty", "10.0.1.9", &[]),
                    vip("one", "10.0.1.7", &["10.0.1.8", "fd00::8"]),
                    vip("v6", "fd00::2", &["fd00::3"]),
                ],
                ..Default::default()
            },
            NetworkRecords {
                network_id: "nb".into(),
                vips: vec![vip("db", "10.0.2.2", &["10.0.2.3"])],
                ..Default::default()
            },
            NetworkRecords {
                network_id: "nc".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn iface(name: &str, link: Link) -> Interface {
    Interface {
        name: name.into(),
        address: "10.0.1.5/24".parse().unwrap(),
        mtu: 1450,
        mac: [0; 6],
        peer: format!("vx-{name}"),
        link,
    }
}

fn task(networks: &[&str]) -> TaskRecord {
    let mut interfaces: Vec<Interface> = networks
        .iter()
        .enumerate()
        .map(|(i, id)| {
            iface(
                &format!("eth{i}"),
                Link::Network {
                    id: id.to_string(),
                    bridge: format!("br-{id}"),
                },
            )
        })
        .collect();
    interfaces.push(iface(
        "eth9",
        Link::Egress {
            gateway: "172.18.0.1".parse().unwrap(),
        },
    ));
    TaskRecord {
        interfaces,
        resolv_conf: String::new(),
        names: Default::default(),
    }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn a_task_gets_the_vips_of_its_own_networks_only() {
    let vips = VipsByNetwork::from_records(&records());
    let got = VipRuleset::for_task(&vips, &task(&["na"])).unwrap();
    assert_eq!(
        got.vips,
        vec![
            Vip {
                service: "web".into(),
                vip: v4("10.0.1.2"),
                // The duplicate is dropped.
                backends: vec![v4("10.0.1.3"), v4("10.0.1.4")],
            },
            Vip {
                service: "one".into(),
                vip: v4("10.0.1.7"),
                // IPv6 is left out.
                backends: vec![v4("10.0.1.8")],
            },
            Vip {
                service: "empty".into(),
                vip: v4("10.0.1.9"),
                backends: vec![],
            },
        ]
    );
    let both = VipRuleset::for_task(&vips, &task(&["nb", "na"])).unwrap();
    assert_eq!(both.vips.len(), 4);
    assert_eq!(both.vips[0].service, "web");
    assert_eq!(both.vips[3].service, "db");
}

#[test]
fn no_vips_no_table() {
    let vips = VipsByNetwork::from_records(&records());
    assert_eq!(VipRuleset::for_task(&vips, &task(&["nc"])), None);
    assert_eq!(VipRuleset::for_task(&vips, &task(&[])), None);
    assert_eq!(
        VipRuleset::for_task(&VipsByNetwork::default(), &task(&["na"])),
        None
    );
}

#[test]
fn a_vip_on_two_networks_keeps_the_first() {
    let mut r = records();
    r.networks[1]
        .vips
        .push(vip("dup", "10.0.1.2", &["10.0.2.9"]));
    let vips = VipsByNetwork::from_records(&r);
    let got = VipRuleset::for_task(&vips, &task(&["nb", "na"])).unwrap();
    let at: Vec<&Vip> = got
        .vips
        .iter()
        .filter(|v| v.vip == v4("10.0.1.2"))
        .collect();
    assert_eq!(at.len(), 1);
    assert_eq!(at[0].service, "dup");
}

#[test]
fn ruleset_document_is_golden() {
    let vips = VipsByNetwork::from_records(&records());
    let doc = VipRuleset::for_task(&vips, &task(&["na"]))
        .unwrap()
        .to_nftables();
    let got = serde_json::to_value(&doc).unwrap();
    let t = json!({"family": "ip", "name": "shoal_vip"});
    let daddr = |a: &str| {
        json!({"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}},
                         "right": a, "op": "=="}})
    };
    let want = json!({"nftables": [
        {"add": {"table": t}},
        {"delete": {"table": t}},
        {"add": {"table": t}},
        {"add": {"chain": {"family": "ip", "table": "shoal_vip", "name": "balance",
            "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": "shoal_vip", "chain": "balance",
            "comment": "web", "expr": [
            daddr("10.0.1.2"),
            {"dnat": {"addr": {"map": {
                "key": {"numgen": {"mode": "inc", "mod": 2}},
                "data": {"set": [[0, "10.0.1.3"], [1, "10.0.1.4"]]}
            }}}}
        ]}}},
        {"add": {"rule": {"family": "ip", "table": "shoal_vip", "chain": "balance",
            "comment": "one", "expr": [
            daddr("10.0.1.7"),
            {"dnat": {"addr": "10.0.1.8"}}
        ]}}},
        {"add": {"chain": {"family": "ip", "table": "shoal_vip", "name": "refuse",
            "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": "shoal_vip", "chain": "refuse",
            "comment": "empty", "expr": [
            daddr("10.0.1.9"),
            {"match": {"left": {"meta": {"key": "l4proto"}}, "right": "tcp", "op": "=="}},
            {"reject": {"type": "tcp reset"}}
        ]}}},
        {"add": {"rule": {"family": "ip", "table": "shoal_vip", "chain": "refuse",
            "comment": "empty", "expr": [
            daddr("10.0.1.9"),
            {"reject": null}
        ]}}}
    ]});
    assert_eq!(got, want);
}

#[test]
fn no_refuse_chain_when_every_vip_has_backends() {
    let ruleset = VipRuleset {
        vips: vec![Vip {
            service: "db".into(),
            vip: v4("10.0.2.2"),
            backends: vec![v4("10.0.2.3")],
        }],
    };
    let got = serde_json::to_string(&ruleset.to_nftables()).unwrap();
    assert!(!got.contains("refuse"), "{got}");
}

#[test]
fn delete_document_tolerates_absence() {
    let got = serde_json::to_value(delete_table()).unwrap();
    let want = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": "shoal_vip"}}},
        {"delete": {"table": {"family": "ip", "name": "shoal_vip"}}}
    ]});
    assert_eq!(got, want);
}

#[test]
fn long_comments_are_cut_on_a_char_boundary() {
    let s = "é".repeat(100);
    let t = truncated(&s, 128);
    assert_eq!(t.len(), 128);
    assert_eq!(truncated(&"é".repeat(10), 5), "éé");
}
