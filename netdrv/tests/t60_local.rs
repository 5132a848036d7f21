//! Node-local bridge networks against the real kernel, each test in a
//! namespace of its own (see `common`): the bridge holds the gateway,
//! containers get the lowest free addresses and reach each other, another
//! network's containers do not reach them, a network in use is not
//! removed, and once everything is detached and removed the namespace has
//! no link or table left.

mod common;

use common::*;
use netdrv::OverlayDriver;
use swarm::exec::ContainerNetworks;
use swarm::exec::LocalAttachment;
use swarm::exec::LocalNetwork;
use swarm::exec::NetworkAttacher;

const NET_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const NET_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
const C2: &str = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2";
const C3: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";

fn local(id: &str, subnet: &str, gateway: &str) -> LocalNetwork {
    LocalNetwork {
        id: id.into(),
        bridge: format!("br-{}", &id[..12]),
        subnet: subnet.into(),
        gateway: gateway.into(),
        ip_range: String::new(),
        internal: false,
        mtu: 0,
    }
}

fn on(id: &str, alias: &str) -> ContainerNetworks {
    ContainerNetworks {
        local: vec![LocalAttachment {
            network_id: id.into(),
            address: String::new(),
            aliases: vec![alias.into()],
        }],
        ..ContainerNetworks::default()
    }
}

#[test]
fn t60_local_networks_connect_isolate_and_go() {
    isolated("t60_local_networks_connect_isolate_and_go", || async {
        let state = StateDir::new();
        let driver = OverlayDriver::new(state.path.clone()).unwrap();
        let links_before = links(None);
        let a = local(NET_A, "10.7.0.0/24", "10.7.0.1");
        let b = local(NET_B, "10.8.0.0/24", "10.8.0.1");
        for n in [&a, &b, &a] {
            driver.ensure_local_network(n).await.unwrap();
        }
        let bridge = addr_of_here(&a.bridge);
        assert_eq!(ipv4s(&bridge), ["10.7.0.1/24"]);
        assert!(nft_table_exists());

        let c1 = driver
            .attach_container(C1, &on(NET_A, "one"))
            .await
            .unwrap();
        let c2 = driver
            .attach_container(C2, &on(NET_A, "two"))
            .await
            .unwrap();
        let c3 = driver
            .attach_container(C3, &on(NET_B, "three"))
            .await
            .unwrap();
        assert_eq!(c1.local[NET_A], "10.7.0.2/24");
        assert_eq!(c2.local[NET_A], "10.7.0.3/24");
        assert_eq!(c3.local[NET_B], "10.8.0.2/24");
        // No gateway bridge: the network's own bridge leads out.
        assert_eq!(c1.egress, None);
        let routes = ip_json(Some(&c1.path), &["route"]);
        assert!(
            routes
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["dst"] == "default" && r["gateway"] == "10.7.0.1"),
            "{routes}"
        );
        assert!(ping(&c1.path, "10.7.0.3"));
        assert!(ping(&c1.path, "10.7.0.1"));
        // Another bridge is not routed to.
        assert!(!ping(&c3.path, "10.7.0.2"));
        assert!(!ping(&c1.path, "10.8.0.2"));

        // In use: not removed.
        assert!(!driver.remove_local_network(NET_A).await.unwrap());
        assert!(links(None).contains(&a.bridge));

        for c in [C1, C2, C3] {
            driver.detach(c).await.unwrap();
        }
        assert!(driver.remove_local_network(NET_A).await.unwrap());
        assert!(driver.remove_local_network(NET_B).await.unwrap());
        // Gone already: no error.
        assert!(driver.remove_local_network(NET_B).await.unwrap());
        assert_eq!(links(None), links_before);
        assert!(!nft_table_exists());
    });
}

/// A link's entry of `ip -j addr` in the test's own namespace.
fn addr_of_here(ifname: &str) -> serde_json::Value {
    ip_json(None, &["addr"])
        .as_array()
        .expect("addr list")
        .iter()
        .find(|l| l["ifname"] == ifname)
        .cloned()
        .unwrap_or_else(|| panic!("no {ifname} here"))
}
