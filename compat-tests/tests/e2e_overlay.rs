//! End-to-end: the data path of swarm networks on one node, driven with the
//! stock CLI against shoald on a private containerd, both in a node network
//! namespace of their own (see `common::NodeNs`): tasks reach each other by
//! service name over TCP on a user overlay network (the tutorials' web + db
//! pattern), `tasks.NAME` lists every replica, a service on another network
//! is neither resolvable nor reachable, connections to a VIP are spread over
//! the replicas, published ports reach every replica, and all of it again
//! after a shoald restart; nothing is left in the node afterwards.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::wait_for;
use common::Containerd;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

/// Creates a detached service from the test image; `args` go before the
/// image, `cmd` after it.
fn service(d: &Daemon, name: &str, args: &[&str], cmd: &[&str]) {
    let mut all = vec!["service", "create", "-d", "--quiet", "--name", name];
    all.extend_from_slice(args);
    all.push(IMAGE);
    all.extend_from_slice(cmd);
    d.ok(&all);
}

/// An HTTP server on `port` serving the container's root, so that
/// `/etc/hostname` names the replica that answered.
fn httpd(port: &str) -> Vec<String> {
    ["httpd", "-f", "-p", port, "-h", "/"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The IDs of the service's running containers once there are `n`.
fn running(d: &Daemon, svc: &str, n: usize) -> Vec<String> {
    let filter = format!("label=com.docker.swarm.service.name={svc}");
    wait_for(60, &format!("{n} running containers of {svc}"), || {
        let out = d.ok(&["container", "ls", "-q", "--no-trunc", "--filter", &filter]);
        let ids: Vec<String> = out.lines().map(str::to_string).collect();
        (ids.len() == n).then_some(ids)
    })
}

/// Runs `args` in container `c` under busybox `timeout`; stdout when it
/// exits 0.
fn exec(d: &Daemon, c: &str, args: &[&str]) -> Option<String> {
    let mut all = vec!["exec", c, "timeout", "5"];
    all.extend_from_slice(args);
    let r = d.docker(&all);
    (r.code == 0).then_some(r.stdout)
}

/// The addresses busybox nslookup prints for `name` (the server's own
/// `127.0.0.11:53` line left out).
fn lookup(d: &Daemon, c: &str, name: &str) -> BTreeSet<String> {
    let out = exec(d, c, &["nslookup", name]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.ends_with(":53"))
        .collect()
}

/// GET `/etc/hostname` from `host:port` inside container `c`.
fn fetch(d: &Daemon, c: &str, host: &str, port: &str) -> Option<String> {
    let url = format!("http://{host}:{port}/etc/hostname");
    exec(d, c, &["wget", "-qO-", &url]).map(|s| s.trim().to_string())
}

/// The hostname of container `c` (its short ID, as under dockerd).
fn hostname(c: &str) -> String {
    c[..12].to_string()
}

/// The service's VIP on its (only) network, without prefix.
fn vip(d: &Daemon, svc: &str) -> String {
    let v = d.service_format(svc, "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}");
    let v = v.split_whitespace().last().unwrap_or_default().to_string();
    v.split('/').next().unwrap().to_string()
}

/// Every address of `svc`'s running tasks on its networks, without prefix.
fn task_addresses(d: &Daemon, svc: &str) -> BTreeSet<String> {
    let ids = d.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        svc,
    ]);
    let mut out = BTreeSet::new();
    for id in ids.lines() {
        let a = d.ok(&[
            "inspect",
            "--format",
            "{{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}",
            id,
        ]);
        for cidr in a.split_whitespace() {
            out.insert(cidr.split('/').next().unwrap().to_string());
        }
    }
    out
}

/// Requests web's VIP from 8 loops at once, each with a new connection per
/// request, until /tmp/stop exists (at most 2000 times each), printing `ok`
/// or `failed` for each request.
const ASK_UNTIL_STOPPED: &str = "ask() { n=0; while [ ! -e /tmp/stop ] && [ $n -lt 2000 ]; do \
    if timeout 2 wget -qO- http://web/etc/hostname >/dev/null 2>&1; then echo ok; else echo failed; fi; \
    n=$((n+1)); done; }; for i in 1 2 3 4 5 6 7 8; do ask & done; wait";

/// The errors of the service's tasks, one per line.
fn task_errors(d: &Daemon, svc: &str) -> String {
    d.ok(&["service", "ps", "--no-trunc", "--format", "{{.Error}}", svc])
}

/// The hostnames answering `count` requests to `host:port` from `c`.
fn answering(d: &Daemon, c: &str, host: &str, port: &str, count: usize) -> BTreeSet<String> {
    (0..count).filter_map(|_| fetch(d, c, host, port)).collect()
}

/// What the node's kernel holds that shoal could leak: links, namespace
/// files of the network driver, nftables tables.
fn node_kernel_state(
    ctrd: &Containerd,
    d: &Daemon,
) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let node = &ctrd.node;
    let links = node
        .output(Duration::from_secs(5), &["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap().to_string())
        .collect();
    let mut files = BTreeSet::new();
    for sub in ["netns", "sbox"] {
        let dir = d.data_root().join("netdrv").join(sub);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            files.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    let tables = node.output(Duration::from_secs(5), &["nft", "list", "tables"]);
    (links, files, tables)
}

#[test]
fn services_on_an_overlay_reach_each_other_by_name_and_nothing_else() {
    let Some((ctrd, mut d)) = common::swarm_with_test_image() else {
        return;
    };
    let before = node_kernel_state(&ctrd, &d);
    d.ok(&["network", "create", "-d", "overlay", "appnet"]);
    d.ok(&["network", "create", "-d", "overlay", "othernet"]);
    let db_cmd = httpd("5432");
    let db_cmd: Vec<&str> = db_cmd.iter().map(String::as_str).collect();
    service(&d, "db", &["--network", "appnet"], &db_cmd);
    let web_cmd = httpd("80");
    let web_cmd: Vec<&str> = web_cmd.iter().map(String::as_str).collect();
    service(
        &d,
        "web",
        // Killed at once when stopped (httpd as PID 1 ignores SIGTERM), so
        // a stopped replica still in a VIP would refuse connections.
        &[
            "--network",
            "appnet",
            "--replicas",
            "3",
            "--stop-signal",
            "KILL",
        ],
        &web_cmd,
    );
    service(&d, "lone", &["--network", "othernet"], &["sleep", "3600"]);
    let db = running(&d, "db", 1);
    let web = running(&d, "web", 3);
    let lone = running(&d, "lone", 1);

    // The service name is its VIP, tasks.NAME every replica's address.
    let db_vip = vip(&d, "db");
    let web_vip = vip(&d, "web");
    assert!(!db_vip.is_empty() && !web_vip.is_empty());
    let found = wait_for(20, "db to resolve from web", || {
        let a = lookup(&d, &web[0], "db");
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(found, BTreeSet::from([db_vip.clone()]));
    let replicas = task_addresses(&d, "web");
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    assert_eq!(lookup(&d, &db[0], "tasks.web"), replicas);

    // container inspect and network inspect show the same addresses.
    let shown = d.ok(&[
        "container",
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}}/{{$v.IPPrefixLen}} {{end}}",
        &web[0],
    ]);
    let (net, cidr) = shown.trim().split_once('=').expect("one network");
    assert_eq!(net, "appnet");
    assert!(
        replicas.contains(cidr.split('/').next().unwrap()),
        "{shown}"
    );
    let listed = d.ok(&[
        "network",
        "inspect",
        "--format",
        "{{range $k, $v := .Containers}}{{$k}}={{$v.IPv4Address}} {{end}}",
        "appnet",
    ]);
    assert!(listed.contains(&format!("{}={cidr}", web[0])), "{listed}");
    assert_eq!(
        listed.split_whitespace().count(),
        4,
        "db and 3 web: {listed}"
    );

    // TCP by name, through the VIP, to the one db replica.
    assert_eq!(
        fetch(&d, &web[0], "db", "5432").as_deref(),
        Some(hostname(&db[0]).as_str()),
        "web reaches db by name"
    );

    // Connections to web's VIP reach all three replicas.
    let want: BTreeSet<String> = web.iter().map(|c| hostname(c)).collect();
    assert_eq!(answering(&d, &db[0], "web", "80", 12), want);

    // Another network: no name, no route.
    assert!(
        lookup(&d, &lone[0], "db").is_empty(),
        "db resolves on othernet"
    );
    assert!(fetch(&d, &lone[0], &db_vip, "5432").is_none());

    // Restart shoald: the running tasks keep their namespaces, names and
    // VIPs answer again.
    d.restart();
    assert_eq!(
        running(&d, "web", 3),
        web,
        "the same containers are adopted"
    );
    wait_for(30, "db by name after the restart", || {
        (fetch(&d, &web[1], "db", "5432").as_deref() == Some(hostname(&db[0]).as_str()))
            .then_some(())
    });
    assert_eq!(lookup(&d, &db[0], "tasks.web"), replicas);
    assert_eq!(answering(&d, &db[0], "web", "80", 12), want);

    // By hand, a non-attachable network is refused as dockerd refuses it...
    let err = d.fail(&["network", "connect", "othernet", &web[0]]);
    assert!(
        err.contains("Could not attach to network othernet: rpc error: code = PermissionDenied desc = network othernet not manually attachable"),
        "{err}"
    );
    let err = d.fail(&["network", "connect", "appnet", "nosuchcontainer"]);
    assert!(err.contains("No such container: nosuchcontainer"), "{err}");
    // ...and an attachable one is plugged into the running task: an
    // address on it, its names there, its services reachable.
    d.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "shared",
    ]);
    service(&d, "peer", &["--network", "shared"], &web_cmd);
    let peer = running(&d, "peer", 1);
    d.ok(&["network", "connect", "--alias", "front", "shared", &web[0]]);
    let shown = d.ok(&[
        "container",
        "inspect",
        "--format",
        "{{with index .NetworkSettings.Networks \"shared\"}}{{.IPAddress}} {{.Aliases}}{{end}}",
        &web[0],
    ]);
    let (addr, aliases) = shown.trim().split_once(' ').expect("on shared");
    assert!(aliases.contains("front"), "{shown}");
    assert!(
        d.ok(&[
            "network",
            "inspect",
            "--format",
            "{{json .Containers}}",
            "shared"
        ])
        .contains(addr),
        "network inspect lists the connected container"
    );
    assert_eq!(
        fetch(&d, &web[0], "peer", "80").as_deref(),
        Some(hostname(&peer[0]).as_str()),
        "the connected task reaches a service of the network by name"
    );
    assert_eq!(
        lookup(&d, &peer[0], "front"),
        BTreeSet::from([addr.to_string()])
    );
    assert_eq!(
        fetch(&d, &peer[0], "front", "80").as_deref(),
        Some(hostname(&web[0]).as_str())
    );
    // Its other networks are as before.
    assert_eq!(
        fetch(&d, &web[0], "db", "5432").as_deref(),
        Some(hostname(&db[0]).as_str())
    );
    let hosts = exec(&d, &web[0], &["cat", "/etc/hosts"]).unwrap_or_default();
    assert!(hosts.contains(&format!("{addr}\t")), "{hosts}");
    let err = d.fail(&["network", "connect", "shared", &web[0]]);
    assert!(err.contains("already exists in network shared"), "{err}");
    // The connection outlives a shoald restart; the disconnect below is
    // made by the controller that adopted the container.
    d.restart();
    wait_for(30, "the connected network after the restart", || {
        (fetch(&d, &web[0], "peer", "80").as_deref() == Some(hostname(&peer[0]).as_str()))
            .then_some(())
    });
    // Disconnected: the interface, the address and the names go.
    d.ok(&["network", "disconnect", "shared", &web[0]]);
    let shown = d.ok(&[
        "container",
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &web[0],
    ]);
    assert_eq!(shown.trim(), "appnet");
    assert!(fetch(&d, &web[0], "peer", "80").is_none());
    assert!(lookup(&d, &peer[0], "front").is_empty());
    let err = d.fail(&["network", "disconnect", "shared", &web[0]]);
    assert!(err.contains("is not connected to network shared"), "{err}");
    d.ok(&["service", "rm", "peer"]);
    // ...and --network-add gives a service's new tasks the network.
    d.ok(&["service", "update", "-d", "--network-add", "appnet", "lone"]);
    let moved = wait_for(60, "lone's task on appnet", || {
        let now = running(&d, "lone", 1);
        (now != lone).then_some(now)
    });
    wait_for(20, "db from lone's new task", || {
        (fetch(&d, &moved[0], "db", "5432").as_deref() == Some(hostname(&db[0]).as_str()))
            .then_some(())
    });
    d.ok(&["network", "rm", "shared"]);

    // Scaling down drops no connection: a task leaves the VIP before its
    // container is stopped. db asks web without pause meanwhile.
    let outcomes = std::thread::scope(|s| {
        let asking = s.spawn(|| d.docker(&["exec", &db[0], "sh", "-c", ASK_UNTIL_STOPPED]));
        std::thread::sleep(Duration::from_millis(500));
        d.ok(&["service", "scale", "-d", "web=1"]);
        running(&d, "web", 1);
        std::thread::sleep(Duration::from_millis(500));
        d.ok(&["exec", &db[0], "touch", "/tmp/stop"]);
        asking.join().unwrap().stdout
    });
    let count = |what: &str| outcomes.lines().filter(|l| *l == what).count();
    assert!(count("ok") > 0, "{outcomes}");
    assert_eq!(
        count("failed"),
        0,
        "of {} requests while scaling down",
        count("ok") + count("failed")
    );
    // The stopped replicas gave their namespaces and addresses back (as
    // dockerd releases a stopped container's network): one namespace per
    // running container is left, though the tasks stay in the history.
    let up = d.ok(&["container", "ls", "-q"]).lines().count();
    wait_for(20, "the stopped replicas' namespaces to go", || {
        let (_, files, _) = node_kernel_state(&ctrd, &d);
        (files.iter().filter(|f| f.starts_with("netns/")).count() == up).then_some(())
    });
    // Scaled up again, the new replicas answer, on addresses the stopped
    // ones gave back too.
    d.ok(&["service", "scale", "-d", "web=3"]);
    let again: BTreeSet<String> = running(&d, "web", 3).iter().map(|c| hostname(c)).collect();
    wait_for(30, "every replica behind the VIP again", || {
        (answering(&d, &db[0], "web", "80", 6) == again).then_some(())
    });

    // Everything goes with the services and networks.
    for s in ["db", "web", "lone"] {
        d.ok(&["service", "rm", s]);
    }
    wait_for(60, "the task containers to go", || {
        d.ok(&["container", "ls", "-aq"])
            .trim()
            .is_empty()
            .then_some(())
    });
    d.ok(&["network", "rm", "appnet", "othernet"]);
    let after = wait_for(20, "the node to be as before", || {
        let now = node_kernel_state(&ctrd, &d);
        (now == before).then_some(now)
    });
    assert_eq!(after.1, BTreeSet::new(), "namespace files left");
}

/// GET `/etc/hostname` from `host:port` with curl inside `ns`; `None` when
/// the connection fails.
fn curl_in(ns: &common::NodeNs, host: &str, port: &str) -> Option<String> {
    let url = format!("http://{host}:{port}/etc/hostname");
    let out = ns.output(
        Duration::from_secs(5),
        &["curl", "-sf", "--max-time", "3", &url],
    );
    let out = out.trim();
    (!out.is_empty()).then(|| out.to_string())
}

/// The hostnames answering `count` requests to `host:port` from `ns`.
fn answering_in(ns: &common::NodeNs, host: &str, port: &str, count: usize) -> BTreeSet<String> {
    (0..count).filter_map(|_| curl_in(ns, host, port)).collect()
}

#[test]
fn published_ports_reach_every_replica_from_the_node_and_beyond() {
    let Some((ctrd, mut d)) = common::swarm_with_test_image() else {
        return;
    };
    let node = &ctrd.node;
    let (client, node_addr) = node.client();
    let before = node_kernel_state(&ctrd, &d);
    let web_cmd = httpd("80");
    let web_cmd: Vec<&str> = web_cmd.iter().map(String::as_str).collect();
    service(&d, "web", &["--replicas", "3", "-p", "8080:80"], &web_cmd);
    service(
        &d,
        "solo",
        &["--publish", "mode=host,published=8081,target=80"],
        &web_cmd,
    );
    let web = running(&d, "web", 3);
    let solo = running(&d, "solo", 1);
    let want: BTreeSet<String> = web.iter().map(|c| hostname(c)).collect();
    // Tasks on the routing mesh only use the embedded DNS as under dockerd,
    // and the mesh has no names.
    let resolv = exec(&d, &web[0], &["cat", "/etc/resolv.conf"]).unwrap_or_default();
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    assert!(lookup(&d, &web[0], "solo").is_empty());

    // The routing mesh: loopback and the node's address, from the node and
    // from another machine, every replica answering.
    wait_for(20, "the published port to answer", || {
        curl_in(node, "127.0.0.1", "8080")
    });
    assert_eq!(answering_in(node, "127.0.0.1", "8080", 12), want);
    assert_eq!(answering_in(&client, node_addr, "8080", 12), want);
    // Host mode: only this node's task.
    assert_eq!(
        answering_in(&client, node_addr, "8081", 3),
        BTreeSet::from([hostname(&solo[0])])
    );
    assert_eq!(curl_in(node, "127.0.0.1", "8081"), Some(hostname(&solo[0])));

    // A second host-mode task wanting the same port cannot be placed.
    service(
        &d,
        "clash",
        &["--publish", "mode=host,published=8081,target=80"],
        &web_cmd,
    );
    wait_for(20, "the clash to be explained", || {
        let err = task_errors(&d, "clash");
        err.contains("host-mode port already in use on 1 node")
            .then_some(())
    });
    d.ok(&["service", "rm", "clash"]);

    // A port a process of the node already listens on: the task is
    // rejected with dockerd's words.
    let mut holder = node
        .command("python3")
        .args(["-m", "http.server", "--bind", "0.0.0.0", "8090"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    wait_for(10, "the node's own listener", || {
        let url = "http://127.0.0.1:8090/";
        let o = node.output(
            Duration::from_secs(3),
            &["curl", "-sf", "--max-time", "2", url],
        );
        (!o.is_empty()).then_some(())
    });
    service(
        &d,
        "taken",
        &["--publish", "mode=host,published=8090,target=80"],
        &web_cmd,
    );
    let err = wait_for(30, "the taken port to be reported", || {
        let err = task_errors(&d, "taken");
        err.contains("address already in use").then_some(err)
    });
    assert!(
        err.contains("driver failed programming external connectivity on endpoint taken.1.")
            && err.contains("Error starting userland proxy: listen tcp4 0.0.0.0:8090: bind: address already in use"),
        "{err}"
    );
    d.ok(&["service", "rm", "taken"]);
    let _ = holder.kill();
    let _ = holder.wait();

    // --publish-add and --publish-rm apply live (the CLI removes by target
    // port: both published ports of target 80 go).
    d.ok(&["service", "update", "-d", "--publish-add", "8082:80", "web"]);
    wait_for(30, "the added port", || curl_in(&client, node_addr, "8082"));
    d.ok(&["service", "update", "-d", "--publish-rm", "80", "web"]);
    wait_for(30, "the removed ports to stop answering", || {
        (curl_in(&client, node_addr, "8080").is_none()
            && curl_in(&client, node_addr, "8082").is_none())
        .then_some(())
    });
    d.ok(&["service", "update", "-d", "--publish-add", "8083:80", "web"]);
    wait_for(30, "the port added again", || {
        curl_in(&client, node_addr, "8083")
    });
    assert_eq!(
        answering_in(&client, node_addr, "8083", 12),
        want,
        "the same replicas answer on the new port"
    );

    // After a shoald restart the mesh still answers.
    d.restart();
    assert_eq!(running(&d, "web", 3), web);
    wait_for(30, "the mesh after the restart", || {
        curl_in(&client, node_addr, "8083")
    });
    assert_eq!(answering_in(&client, node_addr, "8083", 12), want);

    // Nothing is left once the services are gone.
    d.ok(&["service", "rm", "web", "solo"]);
    wait_for(60, "the task containers to go", || {
        d.ok(&["container", "ls", "-aq"])
            .trim()
            .is_empty()
            .then_some(())
    });
    assert_eq!(curl_in(&client, node_addr, "8083"), None);
    assert_eq!(curl_in(node, "127.0.0.1", "8081"), None);
    let after = wait_for(20, "the node to be as before", || {
        let now = node_kernel_state(&ctrd, &d);
        (now == before).then_some(now)
    });
    assert_eq!(after.1, BTreeSet::new(), "namespace files left");
}
