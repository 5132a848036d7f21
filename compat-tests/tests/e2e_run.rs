//! End-to-end: standalone containers (`docker run`, `create`, `start`,
//! `stop`, `restart`, `pause`, `rename`, `attach`, `rm`...) against shoald
//! on a private containerd, driven by the stock CLI.
//!
//! What a user checks: `docker run` prints the container's output and
//! exits with its code; `--rm` leaves nothing behind; `-i` feeds stdin;
//! `-d` containers show in `docker ps`, answer `logs`, `exec`, `pause`,
//! `rename`, `stop`, `start`, `restart`, and `rm` refuses a running one
//! with dockerd's text; restart policies bring containers back and a
//! `docker stop` keeps them down; `-p` publishes a port on the node;
//! `--network none` and `host` give what they say; containers keep
//! running across a restart of shoald and are followed again.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::time::Duration;

use common::node_with_test_image as node;
use common::wait_for;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

fn inspect(d: &Daemon, c: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, c]).trim().to_string()
}

#[test]
fn run_prints_output_and_exits_with_the_containers_code() {
    let Some((_ctrd, d)) = node() else {
        return;
    };
    let r = d.docker(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.stdout, "to-out\n", "{r:?}");
    assert_eq!(r.stderr, "to-err\n", "{r:?}");
    // --rm: nothing left.
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");

    // Without --rm the container stays, exited with its code.
    let r = d.docker(&[
        "run",
        "--name",
        "once",
        IMAGE,
        "sh",
        "-c",
        "echo hi; exit 2",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (2, "hi\n"), "{r:?}");
    assert_eq!(
        inspect(&d, "once", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 2"
    );
    assert_eq!(d.ok(&["logs", "once"]), "hi\n");
    let ps = d.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("once Exited (2)"), "{ps}");
    // The name is taken now, in dockerd's words.
    let err = d.fail(&["run", "--name", "once", IMAGE, "true"]);
    assert!(
        err.contains("Conflict. The container name \"/once\" is already in use by container"),
        "{err}"
    );
    d.ok(&["rm", "once"]);

    // -i: the client's input reaches the process, and its end ends it.
    let r = d.docker_stdin(
        &["run", "-i", "--rm", IMAGE, "cat"],
        Some(b"fed through stdin\n"),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "fed through stdin\n"),
        "{r:?}"
    );

    // create, then start -a.
    let id = d.ok(&["create", "--name", "later", IMAGE, "echo", "started later"]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(inspect(&d, "later", "{{.State.Status}}"), "created");
    let r = d.docker(&["start", "-a", "later"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "started later\n"), "{r:?}");
    d.ok(&["rm", "later"]);

    // Each step was an event, as dockerd reports them.
    let events = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until_now(),
        "--filter",
        "container=later",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    assert_eq!(
        actions,
        vec!["create", "attach", "start", "die", "destroy"],
        "{events}"
    );
}

/// A `--until` just after now, so `docker events` returns.
fn until_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now.as_secs() + 1).to_string()
}

#[test]
fn detached_containers_live_as_dockerd_runs_them() {
    let Some((_ctrd, d)) = node() else {
        return;
    };
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "GREETING=hello",
        IMAGE,
        "sh",
        "-c",
        "echo $GREETING; exec httpd -f -p 80",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(inspect(&d, "web", "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(&d, "web", "{{.Name}} {{.Id}}"),
        format!("/web {id}")
    );
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Image}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("web {IMAGE} Up")), "{ps}");
    wait_for(10, "the greeting in the log", || {
        (d.ok(&["logs", "web"]) == "hello\n").then_some(())
    });
    assert_eq!(
        d.ok(&["exec", "web", "cat", "/etc/hostname"]).trim(),
        &id[..12]
    );

    d.ok(&["pause", "web"]);
    assert_eq!(inspect(&d, "web", "{{.State.Status}}"), "paused");
    let err = d.fail(&["pause", "web"]);
    assert!(
        err.contains(&format!("Container {id} is already paused")),
        "{err}"
    );
    d.ok(&["unpause", "web"]);
    assert_eq!(inspect(&d, "web", "{{.State.Status}}"), "running");

    d.ok(&["rename", "web", "site"]);
    assert_eq!(inspect(&d, &id, "{{.Name}}"), "/site");
    let err = d.fail(&["rm", "site"]);
    assert!(
        err.contains("cannot remove container \"site\": container is running: stop the container before removing or force remove"),
        "{err}"
    );

    d.ok(&["stop", "-t", "1", "site"]);
    assert_eq!(inspect(&d, "site", "{{.State.Status}}"), "exited");
    d.ok(&["start", "site"]);
    assert_eq!(inspect(&d, "site", "{{.State.Status}}"), "running");
    let pid = inspect(&d, "site", "{{.State.Pid}}");
    d.ok(&["restart", "-t", "1", "site"]);
    let after = inspect(&d, "site", "{{.State.Pid}}");
    assert_ne!(pid, after, "restart keeps the old process");
    assert_eq!(inspect(&d, "site", "{{.State.Running}}"), "true");
    d.ok(&["rm", "-f", "site"]);
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn restart_policies_bring_containers_back_until_stopped() {
    let Some((_ctrd, d)) = node() else {
        return;
    };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    wait_for(20, "two restarts and a final exit", || {
        let s = inspect(&d, "flaky", "{{.RestartCount}} {{.State.Status}}");
        (s == "2 exited").then_some(())
    });
    wait_for(10, "every run's line in the log", || {
        (d.ok(&["logs", "flaky"]) == "run\nrun\nrun\n").then_some(())
    });

    d.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        IMAGE,
        "sh",
        "-c",
        "sleep 0.3",
    ]);
    wait_for(20, "an always container to come back twice", || {
        let n: u32 = inspect(&d, "loop", "{{.RestartCount}}")
            .parse()
            .unwrap_or(0);
        (n >= 2).then_some(())
    });
    d.ok(&["stop", "-t", "1", "loop"]);
    let count = inspect(&d, "loop", "{{.RestartCount}}");
    // A stopped container stays down: look again after a few delays.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(inspect(&d, "loop", "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&d, "loop", "{{.RestartCount}}"), count);
    assert_eq!(
        inspect(&d, "loop", "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    // The CLI refuses --rm with --restart itself; the daemon does too.
    let body = format!(
        r#"{{"Image":"{IMAGE}","Cmd":["true"],"HostConfig":{{"AutoRemove":true,"RestartPolicy":{{"Name":"always"}}}}}}"#
    );
    let (status, text) = d.curl("POST", "/v1.41/containers/create", Some(&body));
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("can't create 'AutoRemove' container with restart policy"),
        "{text}"
    );

    // Both stopped containers go with a prune.
    let pruned = d.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn networks_none_host_and_published_ports() {
    let Some((ctrd, d)) = node() else {
        return;
    };
    let links = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "ip",
        "-o",
        "link",
    ]);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, vec!["lo"], "{links}");

    let host_links = ctrd
        .node
        .output(Duration::from_secs(5), &["ip", "-o", "link"]);
    let seen = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        IMAGE,
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(
        seen.lines().count(),
        host_links.lines().count(),
        "host:\n{host_links}\ncontainer:\n{seen}"
    );

    d.ok(&[
        "run", "-d", "--name", "pub", "-p", "18080:80", IMAGE, "httpd", "-f", "-p", "80", "-h", "/",
    ]);
    let id = inspect(&d, "pub", "{{.Id}}");
    let (client, node_addr) = ctrd.node.client();
    let url = format!("http://{node_addr}:18080/etc/hostname");
    let got = wait_for(20, "the published port to answer from outside", || {
        let o = client.output(
            Duration::from_secs(5),
            &["curl", "-sf", "--max-time", "3", &url],
        );
        (!o.trim().is_empty()).then(|| o.trim().to_string())
    });
    assert_eq!(got, &id[..12]);
    let ports = d.ok(&["port", "pub"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:18080"), "{ports}");
    let ip = inspect(&d, "pub", "{{.NetworkSettings.Networks.bridge.IPAddress}}");
    assert!(!ip.is_empty(), "no bridge address");
    d.ok(&["rm", "-f", "pub"]);
    // The port is given back.
    let o = client.output(
        Duration::from_secs(5),
        &["curl", "-sf", "--max-time", "2", &url],
    );
    assert_eq!(o.trim(), "");
}

#[test]
fn containers_outlive_a_shoald_restart_and_are_followed_again() {
    let Some((_ctrd, mut d)) = node() else {
        return;
    };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        IMAGE,
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--restart",
        "always",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let pid = inspect(&d, "ticker", "{{.State.Pid}}");
    d.stop();
    d.restart();
    assert_eq!(inspect(&d, "ticker", "{{.State.Pid}}"), pid);
    let before = d.ok(&["logs", "ticker"]).lines().count();
    wait_for(10, "the log to grow again", || {
        (d.ok(&["logs", "ticker"]).lines().count() > before + 2).then_some(())
    });
    // The exit is seen by the new daemon.
    d.ok(&["stop", "-t", "1", "ticker"]);
    assert_eq!(inspect(&d, "ticker", "{{.State.Status}}"), "exited");

    // A container the restart policy wants is started when shoald starts,
    // even after its process went away with the daemon (as at a reboot).
    let keeper_pid: i32 = inspect(&d, "keeper", "{{.State.Pid}}").parse().unwrap();
    d.stop();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.restart();
    wait_for(20, "keeper to run again", || {
        let p = inspect(&d, "keeper", "{{.State.Running}} {{.State.Pid}}");
        (p.starts_with("true") && p != format!("true {keeper_pid}")).then_some(())
    });
    d.ok(&["rm", "-f", "keeper", "ticker"]);
}

#[test]
fn containers_join_attachable_swarm_networks() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "appnet",
    ]);
    d.ok(&["network", "create", "-d", "overlay", "closednet"]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]);
    let task = wait_for(60, "the service's task running", || {
        let out = d.ok(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.swarm.service.name=web",
        ]);
        out.lines().next().map(str::to_string)
    });
    let vip = d.service_format("web", "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}");
    let vip = vip.trim().split('/').next().unwrap().to_string();

    // A one-off container resolves the service's name to its VIP.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        IMAGE,
        "nslookup",
        "web",
        "127.0.0.11",
    ]);
    assert!(out.contains(&vip), "{out}");

    // A detached one is reachable from the service's task by its name and
    // alias, and shows in the network.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "probe",
        "--network",
        "appnet",
        "--network-alias",
        "probe-alias",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]);
    let ip = inspect(
        &d,
        "probe",
        "{{.NetworkSettings.Networks.appnet.IPAddress}}",
    );
    assert!(ip.starts_with("10."), "{ip}");
    let id = inspect(&d, "probe", "{{.Id}}");
    for name in ["probe", "probe-alias"] {
        let out = wait_for(10, "the name to resolve in the task", || {
            let out = d.ok(&["exec", &task, "nslookup", name, "127.0.0.11"]);
            out.contains(&ip).then_some(out)
        });
        assert!(out.contains(&ip), "{out}");
    }
    let got = d.ok(&[
        "exec",
        &task,
        "sh",
        "-c",
        "printf 'GET /etc/hostname HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc probe 80",
    ]);
    assert!(got.trim_end().ends_with(&id[..12]), "{got}");
    let on = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "appnet",
    ]);
    assert!(on.split_whitespace().any(|n| n == "probe"), "{on}");
    // Its attachment is no task of the API.
    let tasks = d.ok(&["node", "ps", "--format", "{{.Name}}", "self"]);
    assert_eq!(tasks.trim(), "web.1", "{tasks}");

    let err = d.fail(&["run", "--rm", "--network", "closednet", IMAGE, "true"]);
    assert!(
        err.contains("Could not attach to network closednet: rpc error: code = PermissionDenied desc = network closednet not manually attachable"),
        "{err}"
    );
    // Removing the container gives its address back.
    d.ok(&["rm", "-f", "probe"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "appnet",
        IMAGE,
        "sleep",
        "100",
    ]);
    assert_eq!(
        inspect(
            &d,
            "again",
            "{{.NetworkSettings.Networks.appnet.IPAddress}}"
        ),
        ip
    );
    d.ok(&["rm", "-f", "again"]);
}
