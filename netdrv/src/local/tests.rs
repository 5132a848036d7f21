use std::net::IpAddr;
use std::net::Ipv4Addr;

use swarm::exec::LocalAttachment;
use swarm::exec::LocalNetwork;

use super::*;
use crate::nft::Ruleset;
use crate::state::diff;
use crate::state::needs_egress;
use crate::state::task_record;
use crate::state::Action;
use crate::state::Egress;

const NET: &str = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2";
const OTHER: &str = "ffeeddccbbaaffeeddccbbaaffeeddccbbaaffeeddccbbaaffeeddccbbaaffee";

fn network(id: &str, subnet: &str, gateway: &str, range: &str) -> LocalNetwork {
    LocalNetwork {
        id: id.into(),
        bridge: format!("br-{}", &id[..12]),
        subnet: subnet.into(),
        gateway: gateway.into(),
        ip_range: range.into(),
        internal: false,
        mtu: 0,
    }
}

fn state_with(nets: &[LocalNetwork]) -> NodeState {
    let mut s = NodeState::default();
    for n in nets {
        s.local_networks
            .insert(n.id.clone(), LocalRecord::parse(n).unwrap());
    }
    s
}

fn att(id: &str, address: &str, aliases: &[&str]) -> LocalAttachment {
    LocalAttachment {
        network_id: id.into(),
        address: address.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    }
}

/// `state` with `task` attached to `atts` (and the gateway bridge when it
/// needs it, or `default_bridge`).
fn attach(
    state: &NodeState,
    task: &str,
    atts: &[LocalAttachment],
    default_bridge: bool,
) -> NodeState {
    let planned: Vec<Planned> = atts.iter().map(|a| plan(state, task, a).unwrap()).collect();
    let egress = Egress {
        subnet: "172.18.0.0/16".parse().unwrap(),
        gateway: Ipv4Addr::new(172, 18, 0, 1),
    };
    let e = needs_egress(&planned, default_bridge).then_some(egress);
    let rec = task_record(state, task, &planned, e.as_ref(), "rc".into()).unwrap();
    state.with_task(task, rec, &planned, e.as_ref())
}

fn addr(state: &NodeState, task: &str) -> String {
    state.tasks[task].interfaces[0].address.to_string()
}

#[test]
fn records_are_checked() {
    let ok =
        LocalRecord::parse(&network(NET, "10.7.0.0/24", "10.7.0.254", "10.7.0.128/25")).unwrap();
    assert_eq!(ok.range, "10.7.0.128/25".parse::<Ipv4Net>().unwrap());
    assert_eq!(ok.mtu, DEFAULT_MTU);
    assert_eq!(ok.bridge, "br-a1b2c3d4e5f6");
    for bad in [
        network(NET, "10.7.0.0/24", "10.8.0.1", ""),
        network(NET, "10.7.0.0/24", "10.7.0.1", "10.8.0.0/25"),
        network(NET, "10.7.0.300/24", "10.7.0.1", ""),
        LocalNetwork {
            bridge: "a-name-far-too-long".into(),
            ..network(NET, "10.7.0.0/24", "10.7.0.1", "")
        },
    ] {
        assert!(
            matches!(
                LocalRecord::parse(&bad),
                Err(PlanError::InvalidLocalNetwork { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn addresses_are_the_lowest_free_ones_of_the_range() {
    let s = state_with(&[network(NET, "172.17.0.0/16", "172.17.0.1", "")]);
    let s = attach(&s, "c1", &[att(NET, "", &[])], false);
    assert_eq!(addr(&s, "c1"), "172.17.0.2/16");
    let s = attach(&s, "c2", &[att(NET, "", &[])], false);
    assert_eq!(addr(&s, "c2"), "172.17.0.3/16");
    // A gap left by a container that went is filled first.
    let s = s.without_tasks(["c1"]);
    let s = attach(&s, "c3", &[att(NET, "", &[])], false);
    assert_eq!(addr(&s, "c3"), "172.17.0.2/16");
    // An attached container keeps its address when planned again.
    assert_eq!(
        plan(&s, "c2", &att(NET, "", &[]))
            .unwrap()
            .address
            .to_string(),
        "172.17.0.3/16"
    );

    // A range starts at its own first address (dockerd's too); the gateway
    // is skipped wherever it is.
    let s = state_with(&[network(NET, "10.7.0.0/24", "10.7.0.128", "10.7.0.128/25")]);
    let s = attach(&s, "c1", &[att(NET, "", &[])], false);
    assert_eq!(addr(&s, "c1"), "10.7.0.129/24");
}

#[test]
fn asked_for_addresses_must_be_free_and_inside() {
    let s = state_with(&[network(NET, "10.7.0.0/24", "10.7.0.1", "10.7.0.128/25")]);
    // Outside the range but inside the subnet is allowed, as by dockerd.
    let s = attach(&s, "c1", &[att(NET, "10.7.0.9", &[])], false);
    assert_eq!(addr(&s, "c1"), "10.7.0.9/24");
    let err = |a: &str| plan(&s, "c2", &att(NET, a, &[])).unwrap_err().to_string();
    assert_eq!(err("10.7.0.9"), "Address already in use");
    assert_eq!(err("10.7.0.1"), "Address already in use");
    assert_eq!(
        err("10.9.0.5"),
        "Invalid address 10.9.0.5: It does not belong to any of this network's subnets"
    );
    assert_eq!(err("10.7.0.0"), "Address already in use");
    assert_eq!(
        plan(&s, "c2", &att(OTHER, "", &[])).unwrap_err(),
        PlanError::NoLocalNetwork(OTHER.into())
    );
}

#[test]
fn a_full_range_is_exhausted() {
    let s = state_with(&[network(NET, "10.7.0.0/30", "10.7.0.1", "")]);
    let s = attach(&s, "c1", &[att(NET, "", &[])], false);
    assert_eq!(addr(&s, "c1"), "10.7.0.2/30");
    assert_eq!(
        plan(&s, "c2", &att(NET, "", &[])).unwrap_err().to_string(),
        format!("no available IPv4 addresses on this network's address pools: {NET}")
    );
}

#[test]
fn a_local_network_leads_out_unless_internal_or_on_the_default_bridge() {
    let mut internal = network(OTHER, "10.8.0.0/24", "10.8.0.1", "");
    internal.internal = true;
    let s = state_with(&[network(NET, "10.7.0.0/24", "10.7.0.1", ""), internal]);
    // Only a local network: its gateway carries the default route.
    let a = attach(&s, "c1", &[att(NET, "", &[])], false);
    let ifs = &a.tasks["c1"].interfaces;
    assert_eq!(ifs.len(), 1);
    assert!(ifs[0].link.carries_default_route());
    assert_eq!(ifs[0].peer, "vl-c1");
    assert!(a.egress.is_none());
    // Internal only: still the default route (dockerd's), no gateway bridge.
    let b = attach(&s, "c2", &[att(OTHER, "", &[])], false);
    assert_eq!(b.tasks["c2"].interfaces.len(), 1);
    assert!(b.tasks["c2"].interfaces[0].link.carries_default_route());
    // The default bridge too: the gateway bridge, last, carries it.
    let c = attach(&s, "c3", &[att(NET, "", &[]), att(OTHER, "", &[])], true);
    let ifs = &c.tasks["c3"].interfaces;
    assert_eq!(ifs.len(), 3);
    assert!(!ifs[0].link.carries_default_route() && !ifs[1].link.carries_default_route());
    assert!(matches!(ifs[2].link, Link::Egress { .. }));
    // Two peers of one container in the node's namespace differ.
    assert_ne!(ifs[0].peer, ifs[1].peer);
}

#[test]
fn names_resolve_on_their_own_network_only() {
    let s = state_with(&[
        network(NET, "10.7.0.0/24", "10.7.0.1", ""),
        network(OTHER, "10.8.0.0/24", "10.8.0.1", ""),
    ]);
    let s = attach(&s, "c1", &[att(NET, "", &["web", "Alias"])], false);
    let s = attach(
        &s,
        "c2",
        &[att(NET, "", &["db", "alias"]), att(OTHER, "", &["db"])],
        false,
    );
    let r = records(&s);
    assert_eq!(r.len(), 2);
    let on = |id: &str| r.iter().find(|n| n.network_id == id).unwrap().names.clone();
    let ip = |s: &str| IpAddr::V4(s.parse().unwrap());
    let net = on(NET);
    assert_eq!(net["web"], vec![ip("10.7.0.2")]);
    assert_eq!(net["db"], vec![ip("10.7.0.3")]);
    // One alias on two containers answers both.
    assert_eq!(net["alias"], vec![ip("10.7.0.2"), ip("10.7.0.3")]);
    assert_eq!(on(OTHER)["db"], vec![ip("10.8.0.2")]);
    assert!(!on(OTHER).contains_key("web"));
}

#[test]
fn networks_come_and_go_with_their_bridge_and_rules() {
    let empty = NodeState::default();
    let one = state_with(&[network(NET, "10.7.0.0/24", "10.7.0.1", "")]);
    let rec = one.local_networks[NET].clone();
    let rs = Ruleset::for_state(&one).unwrap();
    assert_eq!(rs.masquerade, vec![(rec.subnet, rec.bridge.clone())]);
    assert_eq!(
        diff(&empty, &one),
        vec![
            Action::CreateLocalNetwork(rec.clone()),
            Action::ApplyNft(rs)
        ]
    );
    assert_eq!(
        diff(&one, &empty),
        vec![Action::RemoveLocalNetwork(rec), Action::DeleteNft]
    );
    // An internal network is not masqueraded.
    let mut internal = network(NET, "10.7.0.0/24", "10.7.0.1", "");
    internal.internal = true;
    let rs = Ruleset::for_state(&state_with(&[internal])).unwrap();
    assert!(rs.masquerade.is_empty());
    assert_eq!(rs.isolation.bridges.len(), 1);
}

#[test]
fn published_ports_go_to_the_local_address() {
    let s = state_with(&[network(NET, "10.7.0.0/24", "10.7.0.1", "")]);
    let s = attach(&s, "c1", &[att(NET, "", &[])], false);
    let port = swarm::exec::HostPort {
        protocol: swarm::exec::PortProtocol::Tcp,
        published: 8080,
        target: 80,
    };
    let s = s.with_host_ports("c1", &[port]);
    let rs = Ruleset::for_state(&s).unwrap();
    assert_eq!(rs.forwards.len(), 1);
    assert_eq!(rs.forwards[0].to, vec![Ipv4Addr::new(10, 7, 0, 2)]);
    assert_eq!(rs.forwards[0].to_port, 80);
}

#[test]
fn in_use_while_a_container_is_attached() {
    let s = state_with(&[network(NET, "10.7.0.0/24", "10.7.0.1", "")]);
    assert!(!in_use(&s, NET));
    let s = attach(&s, "c1", &[att(NET, "", &[])], false);
    assert!(in_use(&s, NET));
    assert!(!in_use(&s.without_tasks(["c1"]), NET));
}
