//! Overlay networks across real nodes, as the tutorials use them: a service
//! on one node reaches a service on another by name, VIP and `tasks.NAME`;
//! a port published through the routing mesh answers on every node's
//! address (a node without a task of the service too) and spreads over the
//! replicas on all nodes; a lost node leaves every survivor's names and
//! balancers.

use std::collections::BTreeSet;

use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::swarm::container_on;
use compat_tests::cluster::swarm::HTTPD;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// `docker service create -d --name NAME ARGS... IMAGE CMD...`.
fn service(n: &Node, name: &str, args: &[&str], cmd: &[&str]) {
    let mut all = vec!["service", "create", "-d", "--quiet", "--name", name];
    all.extend_from_slice(args);
    all.push(TEST_IMAGE);
    all.extend_from_slice(cmd);
    n.ok(&all);
}

/// Runs `args` in container `c` on `n` under busybox `timeout`; stdout
/// when it exits 0.
fn exec(n: &Node, c: &str, args: &[&str]) -> Option<String> {
    let mut all = vec!["exec", c, "timeout", "5"];
    all.extend_from_slice(args);
    let r = n.docker(&all);
    r.success().then_some(r.stdout)
}

/// The addresses busybox nslookup prints for `name` (the server's own line
/// left out).
fn lookup(n: &Node, c: &str, name: &str) -> BTreeSet<String> {
    exec(n, c, &["nslookup", name])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.ends_with(":53"))
        .collect()
}

/// GET `/etc/hostname` from `host` inside container `c` on `n`.
fn fetch(n: &Node, c: &str, host: &str) -> Option<String> {
    let url = format!("http://{host}/etc/hostname");
    exec(n, c, &["wget", "-qO-", &url]).map(|s| s.trim().to_string())
}

/// The addresses of `svc`'s tasks meant to run, without prefix.
fn task_addresses(n: &Node, svc: &str) -> BTreeSet<String> {
    let ids = n.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        svc,
    ]);
    let mut out = BTreeSet::new();
    for id in ids.lines() {
        let a = n.ok(&[
            "inspect",
            "--format",
            "{{range .NetworksAttachments}}{{if not .Network.Spec.Ingress}}{{range .Addresses}}{{.}} {{end}}{{end}}{{end}}",
            id,
        ]);
        for cidr in a.split_whitespace() {
            out.insert(cidr.split('/').next().unwrap_or_default().to_string());
        }
    }
    out
}

/// A script asking `http://HOST/etc/hostname` from 4 loops at once, each
/// with a new connection per request, until /tmp/stop exists (at most 1500
/// times each), printing `ok` or `failed` for each request; it touches
/// /tmp/asking first.
fn ask_until_stopped(host: &str) -> String {
    format!(
        "touch /tmp/asking; ask() {{ n=0; while [ ! -e /tmp/stop ] && [ $n -lt 1500 ]; do \
         if timeout 2 wget -qO- http://{host}/etc/hostname >/dev/null 2>&1; \
         then echo ok; else echo failed; fi; n=$((n+1)); done; }}; \
         for i in 1 2 3 4; do ask & done; wait"
    )
}

/// Runs [`ask_until_stopped`] for `host` in container `c` on `n` while
/// `during` runs; the count of successful and failed requests.
fn asking_while(n: &Node, c: &str, host: &str, during: impl FnOnce()) -> (usize, usize) {
    let script = ask_until_stopped(host);
    let out = std::thread::scope(|s| {
        let asking = s.spawn(|| n.docker(&["exec", c, "sh", "-c", &script]));
        wait_for(10, "the askers to start", || {
            exec(n, c, &["test", "-e", "/tmp/asking"]).map(drop)
        });
        during();
        exec(n, c, &["touch", "/tmp/stop"]).expect("stop the askers");
        asking.join().expect("askers").stdout
    });
    let count = |what: &str| out.lines().filter(|l| *l == what).count();
    (count("ok"), count("failed"))
}

/// The addresses of `svc`'s tasks meant to run on node `host`.
fn addresses_on(n: &Node, svc: &str, host: &str) -> BTreeSet<String> {
    let all = task_addresses(n, svc);
    let filter = format!("node={host}");
    let ids = n.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        "--filter",
        &filter,
        svc,
    ]);
    let mut out = BTreeSet::new();
    for id in ids.lines() {
        let a = n.ok(&[
            "inspect",
            "--format",
            "{{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}",
            id,
        ]);
        out.extend(
            a.split_whitespace()
                .map(|c| c.split('/').next().unwrap_or_default().to_string())
                .filter(|ip| all.contains(ip)),
        );
    }
    out
}

/// The service's VIP on its non-ingress network, without prefix.
fn vip(n: &Node, svc: &str, net: &str) -> String {
    let net_id = n.ok(&["network", "inspect", "--format", "{{.Id}}", net]);
    let v = n.ok(&[
        "service",
        "inspect",
        "--format",
        "{{range .Endpoint.VirtualIPs}}{{.NetworkID}}={{.Addr}} {{end}}",
        svc,
    ]);
    v.split_whitespace()
        .find_map(|p| p.strip_prefix(&format!("{}=", net_id.trim())))
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// A lab swarm of one manager and two workers, each with the test image,
/// its engines started with `env`; `None` where no lab can run.
fn three_nodes(env: &[(&str, &str)]) -> Option<(Lab, Vec<std::sync::Arc<Node>>)> {
    let lab = Lab::for_test(Engine::Shoald)?;
    for (k, v) in env {
        lab.set_engine_env(k, v);
    }
    let nodes = swarm::form(&lab, 1, 2);
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    Some((lab, nodes))
}

/// busybox httpd with a CGI script answering the client address it sees
/// (`/cgi-bin/peer`) and a 3,000,000-byte file (`/big`).
const PEER_CGI: &str = "mkdir -p /w/cgi-bin && \
    printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /w/cgi-bin/peer && \
    chmod +x /w/cgi-bin/peer && head -c 3000000 /dev/zero > /w/big && exec httpd -f -p 80 -h /w";

/// The IPv4 address in busybox httpd's `REMOTE_ADDR` (it listens on IPv6:
/// `[::ffff:10.99.0.2]`).
fn ipv4_of(remote_addr: &str) -> String {
    let a = remote_addr
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    a.strip_prefix("::ffff:").unwrap_or(a).to_string()
}

/// The hostname of container `c` (its short ID, as under dockerd).
fn hostname(c: &str) -> String {
    c[..12].to_string()
}

#[test]
fn e2e_cluster_overlay_across_nodes() {
    let Some((lab, nodes)) = three_nodes(&[]) else {
        return;
    };
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.ok(&["network", "create", "-d", "overlay", "app"]);
    // The tutorial's pair: db on node2, web on node3.
    service(
        n1,
        "db",
        &["--network", "app", "--constraint", "node.hostname==node2"],
        HTTPD,
    );
    service(
        n1,
        "web",
        &["--network", "app", "--constraint", "node.hostname==node3"],
        HTTPD,
    );
    let db = container_on(n2, "db");
    let web = container_on(n3, "web");

    // By service name (the VIP), by tasks.NAME and by the task's address,
    // from node3 to node2 and back.
    let db_vip = vip(n1, "db", "app");
    let db_task = task_addresses(n1, "db");
    assert_eq!(lookup(n3, &web, "db"), BTreeSet::from([db_vip.clone()]));
    assert_eq!(lookup(n3, &web, "tasks.db"), db_task);
    let got = wait_for(30, "web reaches db by name across nodes", || {
        fetch(n3, &web, "db")
    });
    assert_eq!(got, hostname(&db));
    let addr = db_task.iter().next().cloned().unwrap_or_default();
    assert_eq!(fetch(n3, &web, &addr).as_deref(), Some(&*hostname(&db)));
    assert_eq!(fetch(n2, &db, "web").as_deref(), Some(&*hostname(&web)));

    // Scaled over every node: the VIP and tasks.NAME follow on the node
    // that had only one replica.
    n1.ok(&[
        "service",
        "update",
        "-d",
        "--constraint-rm",
        "node.hostname==node2",
        "--replicas",
        "3",
        "db",
    ]);
    wait_for(90, "db on every node", || {
        swarm::running_on(n1, "db").filter(|h| *h == vec!["node1", "node2", "node3"])
    });
    let all = task_addresses(n1, "db");
    assert_eq!(all.len(), 3);
    wait_for(30, "tasks.db lists every replica on node3", || {
        (lookup(n3, &web, "tasks.db") == all).then_some(())
    });
    let seen = wait_for(60, "the VIP reaches every replica", || {
        let mut seen = BTreeSet::new();
        for _ in 0..30 {
            seen.extend(fetch(n3, &web, "db"));
        }
        (seen.len() == 3).then_some(seen)
    });
    assert_eq!(seen.len(), 3, "{seen:?}");

    // Scaled down and back while web asks the VIP from node3: replicas
    // on other nodes leave node3's balancer before they stop.
    let (ok, failed) = asking_while(n3, &web, "db", || {
        n1.ok(&["service", "scale", "-d", "db=1"]);
        wait_for(60, "db down to one replica", || {
            swarm::running_on(n1, "db").filter(|h| h.len() == 1)
        });
        // Start-first: one replica is always meant to serve.
        n1.ok(&[
            "service",
            "update",
            "-d",
            "--force",
            "--update-order",
            "start-first",
            "db",
        ]);
        wait_for(90, "db updated", || {
            let s = n1.ok(&[
                "service",
                "inspect",
                "--format",
                "{{.UpdateStatus.State}}",
                "db",
            ]);
            (s.trim() == "completed").then_some(())
        });
    });
    assert!(ok > 0);
    assert_eq!(
        failed,
        0,
        "of {} requests across nodes while scaling down and updating",
        ok + failed
    );
    n1.ok(&["service", "scale", "-d", "db=3"]);
    wait_for(90, "db back on every node", || {
        swarm::running_on(n1, "db").filter(|h| *h == vec!["node1", "node2", "node3"])
    });
    let db = container_on(n2, "db");

    // `network inspect` lists the nodes the overlay spans, as dockerd.
    let peers = n1.ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .Peers}}{{.IP}} {{end}}",
        "app",
    ]);
    let mut ips: Vec<&str> = peers.split_whitespace().collect();
    ips.sort();
    let want: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
    assert_eq!(ips, want, "{peers}");

    // A restarted shoald makes its overlay anew: the same replica still
    // answers across nodes, and only one VXLAN device per network exists.
    n2.restart_engine().expect("restart node2's shoald");
    wait_for(
        60,
        "web reaches db's node2 replica after node2's restart",
        || {
            let mut seen = BTreeSet::new();
            for _ in 0..15 {
                seen.extend(fetch(n3, &web, "db"));
            }
            seen.contains(&hostname(&db)).then_some(())
        },
    );

    // The routing mesh: two replicas on the workers only; every node's
    // address answers, node1 (no task) too, and both replicas answer.
    service(
        n1,
        "search",
        &[
            "--replicas",
            "2",
            "--constraint",
            "node.role==worker",
            "--placement-pref",
            "spread=node.id",
            "--publish",
            "9200:80",
        ],
        HTTPD,
    );
    wait_for(90, "search on both workers", || {
        swarm::running_on(n1, "search").filter(|h| *h == vec!["node2", "node3"])
    });
    for n in &nodes {
        let url = format!("http://{}:9200/etc/hostname", n.addr());
        let seen = wait_for(60, &format!("the mesh on node{}", n.n()), || {
            let mut seen = BTreeSet::new();
            for _ in 0..12 {
                if let Ok(h) = lab.client(&["curl", "-sf", "-m", "3", &url]) {
                    seen.insert(h.trim().to_string());
                }
            }
            (seen.len() == 2).then_some(seen)
        });
        assert_eq!(seen.len(), 2, "node{}: {seen:?}", n.n());
    }

    // Beyond dockerd (moby issue 25526): a replica reached through the mesh
    // sees the client's own address, through a node without a task of the
    // service (node1), through one with a replica beside one elsewhere
    // (node2), and with a large answer (the way back is sized to the
    // ingress network). The node's own connections keep showing the node.
    service(
        n1,
        "peer",
        &[
            "--replicas",
            "2",
            "--constraint",
            "node.role==worker",
            "--placement-pref",
            "spread=node.id",
            "--publish",
            "9300:80",
        ],
        &["sh", "-c", PEER_CGI],
    );
    wait_for(90, "peer on both workers", || {
        swarm::running_on(n1, "peer").filter(|h| *h == vec!["node2", "node3"])
    });
    let client = lab.client_addr();
    for n in [n1, n2] {
        let url = format!("http://{}:9300/cgi-bin/peer", n.addr());
        let seen = wait_for(60, &format!("peer through node{}", n.n()), || {
            let seen: BTreeSet<String> = (0..6)
                .filter_map(|_| lab.client(&["curl", "-sf", "-m", "3", &url]).ok())
                .map(|a| ipv4_of(&a))
                .collect();
            (!seen.is_empty()).then_some(seen)
        });
        assert_eq!(seen, BTreeSet::from([client.clone()]), "node{}", n.n());
        let big = format!("http://{}:9300/big", n.addr());
        for _ in 0..4 {
            let got = lab
                .client(&["sh", "-c", &format!("curl -sf -m 10 {big} | wc -c")])
                .expect("a large answer through the mesh");
            assert_eq!(got.trim(), "3000000", "node{}", n.n());
        }
    }
    // node1's own connection: the replica sees node1's address on the
    // ingress network (10.0.0.0/24), as under dockerd.
    let own = n1.run(&[
        "curl",
        "-sf",
        "-m",
        "3",
        "http://127.0.0.1:9300/cgi-bin/peer",
    ]);
    assert!(own.success(), "{}", own.stderr);
    assert!(
        ipv4_of(&own.stdout).starts_with("10.0.0."),
        "{}",
        own.stdout
    );

    // A node lost: its replicas leave tasks.NAME on the survivors, their
    // replacements join it, and the mesh goes on without it.
    let lost = addresses_on(n1, "db", "node3");
    assert_eq!(lost.len(), 1, "{lost:?}");
    n3.kill_node();
    wait_for(60, "node3 down", || {
        swarm::node_ls(n1)?
            .into_iter()
            .any(|r| r.hostname == "node3" && r.status == "Down")
            .then_some(())
    });
    wait_for(120, "tasks.db on node2 without node3's replica", || {
        let now = lookup(n2, &db, "tasks.db");
        let want = task_addresses(n1, "db");
        (now == want && now.len() == 3 && now.is_disjoint(&lost)).then_some(())
    });
    let url = format!("http://{}:9200/etc/hostname", n1.addr());
    wait_for(60, "the mesh on node1 without node3", || {
        (0..8)
            .all(|_| lab.client(&["curl", "-sf", "-m", "3", &url]).is_ok())
            .then_some(())
    });
}

/// Captures every frame on every interface of the lab's LAN for `secs`
/// seconds (AF_PACKET, from the LAN's own namespace) once it has made the
/// file `ready`, and prints how many it saw and how many carry `marker`.
const CAPTURE: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.settimeout(0.2)
marker = sys.argv[1].encode()
end = time.time() + float(sys.argv[2])
open(sys.argv[3], "w").close()
seen = found = 0
while time.time() < end:
    try:
        p = s.recv(65535)
    except socket.timeout:
        continue
    seen += 1
    if marker in p:
        found += 1
print(seen, found)
"#;

/// Runs [`CAPTURE`] for `secs` while `during` runs; (frames seen, frames
/// with `marker`).
fn capture_while(lab: &Lab, marker: &str, secs: u32, during: impl FnOnce()) -> (u64, u64) {
    let secs_s = secs.to_string();
    let ready = lab.dir().join(format!("capture-{marker}.ready"));
    let ready_s = ready.display().to_string();
    // A capture before this one left its own.
    let _ = std::fs::remove_file(&ready);
    std::thread::scope(|s| {
        let cap = s.spawn(|| lab.client(&["python3", "-c", CAPTURE, marker, &secs_s, &ready_s]));
        wait_for(10, "the capture to start", || ready.exists().then_some(()));
        during();
        let out = cap.join().expect("capture thread").expect("capture");
        let mut it = out.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    })
}

#[test]
fn e2e_cluster_overlay_encrypted_network_is_sealed_on_the_wire() {
    // Network keys rotate every 3 s instead of 12 h.
    let Some((lab, nodes)) = three_nodes(&[("SHOAL_NETWORK_KEY_ROTATION_SECS", "3")]) else {
        return;
    };
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    n1.ok(&["network", "create", "-d", "overlay", "clear"]);
    n1.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "encrypted",
        "sealed",
    ]);
    let marker = format!(
        "shoal-marker-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    for net in ["clear", "sealed"] {
        let on2 = ["--network", net, "--constraint", "node.hostname==node2"];
        let on3 = ["--network", net, "--constraint", "node.hostname==node3"];
        service(n1, &format!("db-{net}"), &on2, HTTPD);
        service(n1, &format!("web-{net}"), &on3, HTTPD);
    }
    let mut seen = Vec::new();
    for net in ["clear", "sealed"] {
        let db = container_on(n2, &format!("db-{net}"));
        let web = container_on(n3, &format!("web-{net}"));
        exec(n2, &db, &["sh", "-c", &format!("echo {marker} > /tmp/m")]).expect("marker");
        // A megabyte of markers: frames far larger than the LAN's MTU.
        let big = format!("yes {marker} | head -c 1000000 > /tmp/big; md5sum < /tmp/big");
        let sum = exec(n2, &db, &["sh", "-c", &big]).expect("big file");
        let host = format!("db-{net}");
        wait_for(30, &format!("web reaches db over {net}"), || {
            fetch(n3, &web, &host)
        });
        let url = format!("http://{host}/tmp/m");
        let get_big = format!("wget -qO- http://{host}/tmp/big | md5sum");
        let (frames, with_marker) = capture_while(&lab, &marker, 4, || {
            for _ in 0..5 {
                let got = exec(n3, &web, &["wget", "-qO-", &url]);
                assert_eq!(got.as_deref().map(str::trim), Some(&*marker), "{net}");
            }
            let got = exec(n3, &web, &["sh", "-c", &get_big]);
            assert_eq!(got.as_deref(), Some(&*sum), "the big file over {net}");
        });
        seen.push((net, frames, with_marker));
    }
    // The plain network's payload crosses the LAN in the clear; the
    // encrypted one's never does, though its frames were captured.
    assert!(seen[0].2 > 0, "{seen:?}");
    assert!(seen[1].1 > 0 && seen[1].2 == 0, "{seen:?}");
    // The encrypted overlay takes the tunnel's MTU (sealed frames carry up
    // to 64 KB), the plain one dockerd's.
    for (svc, mtu) in [("web-clear", "1450"), ("web-sealed", "65000")] {
        let task = container_on(n3, svc);
        let mtus = exec(n3, &task, &["sh", "-c", "cat /sys/class/net/eth*/mtu"]).expect("mtu");
        assert!(mtus.lines().any(|l| l.trim() == mtu), "{svc}: {mtus}");
    }

    // Key rotations under a stream of requests across nodes lose none.
    let rotated = |n: &Node| n.engine_log().matches("network keys rotated").count();
    let before = rotated(n1);
    let web = container_on(n3, "web-sealed");
    let (ok, failed) = asking_while(n3, &web, "db-sealed", || {
        wait_for(30, "three key rotations", || {
            (rotated(n1) >= before + 3).then_some(())
        });
    });
    assert!(ok > 0);
    assert_eq!(
        failed,
        0,
        "of {} requests during key rotations",
        ok + failed
    );

    // The seal runs only where an encrypted network has a task.
    for (n, has) in [(n1, false), (n2, true), (n3, true)] {
        let link = n.run(&["ip", "link", "show", "shoal-seal"]);
        assert_eq!(link.success(), has, "node{}: {link:?}", n.n());
    }

    // Nothing is left behind once the encrypted network is gone.
    n1.ok(&["service", "rm", "db-sealed", "web-sealed"]);
    n1.ok(&["network", "rm", "sealed"]);
    for n in [n2, n3] {
        wait_for(60, &format!("node{} without the tunnel", n.n()), || {
            let link = n.run(&["ip", "link", "show", "shoal-seal"]);
            let table = n.run(&["nft", "list", "table", "ip", "shoal-seal"]);
            (!link.success() && !table.success()).then_some(())
        });
    }

    // And nothing at all once the node's last task is gone and it left.
    n1.ok(&["service", "rm", "db-clear", "web-clear"]);
    n1.ok(&["network", "rm", "clear"]);
    n3.ok(&["swarm", "leave"]);
    for n in [n2, n3] {
        let sbox = n.dir().join("engine/netdrv/sbox");
        let left = wait_for(60, &format!("node{} back as before", n.n()), || {
            let links = n.run(&["ip", "-o", "link", "show"]).stdout;
            let extra: Vec<&str> = links
                .lines()
                .filter_map(|l| l.split(':').nth(1).map(str::trim))
                .filter(|name| *name != "lo" && !name.starts_with("eth0"))
                .collect();
            let tables = n.run(&["nft", "list", "tables"]).stdout;
            let sandboxes = std::fs::read_dir(&sbox).map_or(0, |d| d.count());
            (extra.is_empty() && !tables.contains("shoal") && sandboxes == 0)
                .then_some((extra.len(), sandboxes))
        });
        assert_eq!(left, (0, 0));
    }
}

/// The voting app's topology with the test image: five services on two
/// overlays, `worker` on both, spread over the three nodes.
const VOTING_STACK: &str = r#"
version: "3.8"
x-httpd: &httpd
  image: shoal-test/busybox:latest
  command: ["httpd", "-f", "-p", "80", "-h", "/"]
services:
  vote:
    <<: *httpd
    networks: [frontend]
    deploy: {placement: {constraints: ["node.hostname==node1"]}}
  redis:
    <<: *httpd
    networks: [frontend]
    deploy: {placement: {constraints: ["node.hostname==node2"]}}
  worker:
    <<: *httpd
    networks: [frontend, backend]
    deploy: {placement: {constraints: ["node.hostname==node3"]}}
  db:
    <<: *httpd
    networks: [backend]
    deploy: {placement: {constraints: ["node.hostname==node1"]}}
  result:
    <<: *httpd
    networks: [backend]
    ports: ["5001:80"]
    deploy: {placement: {constraints: ["node.hostname==node2"]}}
networks:
  frontend: {}
  backend: {}
"#;

#[test]
fn e2e_cluster_overlay_voting_app_topology() {
    let Some((lab, nodes)) = three_nodes(&[]) else {
        return;
    };
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let file = lab.dir().join("voting.yml");
    std::fs::write(&file, VOTING_STACK).expect("stack file");
    n1.ok(&["stack", "deploy", "-c", &file.display().to_string(), "vote"]);
    let worker = container_on(n3, "vote_worker");
    let vote = container_on(n1, "vote_vote");
    let result = container_on(n2, "vote_result");
    let name = |c: &str, n: &Node| {
        n.ok(&["inspect", "--format", "{{.Config.Hostname}}", c])
            .trim()
            .to_string()
    };
    let redis = name(&container_on(n2, "vote_redis"), n2);
    let db = name(&container_on(n1, "vote_db"), n1);

    // The service on both networks reaches one on each, on other nodes.
    let got = wait_for(30, "worker reaches redis", || fetch(n3, &worker, "redis"));
    assert_eq!(got, redis);
    assert_eq!(fetch(n3, &worker, "db").as_deref(), Some(&*db));
    // Each side reaches it back, and only through its own network.
    assert_eq!(
        fetch(n1, &vote, "worker").as_deref(),
        Some(&*name(&worker, n3))
    );
    assert_eq!(
        fetch(n2, &result, "worker").as_deref(),
        Some(&*name(&worker, n3))
    );
    assert!(lookup(n1, &vote, "db").is_empty(), "vote resolves db");
    assert!(fetch(n1, &vote, "db").is_none(), "vote reaches db");

    // The published port answers on every node, and on a node that joins
    // later too.
    let n4 = lab.add_node().expect("node");
    let token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    n4.ok(&[
        "swarm",
        "join",
        "--token",
        token.trim(),
        &format!("{}:2377", n1.addr()),
    ]);
    let result_host = name(&result, n2);
    for n in [n1, n2, n3, &n4] {
        let url = format!("http://{}:5001/etc/hostname", n.addr());
        let got = wait_for(60, &format!("the mesh on node{}", n.n()), || {
            lab.client(&["curl", "-sf", "-m", "3", &url]).ok()
        });
        assert_eq!(got.trim(), result_host, "node{}", n.n());
    }

    // A host-mode port answers only where its task runs.
    service(
        n1,
        "pinned",
        &[
            "--constraint",
            "node.hostname==node2",
            "--publish",
            "mode=host,published=5002,target=80",
        ],
        HTTPD,
    );
    let pinned = name(&container_on(n2, "pinned"), n2);
    let on2 = format!("http://{}:5002/etc/hostname", n2.addr());
    let got = wait_for(60, "the host-mode port on node2", || {
        lab.client(&["curl", "-sf", "-m", "3", &on2]).ok()
    });
    assert_eq!(got.trim(), pinned);
    for n in [n1, n3] {
        let url = format!("http://{}:5002/etc/hostname", n.addr());
        assert!(
            lab.client(&["curl", "-sf", "-m", "3", &url]).is_err(),
            "node{} answers a host-mode port it has no task for",
            n.n()
        );
    }
}
