//! End-to-end: user-defined local bridge networks for standalone
//! containers (`docker network create` without `-d`), driven by the stock
//! CLI against shoald on a private containerd, in the node's own
//! namespaces.
//!
//! What a user checks: the network shows in `ls` and `inspect` as dockerd
//! shows it; two containers on it resolve each other by name and alias
//! (embedded DNS at 127.0.0.11) and talk; a container on another network
//! neither resolves nor reaches them; a published port answers from
//! outside the node; `connect`/`disconnect` add and take a network from a
//! running container; `rm` is refused while a container is attached, with
//! dockerd's text, and works after; `prune` removes unused networks; the
//! networks outlive a shoald restart; and once everything is removed the
//! node's links and nftables rules are as they were.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::time::Duration;

use common::node_with_test_image as node;
use common::wait_for;
use common::Containerd;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

fn inspect(d: &Daemon, what: &[&str], format: &str) -> String {
    let mut args = what.to_vec();
    args.insert(args.len() - 1, "-f");
    args.insert(args.len() - 1, format);
    d.ok(&args).trim().to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

/// What the node has that a network could leave behind: its links and its
/// nftables ruleset.
fn kernel_state(ctrd: &Containerd) -> (String, String) {
    let links = ctrd
        .node
        .output(Duration::from_secs(5), &["ip", "-br", "link"]);
    let mut names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort();
    let rules = ctrd
        .node
        .output(Duration::from_secs(5), &["nft", "list", "ruleset"]);
    (names.join(" "), rules)
}

/// `GET http://HOST/etc/hostname` from container `from` (busybox's `wget
/// -T` crashes: the time is bounded from outside).
fn fetch(d: &Daemon, from: &str, host: &str) -> Option<String> {
    let url = format!("http://{host}/etc/hostname");
    let r = d.docker(&["exec", from, "timeout", "2", "wget", "-qO-", &url]);
    (r.code == 0).then(|| r.stdout.trim().to_string())
}

fn resolves(d: &Daemon, from: &str, name: &str) -> Option<String> {
    let r = d.docker(&["exec", from, "nslookup", name, "127.0.0.11"]);
    (r.code == 0).then_some(r.stdout)
}

#[test]
fn bridge_networks_resolve_reach_isolate_survive_and_leave_nothing() {
    let Some((ctrd, mut d)) = node() else {
        return;
    };
    let (client, node_addr) = ctrd.node.client();
    let before = kernel_state(&ctrd);

    let id = d.ok(&["network", "create", "--label", "team=web", "appnet"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let err = d.fail(&["network", "create", "appnet"]);
    assert!(
        err.contains("network with name appnet already exists"),
        "{err}"
    );
    let err = d.fail(&["network", "create", "host"]);
    assert!(
        err.contains("operation is not permitted on predefined host network"),
        "{err}"
    );
    let ls = d.ok(&[
        "network",
        "ls",
        "--format",
        "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(
        ls.lines()
            .any(|l| l == format!("{} appnet bridge local", &id[..12])),
        "{ls}"
    );
    let n = json(&d.ok(&["network", "inspect", "appnet"]));
    let n = &n[0];
    assert_eq!(n["Id"], id.as_str());
    assert_eq!(n["Scope"], "local");
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["Internal"], false);
    assert_eq!(n["Labels"]["team"], "web");
    assert_eq!(n["IPAM"]["Driver"], "default");
    // The first of dockerd's default pools: nothing on the node uses it.
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "172.17.0.1");
    assert_eq!(n["Containers"], serde_json::json!({}));
    // Its bridge is on the node with the gateway address.
    let bridge = format!("br-{}", &id[..12]);
    let addr = ctrd.node.output(
        Duration::from_secs(5),
        &["ip", "-4", "-br", "addr", "show", &bridge],
    );
    assert!(addr.contains("172.17.0.1/16"), "{addr}");

    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        "-p",
        "18090:80",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "appnet",
        IMAGE,
        "sleep",
        "600",
    ]);
    let web_id = inspect(&d, &["inspect", "web"], "{{.Id}}");
    let web_ip = inspect(
        &d,
        &["inspect", "web"],
        "{{.NetworkSettings.Networks.appnet.IPAddress}}",
    );
    assert!(web_ip.starts_with("172.17.0."), "{web_ip}");
    let web = json(&d.ok(&["inspect", "web"]));
    let ep = &web[0]["NetworkSettings"]["Networks"]["appnet"];
    assert_eq!(ep["NetworkID"], id.as_str());
    assert_eq!(ep["Gateway"], "172.17.0.1");
    assert_eq!(ep["IPPrefixLen"], 16);
    assert_eq!(ep["IPAMConfig"], serde_json::Value::Null);
    assert_eq!(
        ep["Aliases"],
        serde_json::json!(["www", web_id[..12].to_string()])
    );
    assert_eq!(web[0]["HostConfig"]["NetworkMode"], "appnet");

    // By name and by alias, through the embedded DNS.
    for name in ["web", "www"] {
        let got = wait_for(20, "the web container by name", || {
            fetch(&d, "client", name)
        });
        assert_eq!(got, web_id[..12], "{name}");
    }
    let resolv = d.ok(&["exec", "client", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");

    // `network inspect` lists both with their endpoints.
    let n = json(&d.ok(&["network", "inspect", "appnet"]));
    let on = n[0]["Containers"].as_object().unwrap().clone();
    assert_eq!(on.len(), 2, "{on:?}");
    let e = &on[&web_id];
    assert_eq!(e["Name"], "web");
    assert_eq!(e["IPv4Address"], format!("{web_ip}/16"));
    assert_eq!(e["EndpointID"].as_str().unwrap().len(), 64);

    // The published port answers from outside the node.
    let url = format!("http://{node_addr}:18090/etc/hostname");
    let got = wait_for(20, "the published port from outside", || {
        let o = client.output(
            Duration::from_secs(5),
            &["curl", "-sf", "--max-time", "3", &url],
        );
        (!o.trim().is_empty()).then(|| o.trim().to_string())
    });
    assert_eq!(got, web_id[..12]);

    // Another network neither resolves nor reaches appnet's containers.
    d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.66.0.0/24",
        "--gateway",
        "10.66.0.254",
        "othernet",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "othernet",
        "--ip",
        "10.66.0.9",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]);
    let other_ip = inspect(
        &d,
        &["inspect", "other"],
        "{{.NetworkSettings.Networks.othernet.IPAddress}}",
    );
    assert_eq!(other_ip, "10.66.0.9");
    let other_gw = inspect(
        &d,
        &["inspect", "other"],
        "{{.NetworkSettings.Networks.othernet.Gateway}}",
    );
    assert_eq!(other_gw, "10.66.0.254");
    assert_eq!(fetch(&d, "other", &web_ip), None);
    assert!(resolves(&d, "other", "web").is_none());
    assert_eq!(fetch(&d, "client", &other_ip), None);

    // A container asks for an address only where dockerd lets it.
    let err = d.fail(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "--ip",
        "172.17.0.99",
        IMAGE,
        "true",
    ]);
    assert!(
        err.contains("user specified IP address is supported only when connecting to networks with user configured subnets"),
        "{err}"
    );
    let err = d.fail(&[
        "run",
        "--rm",
        "--network",
        "othernet",
        "--ip",
        "10.66.0.9",
        IMAGE,
        "true",
    ]);
    assert!(err.contains("Address already in use"), "{err}");

    // connect/disconnect on a running container.
    d.ok(&["network", "connect", "othernet", "client"]);
    let got = wait_for(20, "the other network by name", || {
        fetch(&d, "client", "other")
    });
    assert_eq!(got, inspect(&d, &["inspect", "other"], "{{.Id}}")[..12]);
    let err = d.fail(&["network", "connect", "othernet", "client"]);
    assert!(
        err.contains("endpoint with name client already exists in network othernet"),
        "{err}"
    );
    d.ok(&["network", "disconnect", "othernet", "client"]);
    assert_eq!(fetch(&d, "client", &other_ip), None);
    let err = d.fail(&["network", "disconnect", "othernet", "client"]);
    assert!(
        err.contains("is not connected to network othernet"),
        "{err}"
    );

    // Removal is refused while a container is attached.
    let err = d.fail(&["network", "rm", "appnet"]);
    assert!(
        err.contains(&format!(
            "error while removing network: network appnet id {id} has active endpoints"
        )),
        "{err}"
    );

    // Both networks and their containers come back after a restart.
    d.stop();
    d.restart();
    let ls = d.ok(&["network", "ls", "--format", "{{.ID}} {{.Name}}"]);
    assert!(ls.contains(&format!("{} appnet", &id[..12])), "{ls}");
    assert!(ls.contains("othernet"), "{ls}");
    let got = wait_for(20, "the web container by name after the restart", || {
        fetch(&d, "client", "web")
    });
    assert_eq!(got, web_id[..12]);
    // A new container joins and is resolved.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "appnet",
        IMAGE,
        "sleep",
        "600",
    ]);
    wait_for(20, "the new container's name", || {
        resolves(&d, "client", "late").filter(|o| o.contains("172.17.0."))
    });

    // Once its containers are gone the network goes, and prune takes the
    // unused rest.
    d.ok(&["rm", "-f", "web", "client", "late", "other"]);
    d.ok(&["network", "rm", "appnet"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("othernet"), "{pruned}");
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains("appnet") && !ls.contains("othernet"), "{ls}");
    let left: Vec<_> = std::fs::read_dir(d.data_root().join("networks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(kernel_state(&ctrd), before);
}

#[test]
fn a_default_pool_avoids_the_nodes_routes_and_internal_networks_stay_inside() {
    let Some((ctrd, d)) = node() else {
        return;
    };
    // A route of the node over the first pool pushes the choice on, past
    // the default bridge's 172.18.0.0/16 too.
    let o = ctrd
        .node
        .run(&["ip", "route", "add", "blackhole", "172.17.0.0/16"]);
    assert!(o.status.success(), "{o:?}");
    d.ok(&["network", "create", "first"]);
    let subnet = inspect(
        &d,
        &["network", "inspect", "first"],
        "{{(index .IPAM.Config 0).Subnet}}",
    );
    assert_eq!(subnet, "172.19.0.0/16");
    let err = d.fail(&["network", "create", "--subnet", "172.19.5.0/24", "clash"]);
    assert!(
        err.contains("Pool overlaps with other one on this address space"),
        "{err}"
    );

    // An internal network: its containers talk to each other, not out.
    d.ok(&["network", "create", "--internal", "inside"]);
    assert_eq!(
        inspect(&d, &["network", "inspect", "inside"], "{{.Internal}}"),
        "true"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "inside",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "out",
        "--network",
        "first",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "inside",
        IMAGE,
        "sleep",
        "600",
    ]);
    let srv = inspect(&d, &["inspect", "srv"], "{{.Id}}");
    let got = wait_for(20, "the internal server by name", || {
        fetch(&d, "cli", "srv")
    });
    assert_eq!(got, srv[..12]);
    let out_ip = inspect(
        &d,
        &["inspect", "out"],
        "{{.NetworkSettings.Networks.first.IPAddress}}",
    );
    assert_eq!(fetch(&d, "cli", &out_ip), None);
    assert_eq!(fetch(&d, "out", "srv"), None);
    d.ok(&["rm", "-f", "srv", "out", "cli"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("first") && pruned.contains("inside"),
        "{pruned}"
    );
    let o = ctrd
        .node
        .run(&["ip", "route", "del", "blackhole", "172.17.0.0/16"]);
    assert!(o.status.success(), "{o:?}");
}
