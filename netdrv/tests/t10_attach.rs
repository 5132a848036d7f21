//! The driver against the real kernel, each test in a namespace of its own
//! (see `common`): tasks on one network reach each other, interfaces,
//! addresses, MTUs and routes are as specified, detach removes everything,
//! a restarted driver takes over, and egress is masqueraded.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;

use common::*;
use netdrv::OverlayDriver;
use serde_json::Value;
use swarm::exec::NetworkAttacher;
use swarm::exec::NetworkSpec;

const NET: &str = "n1net0000000000000000000a";
const NET_INTERNAL: &str = "n2int0000000000000000000b";
const TASK_A: &str = "ta0000000000000000000000a";
const TASK_B: &str = "tb0000000000000000000000b";

fn network(id: &str, subnet: &str, gateway: &str, internal: bool) -> NetworkSpec {
    NetworkSpec {
        id: id.into(),
        name: format!("net-{}", &id[..4]),
        subnet: subnet.into(),
        gateway: gateway.into(),
        mtu: 1450,
        ingress: false,
        internal,
        ..Default::default()
    }
}

fn routes(netns: &Path) -> Vec<Value> {
    ip_json(Some(netns), &["route"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn mounted_netns_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn t10_two_tasks_on_one_network() {
    isolated("t10_two_tasks_on_one_network", || async {
        let state = StateDir::new();
        let dir = state.path.clone();
        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let net = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        let a = driver
            .attach(TASK_A, &on(&net, "10.0.1.5/24"))
            .await
            .unwrap();
        let b = driver
            .attach(TASK_B, &on(&net, "10.0.1.6/24"))
            .await
            .unwrap();

        assert_eq!(a.path, dir.join("netns").join(TASK_A));
        assert_eq!(
            a.interfaces,
            vec![("eth0".to_string(), "10.0.1.5/24".to_string())]
        );
        assert!(
            a.resolv_conf.contains("nameserver 127.0.0.11\n"),
            "{}",
            a.resolv_conf
        );
        assert!(a.resolv_conf.contains("ndots:0"), "{}", a.resolv_conf);

        // Interfaces: lo, eth0 on the network, eth1 on the gateway bridge.
        let eth0 = addr_of(&a.path, "eth0");
        assert_eq!(ipv4s(&eth0), ["10.0.1.5/24"]);
        assert_eq!(eth0["mtu"], 1450);
        assert_eq!(eth0["address"], "02:42:0a:00:01:05");
        let eth1 = addr_of(&a.path, "eth1");
        assert_eq!(ipv4s(&eth1), ["172.18.0.2/16"]);
        assert_eq!(eth1["mtu"], 1500);
        assert!(addr_of(&a.path, "lo")["flags"]
            .as_array()
            .unwrap()
            .contains(&"UP".into()));
        assert_eq!(links(Some(&a.path)).len(), 3);
        assert_eq!(ipv4s(&addr_of(&b.path, "eth1")), ["172.18.0.3/16"]);

        // Routes: the default via the gateway bridge, each subnet on its own
        // interface.
        let r = routes(&a.path);
        let default: Vec<&Value> = r.iter().filter(|r| r["dst"] == "default").collect();
        assert_eq!(default.len(), 1, "{r:?}");
        assert_eq!(default[0]["gateway"], "172.18.0.1");
        assert_eq!(default[0]["dev"], "eth1");
        assert!(
            r.iter()
                .any(|r| r["dst"] == "10.0.1.0/24" && r["dev"] == "eth0"),
            "{r:?}"
        );
        assert_eq!(r.len(), 3, "{r:?}");

        // Over the bridge, by address, both ways; and the gateway.
        assert!(ping(&a.path, "10.0.1.6"));
        assert!(ping(&b.path, "10.0.1.5"));
        assert!(ping(&a.path, "10.0.1.1"));
        // The gateway bridge's ports are isolated from each other.
        assert!(!ping(&a.path, "172.18.0.3"));

        // The gateway bridge and its masquerade exist in the "host".
        let here = links(None);
        assert!(here.contains(&"shoal_gwbridge".to_string()), "{here:?}");
        assert!(nft_table_exists());

        // Attach again: the same answer, nothing new.
        let again = driver
            .attach(TASK_A, &on(&net, "10.0.1.5/24"))
            .await
            .unwrap();
        assert_eq!(again, a);
        assert_eq!(links(Some(&a.path)).len(), 3);
        assert_eq!(links(None), here);

        // Detach A: its namespace and veths go, B keeps working.
        driver.detach(TASK_A).await.unwrap();
        assert!(!a.path.exists());
        let here = links(None);
        assert!(!here.iter().any(|l| l.starts_with("vg-ta")), "{here:?}");
        assert!(here.iter().any(|l| l.starts_with("vg-tb")), "{here:?}");
        assert!(ping(&b.path, "10.0.1.1"));
        assert!(nft_table_exists());

        // Detach B: the network's sandbox, the gateway bridge and the table go.
        driver.detach(TASK_B).await.unwrap();
        assert_eq!(mounted_netns_files(&dir.join("netns")), 0);
        assert_eq!(mounted_netns_files(&dir.join("sbox")), 0);
        assert_eq!(links(None), ["lo"]);
        assert!(!nft_table_exists());
        driver.detach(TASK_B).await.unwrap();
    });
}

#[test]
fn t20_restart_detaches_and_prunes() {
    isolated("t20_restart_detaches_and_prunes", || async {
        let state = StateDir::new();
        let dir = state.path.clone();
        let net = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        let (a, b) = {
            let first = OverlayDriver::new(dir.clone()).unwrap();
            let a = first
                .attach(TASK_A, &on(&net, "10.0.1.5/24"))
                .await
                .unwrap();
            let b = first
                .attach(TASK_B, &on(&net, "10.0.1.6/24"))
                .await
                .unwrap();
            (a, b)
        };
        // The tasks keep running while the driver is gone.
        assert!(ping(&a.path, "10.0.1.6"));

        let second = OverlayDriver::new(dir.clone()).unwrap();
        // What the first driver handed out is handed out again.
        assert_eq!(
            second
                .attach(TASK_B, &on(&net, "10.0.1.6/24"))
                .await
                .unwrap(),
            b
        );
        second.detach(TASK_A).await.unwrap();
        assert!(!a.path.exists());
        assert!(ping(&b.path, "10.0.1.1"));

        second
            .prune(&HashSet::from([TASK_B.to_string()]))
            .await
            .unwrap();
        assert!(b.path.exists());
        second.prune(&HashSet::new()).await.unwrap();
        assert!(!b.path.exists());
        assert_eq!(mounted_netns_files(&dir.join("sbox")), 0);
        assert_eq!(links(None), ["lo"]);
        assert!(!nft_table_exists());
    });
}

#[test]
fn t30_prune_removes_unrecorded_leftovers() {
    isolated("t30_prune_removes_unrecorded_leftovers", || async {
        let state = StateDir::new();
        let dir = state.path.clone();
        let net = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        {
            let first = OverlayDriver::new(dir.clone()).unwrap();
            first
                .attach(TASK_A, &on(&net, "10.0.1.5/24"))
                .await
                .unwrap();
        }
        // A crash before the state was recorded.
        std::fs::remove_file(dir.join("state.json")).unwrap();
        let second = OverlayDriver::new(dir.clone()).unwrap();
        second.prune(&HashSet::new()).await.unwrap();
        assert_eq!(mounted_netns_files(&dir.join("netns")), 0);
        assert_eq!(mounted_netns_files(&dir.join("sbox")), 0);
        assert_eq!(links(None), ["lo"]);
        assert!(!nft_table_exists());
    });
}

/// A namespace standing for the world outside the node: a sleeping process
/// in a fresh network namespace, joined to the test's namespace by a veth
/// (198.51.100.1 here, 198.51.100.2 there). It has no route back to the
/// gateway bridge's subnet, so it can only answer masqueraded traffic.
struct Outside {
    child: Child,
}

impl Outside {
    fn new() -> Outside {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn outside namespace");
        let pid = child.id().to_string();
        let outside = Outside { child };
        // Wait until the child has its own namespace.
        let here = std::fs::read_link("/proc/self/ns/net").unwrap();
        for _ in 0..100 {
            match std::fs::read_link(format!("/proc/{pid}/ns/net")) {
                Ok(ns) if ns != here => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        ok(&[
            "ip", "link", "add", "vout", "type", "veth", "peer", "name", "vin", "netns", &pid,
        ]);
        ok(&["ip", "addr", "add", "198.51.100.1/24", "dev", "vout"]);
        ok(&["ip", "link", "set", "vout", "up"]);
        for cmd in [
            vec!["ip", "addr", "add", "198.51.100.2/24", "dev", "vin"],
            vec!["ip", "link", "set", "vin", "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ] {
            let mut args = vec!["nsenter", "-t", &pid, "-n"];
            args.extend(cmd);
            ok(&args);
        }
        outside
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn t40_egress_is_masqueraded() {
    isolated("t40_egress_is_masqueraded", || async {
        let _outside = Outside::new();
        let state = StateDir::new();
        let dir = state.path.clone();
        let driver = OverlayDriver::new(dir).unwrap();
        let net = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        let a = driver
            .attach(TASK_A, &on(&net, "10.0.1.5/24"))
            .await
            .unwrap();
        assert!(ping(&a.path, "198.51.100.2"), "no reply from outside");
        // Without the masquerade the outside cannot answer: the rule, not a
        // route, made the difference.
        ok(&["nft", "delete", "table", "ip", "shoal"]);
        assert!(!ping(&a.path, "198.51.100.2"), "reply without masquerade");
        driver.detach(TASK_A).await.unwrap();
        assert!(!nft_table_exists());
    });
}

#[test]
fn t50_internal_and_networkless_tasks() {
    isolated("t50_internal_and_networkless_tasks", || async {
        let _outside = Outside::new();
        let state = StateDir::new();
        let dir = state.path.clone();
        let driver = OverlayDriver::new(dir).unwrap();
        let internal = network(NET_INTERNAL, "10.0.9.0/24", "10.0.9.1", true);
        let a = driver
            .attach(TASK_A, &on(&internal, "10.0.9.5/24"))
            .await
            .unwrap();
        assert_eq!(links(Some(&a.path)), ["lo", "eth0"]);
        assert!(!routes(&a.path).iter().any(|r| r["dst"] == "default"));
        assert!(!ping(&a.path, "198.51.100.2"));
        assert!(!links(None).contains(&"shoal_gwbridge".to_string()));
        assert!(!nft_table_exists());
        assert!(a.resolv_conf.contains("nameserver 127.0.0.11\n"));

        // No networks at all: loopback and the way out, a plain resolv.conf.
        let b = driver.attach(TASK_B, &[]).await.unwrap();
        assert!(b.interfaces.is_empty());
        assert_eq!(links(Some(&b.path)), ["lo", "eth0"]);
        assert_eq!(ipv4s(&addr_of(&b.path, "eth0")), ["172.18.0.2/16"]);
        assert!(ping(&b.path, "198.51.100.2"));
        assert!(!b.resolv_conf.contains("127.0.0.11"), "{}", b.resolv_conf);

        driver.prune(&HashSet::new()).await.unwrap();
        assert_eq!(links(None), ["lo", "vout"]);
        assert!(!nft_table_exists());
    });
}

#[test]
fn t60_shared_objects_removed_by_hand_come_back() {
    isolated("t60_shared_objects_removed_by_hand_come_back", || async {
        let _outside = Outside::new();
        let state = StateDir::new();
        let dir = state.path.clone();
        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let net = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        driver
            .attach(TASK_A, &on(&net, "10.0.1.5/24"))
            .await
            .unwrap();

        ok(&["ip", "link", "del", "shoal_gwbridge"]);
        ok(&["nft", "delete", "table", "ip", "shoal"]);
        let sandbox = driver.sandbox_path(NET);
        ok(&["umount", sandbox.to_str().unwrap()]);
        std::fs::remove_file(&sandbox).unwrap();

        let b = driver
            .attach(TASK_B, &on(&net, "10.0.1.6/24"))
            .await
            .unwrap();
        // Same gateway subnet, next address.
        assert_eq!(ipv4s(&addr_of(&b.path, "eth1")), ["172.18.0.3/16"]);
        assert!(ping(&b.path, "10.0.1.1"));
        assert!(ping(&b.path, "198.51.100.2"));
        assert!(nft_table_exists());

        driver.prune(&HashSet::new()).await.unwrap();
        assert_eq!(links(None), ["lo", "vout"]);
        assert!(!nft_table_exists());
    });
}

#[test]
fn t70_records_of_another_boot_are_dropped() {
    isolated("t70_records_of_another_boot_are_dropped", || async {
        let state = StateDir::new();
        let dir = state.path.clone();
        let net = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        {
            let first = OverlayDriver::new(dir.clone()).unwrap();
            first
                .attach(TASK_A, &on(&net, "10.0.1.5/24"))
                .await
                .unwrap();
            first.prune(&HashSet::new()).await.unwrap();
        }
        // A record as a previous boot left it: the kernel objects it names
        // do not exist; an empty file stands where its namespace was.
        let stale = serde_json::json!({
            "boot_id": "0000-previous-boot",
            "networks": {},
            "tasks": {TASK_A: {"interfaces": [], "resolv_conf": "stale"}},
            "egress": null
        });
        std::fs::write(dir.join("state.json"), stale.to_string()).unwrap();
        std::fs::write(dir.join("netns").join(TASK_A), b"").unwrap();

        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let a = driver
            .attach(TASK_A, &on(&net, "10.0.1.7/24"))
            .await
            .unwrap();
        assert_ne!(a.resolv_conf, "stale");
        assert_eq!(
            a.interfaces,
            vec![("eth0".to_string(), "10.0.1.7/24".to_string())]
        );
        assert!(ping(&a.path, "10.0.1.1"));
        driver.detach(TASK_A).await.unwrap();
        assert_eq!(mounted_netns_files(&dir.join("netns")), 0);
    });
}

/// `docker network connect`/`disconnect`: attaching an attached task with
/// other networks adds and removes interfaces in its living namespace, and
/// a network no task uses any more goes.
#[test]
fn t80_a_task_moves_between_networks() {
    isolated("t80_a_task_moves_between_networks", || async {
        let state = StateDir::new();
        let dir = state.path.clone();
        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let one = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        let two = network(NET_INTERNAL, "10.0.2.0/24", "10.0.2.1", false);
        let a = driver
            .attach(TASK_A, &on(&one, "10.0.1.5/24"))
            .await
            .unwrap();
        let b = driver
            .attach(TASK_B, &on(&two, "10.0.2.6/24"))
            .await
            .unwrap();
        assert!(!ping(&a.path, "10.0.2.6"));

        // Connected to B's network: a third interface, B answers.
        let both = [on(&one, "10.0.1.5/24"), on(&two, "10.0.2.5/24")].concat();
        let moved = driver.attach(TASK_A, &both).await.unwrap();
        assert_eq!(moved.path, a.path, "the same namespace");
        assert_eq!(
            moved.interfaces,
            vec![
                ("eth0".to_string(), "10.0.1.5/24".to_string()),
                ("eth2".to_string(), "10.0.2.5/24".to_string())
            ]
        );
        assert_eq!(ipv4s(&addr_of(&a.path, "eth2")), ["10.0.2.5/24"]);
        assert_eq!(ipv4s(&addr_of(&a.path, "eth1")), ["172.18.0.2/16"]);
        assert!(ping(&a.path, "10.0.2.6"));
        assert!(ping(&b.path, "10.0.2.5"));
        // Attaching the same again changes nothing.
        assert_eq!(driver.attach(TASK_A, &both).await.unwrap(), moved);
        assert_eq!(links(Some(&a.path)).len(), 4);

        // Disconnected from its first network: that interface and, as no
        // task uses the network any more, its sandbox go.
        let sandboxes = mounted_netns_files(&dir.join("sbox"));
        let left = driver
            .attach(TASK_A, &on(&two, "10.0.2.5/24"))
            .await
            .unwrap();
        assert_eq!(
            left.interfaces,
            vec![("eth2".to_string(), "10.0.2.5/24".to_string())]
        );
        assert_eq!(links(Some(&a.path)).len(), 3);
        assert!(!ping(&a.path, "10.0.1.1"));
        assert!(ping(&a.path, "10.0.2.6"));
        assert_eq!(mounted_netns_files(&dir.join("sbox")), sandboxes - 1);
        // Egress still works through the gateway bridge.
        let r = routes(&a.path);
        assert!(
            r.iter()
                .any(|r| r["dst"] == "default" && r["dev"] == "eth1"),
            "{r:?}"
        );

        // A restarted driver finds the moved task as it is.
        drop(driver);
        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let keep: HashSet<String> = [TASK_A.to_string(), TASK_B.to_string()].into();
        driver.prune(&keep).await.unwrap();
        assert_eq!(
            driver
                .attach(TASK_A, &on(&two, "10.0.2.5/24"))
                .await
                .unwrap(),
            left
        );
        driver.detach(TASK_A).await.unwrap();
        driver.detach(TASK_B).await.unwrap();
        assert_eq!(links(None), ["lo"]);
        assert_eq!(mounted_netns_files(&dir.join("sbox")), 0);
    });
}

#[test]
fn t90_many_tasks_attach_and_detach_at_once() {
    isolated("t90_many_tasks_attach_and_detach_at_once", || async {
        let state = StateDir::new();
        let dir = state.path.clone();
        let driver = std::sync::Arc::new(OverlayDriver::new(dir.clone()).unwrap());
        let net = network(NET, "10.0.3.0/24", "10.0.3.1", false);
        // What a node starting a service's replicas does: every task's
        // attach at once, first ones making the network and gateway bridge.
        let tasks: Vec<String> = (0..24).map(|i| format!("tc{i:023}")).collect();
        let attaches = tasks.iter().enumerate().map(|(i, t)| {
            let (driver, net, t) = (driver.clone(), net.clone(), t.clone());
            async move {
                driver
                    .attach(&t, &on(&net, &format!("10.0.3.{}/24", i + 10)))
                    .await
            }
        });
        let attached = futures::future::join_all(attaches).await;
        for (t, a) in tasks.iter().zip(&attached) {
            let a = a.as_ref().unwrap_or_else(|e| panic!("{t}: {e}"));
            assert_eq!(links(Some(&a.path)).len(), 3, "{t}");
        }
        // Each reaches the others over the one network.
        let first = attached[0].as_ref().unwrap();
        assert!(ping(&first.path, "10.0.3.33"));
        assert!(ping(&attached[23].as_ref().unwrap().path, "10.0.3.10"));
        assert_eq!(mounted_netns_files(&dir.join("netns")), tasks.len());

        // A restarted driver finds every one of them recorded.
        let again = OverlayDriver::new(dir.clone()).unwrap();
        let keep: HashSet<String> = tasks.iter().cloned().collect();
        again.prune(&keep).await.unwrap();
        assert_eq!(mounted_netns_files(&dir.join("netns")), tasks.len());
        drop(again);

        let detaches = tasks.iter().map(|t| {
            let (driver, t) = (driver.clone(), t.clone());
            async move { driver.detach(&t).await }
        });
        for d in futures::future::join_all(detaches).await {
            d.unwrap();
        }
        assert_eq!(mounted_netns_files(&dir.join("netns")), 0);
        assert_eq!(mounted_netns_files(&dir.join("sbox")), 0);
        assert_eq!(links(None), ["lo"]);
        assert!(!nft_table_exists());
    });
}

#[test]
fn t95_a_torn_state_file_is_started_without() {
    isolated("t95_a_torn_state_file_is_started_without", || async {
        let state = StateDir::new();
        let dir = state.path.clone();
        // What a power loss may leave of a file replaced without a sync.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), b"{\"boot_id\": \"12").unwrap();
        let driver = OverlayDriver::new(dir.clone()).unwrap();
        let net = network(NET, "10.0.1.0/24", "10.0.1.1", false);
        let a = driver
            .attach(TASK_A, &on(&net, "10.0.1.5/24"))
            .await
            .unwrap();
        assert!(ping(&a.path, "10.0.1.1"));
        driver.detach(TASK_A).await.unwrap();
        assert_eq!(mounted_netns_files(&dir.join("netns")), 0);
    });
}
