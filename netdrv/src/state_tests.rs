use std::net::Ipv4Addr;

use swarm::exec::NetworkSpec;

use super::*;
use crate::gwbridge::GWBRIDGE_MTU;

const NET_A: &str = "qx3f8k2m1v0c9b7n6z5y4w2ab";
const NET_B: &str = "p0o9i8u7y6t5r4e3w2q1a2s3d";

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn spec(id: &str, subnet: &str, gateway: &str) -> NetworkSpec {
    NetworkSpec {
        id: id.into(),
        name: format!("n-{}", &id[..3]),
        subnet: subnet.into(),
        gateway: gateway.into(),
        mtu: 0,
        ingress: false,
        internal: false,
        ..Default::default()
    }
}

fn att(network: NetworkSpec, address: &str) -> Attachment {
    Attachment {
        network,
        address: address.into(),
        aliases: vec![],
    }
}

fn egress() -> Egress {
    Egress {
        subnet: net("172.18.0.0/16"),
        gateway: Ipv4Addr::new(172, 18, 0, 1),
    }
}

/// The state after attaching `task` with `atts` to `state`.
fn attach(state: &NodeState, task: &str, atts: &[Attachment]) -> NodeState {
    let planned = parse_attachments(atts).unwrap();
    let e = needs_egress(&planned, false).then(egress);
    let rec = task_record(state, task, &planned, e.as_ref(), "rc".into()).unwrap();
    state.with_task(task, rec, &planned, e.as_ref())
}

#[test]
fn parses_and_defaults_mtu() {
    let p =
        parse_attachments(&[att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24")]).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].network.mtu, DEFAULT_OVERLAY_MTU);
    assert_eq!(p[0].network.bridge, "shoal-qx3f8k2m1");
    assert_eq!(p[0].address, net("10.0.1.5/24"));
    assert_eq!(p[0].network.gateway, Ipv4Addr::new(10, 0, 1, 1));
}

#[test]
fn bare_address_takes_subnet_prefix() {
    let p = parse_attachments(&[att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.7")]).unwrap();
    assert_eq!(p[0].address, net("10.0.1.7/24"));
}

#[test]
fn rejects_bad_attachments() {
    let outside = att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.2.5/24");
    assert!(matches!(
        parse_attachments(&[outside]),
        Err(PlanError::OutsideSubnet { .. })
    ));
    let gw_outside = att(spec(NET_A, "10.0.1.0/24", "10.9.1.1"), "10.0.1.5/24");
    assert!(matches!(
        parse_attachments(&[gw_outside]),
        Err(PlanError::OutsideSubnet { .. })
    ));
    let a = att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24");
    assert_eq!(
        parse_attachments(&[a.clone(), a]),
        Err(PlanError::DuplicateNetwork(NET_A.into()))
    );
    let v6 = att(spec(NET_A, "fd00::/64", "fd00::1"), "fd00::5/64");
    assert!(matches!(
        parse_attachments(&[v6]),
        Err(PlanError::InvalidAddress {
            field: "subnet",
            ..
        })
    ));
    let bad_id = att(spec("../x", "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24");
    assert_eq!(
        parse_attachments(&[bad_id]),
        Err(PlanError::InvalidId("../x".into()))
    );
}

#[test]
fn egress_and_dns_rules() {
    let mut internal = spec(NET_A, "10.0.1.0/24", "10.0.1.1");
    internal.internal = true;
    let mut ingress = spec(NET_B, "10.0.0.0/24", "10.0.0.1");
    ingress.ingress = true;
    let p = |atts: &[Attachment]| parse_attachments(atts).unwrap();
    let only_internal = p(&[att(internal.clone(), "10.0.1.2/24")]);
    assert!(!needs_egress(&only_internal, false));
    assert!(uses_embedded_dns(&only_internal));
    let only_ingress = p(&[att(ingress.clone(), "10.0.0.2/24")]);
    assert!(needs_egress(&only_ingress, false));
    assert!(
        uses_embedded_dns(&only_ingress),
        "dockerd serves 127.0.0.11 there too"
    );
    let both = p(&[att(internal, "10.0.1.2/24"), att(ingress, "10.0.0.2/24")]);
    assert!(needs_egress(&both, false));
    assert!(uses_embedded_dns(&both));
    assert!(needs_egress(&[], false));
    assert!(!uses_embedded_dns(&[]));
}

#[test]
fn record_names_interfaces_in_order_with_egress_last() {
    let atts = [
        att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24"),
        att(spec(NET_B, "10.0.2.0/24", "10.0.2.1"), "10.0.2.9/24"),
    ];
    let s = attach(&NodeState::default(), "taskone0123456789", &atts);
    let rec = &s.tasks["taskone0123456789"];
    let names: Vec<&str> = rec.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "eth1", "eth2"]);
    assert_eq!(rec.interfaces[0].peer, "vt-taskone01234");
    assert_eq!(rec.interfaces[2].peer, "vg-taskone01234");
    assert_eq!(rec.interfaces[1].mac, [0x02, 0x42, 10, 0, 2, 9]);
    assert_eq!(rec.interfaces[2].address, net("172.18.0.2/16"));
    assert_eq!(rec.interfaces[2].mtu, GWBRIDGE_MTU);
    assert_eq!(
        rec.interfaces[2].link,
        Link::Egress {
            gateway: Ipv4Addr::new(172, 18, 0, 1)
        }
    );
    assert_eq!(s.networks.len(), 2);
    assert_eq!(s.egress, Some(egress()));
}

#[test]
fn peer_names_stay_unique_on_a_bridge() {
    let a = [att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24")];
    let b = [att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.6/24")];
    let s = attach(&NodeState::default(), "samestart0001", &a);
    let s = attach(&s, "samestart0002", &b);
    let p1 = &s.tasks["samestart0001"].interfaces;
    let p2 = &s.tasks["samestart0002"].interfaces;
    assert_eq!(p1[0].peer, "vt-samestart000");
    assert_eq!(p2[0].peer, "vt-samestart001");
    assert_ne!(p1[1].peer, p2[1].peer);
    assert!(p2.iter().all(|i| i.peer.len() <= 15));
    assert_eq!(p2[1].address, net("172.18.0.3/16"));
}

#[test]
fn first_attach_creates_everything_in_order() {
    let before = NodeState::default();
    let atts = [att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24")];
    let after = attach(&before, "t1", &atts);
    let rec = &after.tasks["t1"];
    assert_eq!(
        diff(&before, &after),
        vec![
            Action::CreateGwBridge(egress()),
            Action::ApplyNft(Ruleset::for_state(&after).unwrap()),
            Action::CreateNetwork(after.networks[NET_A].clone()),
            Action::CreateTaskNetns("t1".into()),
            Action::AddInterface {
                task: "t1".into(),
                iface: rec.interfaces[0].clone()
            },
            Action::AddInterface {
                task: "t1".into(),
                iface: rec.interfaces[1].clone()
            },
        ]
    );
}

#[test]
fn second_task_on_same_network_only_adds_itself() {
    let atts = [att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24")];
    let one = attach(&NodeState::default(), "t1", &atts);
    let two = attach(
        &one,
        "t2",
        &[att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.6/24")],
    );
    let actions = diff(&one, &two);
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[0], Action::CreateTaskNetns("t2".into()));
    assert!(matches!(&actions[1], Action::AddInterface { task, .. } if task == "t2"));
}

#[test]
fn detach_tears_down_only_what_nobody_uses() {
    let a = spec(NET_A, "10.0.1.0/24", "10.0.1.1");
    let one = attach(
        &NodeState::default(),
        "t1",
        &[att(a.clone(), "10.0.1.5/24")],
    );
    let two = attach(&one, "t2", &[att(a, "10.0.1.6/24")]);
    let rec2 = two.tasks["t2"].clone();

    let back = two.without_tasks(["t2"]);
    assert_eq!(back, one);
    assert_eq!(
        diff(&two, &back),
        vec![
            Action::RemoveInterface {
                task: "t2".into(),
                iface: rec2.interfaces[0].clone()
            },
            Action::RemoveInterface {
                task: "t2".into(),
                iface: rec2.interfaces[1].clone()
            },
            Action::RemoveTaskNetns("t2".into()),
        ]
    );

    let empty = back.without_tasks(["t1"]);
    assert!(empty.networks.is_empty() && empty.egress.is_none());
    let actions = diff(&back, &empty);
    assert_eq!(
        actions[actions.len() - 4..],
        [
            Action::RemoveTaskNetns("t1".into()),
            Action::RemoveNetwork(NET_A.into()),
            Action::DeleteNft,
            Action::RemoveGwBridge,
        ]
    );
    // Detaching again changes nothing.
    assert_eq!(diff(&empty, &empty.without_tasks(["t1"])), vec![]);
}

#[test]
fn internal_only_task_gets_no_egress() {
    let mut internal = spec(NET_A, "10.0.1.0/24", "10.0.1.1");
    internal.internal = true;
    let s = attach(&NodeState::default(), "t1", &[att(internal, "10.0.1.5/24")]);
    assert_eq!(s.tasks["t1"].interfaces.len(), 1);
    assert_eq!(s.egress, None);
    let actions = diff(&NodeState::default(), &s);
    assert!(matches!(actions[0], Action::CreateNetwork(_)));
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::CreateGwBridge(_) | Action::ApplyNft(_))));
}

#[test]
fn task_without_networks_gets_only_egress() {
    let s = attach(&NodeState::default(), "t1", &[]);
    let rec = &s.tasks["t1"];
    assert_eq!(rec.interfaces.len(), 1);
    assert_eq!(rec.interfaces[0].name, "eth0");
    assert!(s.networks.is_empty());
    assert_eq!(s.egress, Some(egress()));
}

#[test]
fn leftovers_remove_unexplained_objects() {
    let a = spec(NET_A, "10.0.1.0/24", "10.0.1.1");
    let one = attach(&NodeState::default(), "t1", &[att(a, "10.0.1.5/24")]);
    let observed = Observed {
        task_netns: ["t1".to_string(), "crashed".to_string()].into(),
        sandboxes: [NET_A.to_string(), NET_B.to_string()].into(),
        gwbridge: true,
        nft_table: true,
    };
    // t1 and NET_A are recorded; the gateway bridge is in use.
    assert_eq!(
        leftovers(&one, &one, &observed),
        vec![
            Action::RemoveTaskNetns("crashed".into()),
            Action::RemoveNetwork(NET_B.into()),
        ]
    );
    // With nothing recorded, everything goes.
    let empty = NodeState::default();
    assert_eq!(
        leftovers(&empty, &empty, &observed),
        vec![
            Action::RemoveTaskNetns("crashed".into()),
            Action::RemoveTaskNetns("t1".into()),
            Action::RemoveNetwork(NET_B.into()),
            Action::RemoveNetwork(NET_A.into()),
            Action::DeleteNft,
            Action::RemoveGwBridge,
        ]
    );
}

#[test]
fn bridge_names_fit_the_kernel_limit() {
    assert_eq!(bridge_name(NET_A), "shoal-qx3f8k2m1");
    assert!(bridge_name(NET_A).len() <= 15);
    assert_eq!(bridge_name("abc"), "shoal-abc");
}

#[test]
fn state_round_trips_through_json() {
    let s = attach(
        &NodeState::default(),
        "t1",
        &[att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24")],
    );
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<NodeState>(&text).unwrap(), s);
}

#[test]
fn host_ports_follow_their_task() {
    use swarm::exec::PortProtocol;
    let one = attach(
        &NodeState::default(),
        "t1",
        &[att(spec(NET_A, "10.0.1.0/24", "10.0.1.1"), "10.0.1.5/24")],
    );
    let port = HostPort {
        protocol: PortProtocol::Tcp,
        published: 8081,
        target: 80,
    };
    let published = one.with_host_ports("t1", &[port]);
    // Only the node's table changes.
    assert_eq!(
        diff(&one, &published),
        vec![Action::ApplyNft(Ruleset::for_state(&published).unwrap())]
    );
    assert_eq!(published.with_host_ports("t1", &[]), one);
    // Detach takes them along.
    let gone = published.without_tasks(["t1"]);
    assert!(gone.host_ports.is_empty());
    assert_eq!(gone, NodeState::default());
}
