//! End-to-end: `docker events` against shoald on a private containerd,
//! driven by the stock CLI: a follower sees the task container's
//! lifecycle as it happens and ends when shoald stops; `--since/--until`
//! replays the swarm events (service, secret, config, node) with their
//! filters and `--format`.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::SystemTime;

use common::docker_bin;
use common::wait_for;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

/// Now as the CLI takes it: seconds since the epoch with a fraction.
fn unix_now() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// `docker events ARGS` left running, its output going to `out`; killed
/// after two minutes at the latest.
fn follow(d: &Daemon, args: &[&str], out: &std::path::Path) -> Child {
    let file = std::fs::File::create(out).unwrap();
    Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(docker_bin())
        .arg("events")
        .args(args)
        .env("DOCKER_HOST", d.docker_host())
        .env("DOCKER_CONFIG", d.dir.path().join("cli-config"))
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker events")
}

/// Waits until the follower has written a line equal to `want`.
fn wait_line(out: &std::path::Path, want: &str) {
    let seen = compat_tests::cluster::procs::try_wait_for(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        text.lines().any(|l| l.trim() == want).then_some(())
    });
    assert!(
        seen.is_some(),
        "no event line {want:?} in:\n{}",
        std::fs::read_to_string(out).unwrap_or_default()
    );
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether `want` appears in `have` in this order (other lines may come
/// between: the orchestrator also updates a service as its tasks progress).
fn in_order(have: &[String], want: &[&str]) -> bool {
    let mut it = have.iter();
    want.iter().all(|w| it.any(|h| h == w))
}

#[test]
fn follower_and_replay_show_what_dockerd_shows() {
    let Some((_ctrd, mut d)) = common::swarm_with_test_image() else {
        return;
    };
    let t0 = unix_now();
    let out = d.dir.path().join("follow.txt");
    let mut follower = follow(
        &d,
        &[
            "--filter",
            "type=container",
            "--filter",
            "type=config",
            "--format",
            "{{.Type}} {{.Action}} {{with index .Actor.Attributes \"com.docker.swarm.service.name\"}}{{.}}{{else}}{{.Actor.Attributes.name}}{{end}}",
        ],
        &out,
    );
    // The follower is subscribed once it shows an event made after it
    // started; until then, make new ones (each a new config), bounded.
    wait_for(30, "the follower to see a config event", || {
        let name = common::marker("cfg");
        let path = common::temp_file(&d, &name, b"x");
        d.ok(&["config", "create", &name, &path]);
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        text.contains("config create").then_some(())
    });
    // `docker info` counts it.
    let listeners = d.ok(&["info", "--format", "{{.NEventsListener}}"]);
    assert_eq!(listeners.trim(), "1");
    d.ok(&["config", "create", "c1", &common::temp_file(&d, "c1", b"c")]);
    d.ok(&["secret", "create", "s1", &common::temp_file(&d, "s1", b"s")]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_line(&out, "container create web");
    wait_line(&out, "container start web");
    d.ok(&["service", "update", "-d", "--replicas", "2", "web"]);
    d.ok(&["service", "rm", "web"]);
    wait_line(&out, "container die web");
    d.ok(&["secret", "rm", "s1"]);
    d.ok(&["config", "rm", "c1"]);
    let node = d.ok(&["node", "inspect", "--format", "{{.ID}}", "self"]);
    let node = node.trim();
    d.ok(&["node", "update", "--availability", "drain", node]);
    d.ok(&["node", "update", "--availability", "active", node]);
    let t1 = unix_now();

    let replay = |filter: &str, format: &str| {
        lines(&d.ok(&[
            "events", "--since", &t0, "--until", &t1, "--filter", filter, "--format", format,
        ]))
    };
    let services = replay(
        "type=service",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    );
    assert!(
        in_order(
            &services,
            &[
                "service create web",
                "service update web",
                "service remove web"
            ]
        ),
        "{services:?}"
    );
    let scaled = replay(
        "service=web",
        "{{.Action}} {{index .Actor.Attributes \"replicas.old\"}}>{{index .Actor.Attributes \"replicas.new\"}}",
    );
    assert!(scaled.iter().any(|l| l == "update 1>2"), "{scaled:?}");
    let secrets = replay(
        "type=secret",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Scope}}",
    );
    assert_eq!(
        secrets,
        vec!["secret create s1 swarm", "secret remove s1 swarm"]
    );
    let configs = replay(
        "config=c1",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    );
    assert_eq!(configs, vec!["config create c1", "config remove c1"]);
    let nodes = replay(
        "type=node",
        "{{.Action}} {{index .Actor.Attributes \"availability.new\"}}",
    );
    assert!(
        in_order(&nodes, &["update drain", "update active"]),
        "{nodes:?}"
    );
    // Container events carry the task's labels and dockerd's old fields.
    let json = replay("type=container", "{{json .}}");
    let first: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(first["status"], "create", "{first}");
    assert_eq!(first["scope"], "local");
    assert_eq!(
        first["Actor"]["Attributes"]["com.docker.swarm.service.name"],
        "web"
    );
    assert!(first["from"].as_str().unwrap_or("").contains("busybox"));

    // The stream ends cleanly when shoald stops.
    d.stop();
    let status = wait_for(30, "the follower to end", || follower.try_wait().unwrap());
    assert!(status.success(), "docker events ended with {status}");
}

#[test]
fn bad_since_and_until_are_refused() {
    let d = Daemon::start();
    let (code, body) = d.curl("GET", "/events?since=20&until=10", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("cannot be after `until` time (10)"), "{body}");
    // An `until` in the past answers at once with what the backlog holds.
    let (code, _) = d.curl("GET", "/events?until=1", None);
    assert_eq!(code, 200);
}

#[test]
fn images_volumes_execs_and_health_have_their_events() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let t0 = unix_now();
    let image_id = d.ok(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    let image_id = image_id.trim();

    // Images: tag, untag, save, import, load.
    d.ok(&["image", "tag", IMAGE, "shoal-test/other:v1"]);
    d.ok(&["image", "rm", "shoal-test/other:v1"]);
    let saved = d.dir.path().join("saved.tar").display().to_string();
    d.ok(&["image", "save", "-o", &saved, IMAGE]);
    d.ok(&["image", "load", "-i", &saved]);
    let root = d.dir.path().join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello"), b"hi").unwrap();
    let rootfs = d.dir.path().join("rootfs.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let imported = d.ok(&["image", "import", &rootfs.display().to_string()]);
    let imported = imported.trim();

    // Volumes: create, destroy, prune.
    d.ok(&["volume", "create", "v1"]);
    d.ok(&["volume", "rm", "v1"]);
    d.ok(&["volume", "create", "v2"]);
    d.ok(&["volume", "prune", "-a", "-f"]);
    // A container's volume is mounted before it starts and unmounted after
    // it dies.
    let ran = d.ok(&["run", "-d", "-v", "vm:/data", IMAGE, "true"]);
    let ran = ran.trim().to_string();
    d.ok(&["wait", &ran]);

    // A task with a health check turns healthy; an exec in it.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        IMAGE,
        "sleep",
        "300",
    ]);
    let filter = "label=com.docker.swarm.service.name=hc";
    let container = wait_for(60, "the hc container", || {
        let out = d.ok(&["ps", "-q", "--filter", filter]);
        let id = out.trim().to_string();
        (!id.is_empty()).then_some(id)
    });
    let r = d.docker(&["exec", &container, "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // Every event since t0 that passes `filters` (the same key twice: either).
    let replay = |filters: &[&str], format: &str| {
        let until = unix_now();
        let mut args = vec!["events", "--since", &t0, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend(["--format", format]);
        lines(&d.ok(&args))
    };
    let images = replay(
        &["type=image"],
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    );
    let want_tag = format!("image tag {image_id} shoal-test/other:v1");
    let want_untag = format!("image untag {image_id} {image_id}");
    let want_save = format!("image save {image_id} {image_id}");
    let want_load = format!("image load {image_id} {image_id}");
    let want_import = format!("image import {imported} {imported}");
    assert!(
        in_order(
            &images,
            &[&want_tag, &want_untag, &want_save, &want_load, &want_import]
        ),
        "{images:?}"
    );
    let volumes = replay(
        &["type=volume"],
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}",
    );
    assert!(
        in_order(
            &volumes,
            &[
                "volume create v1 local",
                "volume destroy v1 local",
                "volume create v2 local",
                "volume destroy v2 local",
            ]
        ),
        "{volumes:?}"
    );
    let mounts = replay(&["volume=vm"],
        "{{.Action}} {{.Actor.Attributes.container}} {{.Actor.Attributes.destination}} {{index .Actor.Attributes \"read/write\"}}",
    );
    let want_mount = format!("mount {ran} /data true");
    let want_unmount = format!("unmount {ran} <no value>");
    assert!(
        in_order(
            &mounts,
            &["create <no value> <no value>", &want_mount, &want_unmount]
        ),
        "{mounts:?}"
    );
    // In the stream the mount comes before the start and the unmount
    // after the die.
    let order = replay(
        &["type=volume", "type=container"],
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    );
    let want = [
        "volume mount vm".to_string(),
        format!("container start {ran}"),
        format!("container die {ran}"),
        "volume unmount vm".to_string(),
    ];
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert!(in_order(&order, &want), "{order:?}");
    let prune = replay(
        &["event=prune"],
        "{{.Type}} {{.Action}} {{.Actor.Attributes.reclaimed}}",
    );
    assert_eq!(prune, vec!["volume prune 0"]);

    // dockerd's exec actions carry the command; the exit code comes with
    // exec_die.
    let short = &container[..12];
    let execs = replay(
        &[&format!("container={short}")],
        "{{.Action}}|{{.Actor.Attributes.exitCode}}|{{if .Actor.Attributes.execID}}id{{end}}",
    );
    assert!(
        in_order(
            &execs,
            &[
                "exec_create: sh -c exit 3|<no value>|id",
                "exec_start: sh -c exit 3|<no value>|id",
                "exec_die|3|id",
            ]
        ),
        "{execs:?}"
    );
    let healthy = wait_for(30, "a health_status event", || {
        let h = replay(
            &["event=health_status"],
            "{{.Action}} {{.Actor.Attributes.name}}",
        );
        (!h.is_empty()).then_some(h)
    });
    assert!(
        healthy[0].starts_with("health_status: healthy hc.1."),
        "{healthy:?}"
    );
}

#[test]
fn local_networks_and_their_containers_have_network_events() {
    let Some((_ctrd, d)) = common::node_with_test_image() else {
        return;
    };
    let t0 = unix_now();
    let id = |out: String| out.trim().to_string();
    let loc = id(d.ok(&["network", "create", "loc"]));
    let c1 = id(d.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "loc",
        IMAGE,
        "sleep",
        "300",
    ]));
    let loc2 = id(d.ok(&["network", "create", "loc2"]));
    // Connected and disconnected while it runs.
    d.ok(&["network", "connect", "loc2", "c1"]);
    d.ok(&["network", "disconnect", "loc2", "c1"]);
    // A stopped container: dockerd tells the disconnect, not the connect
    // (nothing is attached until it starts).
    let c2 = id(d.ok(&[
        "create",
        "--name",
        "c2",
        "--network",
        "loc",
        IMAGE,
        "sleep",
        "300",
    ]));
    d.ok(&["network", "connect", "loc2", "c2"]);
    d.ok(&["network", "disconnect", "loc2", "c2"]);
    d.ok(&["stop", "-t", "0", "c1"]);
    d.ok(&["start", "c1"]);
    d.ok(&["rm", "-f", "c1", "c2"]);
    d.ok(&["network", "rm", "loc2"]);
    // On the default bridge.
    let b1 = id(d.ok(&["run", "-d", "--name", "b1", IMAGE, "sleep", "300"]));
    d.ok(&["rm", "-f", "b1"]);
    let bridge = id(d.ok(&["network", "inspect", "-f", "{{.Id}}", "bridge"]));

    let until = unix_now();
    let replay = |filters: &[&str], format: &str| {
        let mut args = vec!["events", "--since", &t0, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend(["--format", format]);
        lines(&d.ok(&args))
    };
    let got = replay(
        &["type=network"],
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} \
         {{.Actor.Attributes.container}} {{.Scope}}",
    );
    let ev = |action: &str, net: &str, name: &str, container: &str| {
        format!("{action} {net} {name} bridge {container} local")
    };
    let want = vec![
        ev("create", &loc, "loc", "<no value>"),
        ev("connect", &loc, "loc", &c1),
        ev("create", &loc2, "loc2", "<no value>"),
        ev("connect", &loc2, "loc2", &c1),
        ev("disconnect", &loc2, "loc2", &c1),
        ev("disconnect", &loc2, "loc2", &c2),
        ev("disconnect", &loc, "loc", &c1),
        ev("connect", &loc, "loc", &c1),
        ev("disconnect", &loc, "loc", &c1),
        ev("destroy", &loc2, "loc2", "<no value>"),
        ev("connect", &bridge, "bridge", &b1),
        ev("disconnect", &bridge, "bridge", &b1),
    ];
    assert_eq!(got, want);

    // In the stream a container joins its networks before its start and
    // leaves them after its die (up to its second start: a forced removal
    // kills and detaches at once).
    let order = replay(
        &[
            "type=network",
            "type=container",
            "event=connect",
            "event=disconnect",
            "event=start",
            "event=die",
        ],
        "{{.Type}} {{.Action}} {{.Actor.ID}}{{.Actor.Attributes.container}}",
    );
    let c1_lines: Vec<String> = order
        .into_iter()
        .filter(|l| l.contains(&c1))
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .take(8)
        .collect();
    assert_eq!(
        c1_lines,
        [
            "network connect",
            "container start",
            "network connect",
            "network disconnect",
            "container die",
            "network disconnect",
            "network connect",
            "container start",
        ],
    );
}
