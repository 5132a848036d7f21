//! End-to-end: `docker image tag/history`, `docker save | docker load`,
//! `docker import`, `docker cp`, `docker system df` and the prune commands
//! against shoald on a private containerd, driven by the stock CLI.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::process::Command;

use common::make_test_image;
use common::swarm_with_test_image;
use common::wait_for;
use common::Containerd;
use common::Daemon;

const TAG: &str = "shoal-test/busybox:latest";

fn loaded() -> Option<(Containerd, Daemon)> {
    let ctrd = Containerd::start()?;
    let d = Daemon::with_containerd(&ctrd);
    let tar = make_test_image(d.dir.path(), false);
    d.ok(&["load", "-i", &tar.display().to_string()]);
    Some((ctrd, d))
}

fn tags(d: &Daemon) -> Vec<String> {
    let ls = d.ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut v: Vec<String> = ls.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn tag_history_save_load() {
    let Some((_ctrd, d)) = loaded() else {
        return;
    };
    d.ok(&["image", "tag", TAG, "mine/box:v1"]);
    assert_eq!(tags(&d), vec!["mine/box:v1".to_string(), TAG.to_string()]);
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "mine/box:v1"]);
    assert_eq!(id, d.ok(&["image", "inspect", "-f", "{{.Id}}", TAG]));
    let missing = d.fail(&["image", "tag", "nosuch:1", "x:1"]);
    assert!(missing.contains("No such image: nosuch:1"), "{missing}");

    // Newest row first, carrying the image ID; older rows `<missing>`.
    let h = d.ok(&["image", "history", "-q", "--no-trunc", TAG]);
    let first = h.lines().next().unwrap_or("");
    assert_eq!(first, id.trim(), "{h}");
    assert!(h.lines().skip(1).all(|l| l == "<missing>"), "{h}");

    let out = d.dir.path().join("saved.tar");
    let out_s = out.display().to_string();
    d.ok(&["save", "-o", &out_s, "mine/box:v1", TAG]);
    let listing = Command::new("tar").arg("-tf").arg(&out).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(listing.contains("manifest.json"), "{listing}");
    assert!(listing.contains("/layer.tar"), "{listing}");

    d.ok(&["image", "rm", "mine/box:v1", TAG]);
    assert!(tags(&d).is_empty());
    let load = d.ok(&["load", "-i", &out_s]);
    assert!(load.contains("Loaded image: mine/box:v1"), "{load}");
    assert!(load.contains(&format!("Loaded image: {TAG}")), "{load}");
    assert_eq!(tags(&d), vec!["mine/box:v1".to_string(), TAG.to_string()]);
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", TAG]), id);
}

#[test]
fn import_with_changes() {
    let Some((_ctrd, d)) = loaded() else {
        return;
    };
    let root = d.dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hello"), b"hi\n").unwrap();
    let tar = d.dir.path().join("rootfs.tar");
    let ok = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let tar_s = tar.display().to_string();
    let id = d.ok(&[
        "import",
        "--change",
        "CMD [\"cat\", \"/etc/hello\"]",
        "--change",
        "ENV A=1",
        "-m",
        "from a test",
        &tar_s,
        "imported/one:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let got = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}|{{json .Config.Cmd}}|{{json .Config.Env}}|{{.Comment}}|{{len .RootFS.Layers}}",
        "imported/one:v1",
    ]);
    assert_eq!(
        got.trim(),
        format!(
            "{}|[\"cat\",\"/etc/hello\"]|[\"A=1\"]|from a test|1",
            id.trim()
        )
    );
    let hist = d.ok(&[
        "image",
        "history",
        "--format",
        "{{.Comment}}",
        "imported/one:v1",
    ]);
    assert_eq!(hist.trim(), "from a test");

    let bad = d.fail(&["import", "--change", "RUN true", &tar_s, "imported/two"]);
    assert!(bad.contains("run is not a valid change command"), "{bad}");

    // Without a name: listed as <none>, removable by ID.
    let id2 = d.ok(&["import", &tar_s]);
    let id2 = id2.trim().to_string();
    let ls = d.ok(&[
        "image",
        "ls",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert!(ls.contains(&format!("<none>:<none> {id2}")), "{ls}");
    let rm = d.ok(&["image", "rm", &id2]);
    assert_eq!(rm.trim(), format!("Deleted: {id2}"));
}

/// The one running container of a fresh one-replica service.
fn service_container(d: &Daemon, name: &str) -> String {
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--stop-grace-period",
        "1s",
        TAG,
        "sh",
        "-c",
        "echo original > /tmp/orig; exec sleep 3600",
    ]);
    wait_for(60, "the task's container running", || {
        let out = d.docker(&["container", "ls", "-q", "--no-trunc"]);
        let id = out.stdout.lines().next()?.trim().to_string();
        let ready = d.docker(&["exec", &id, "cat", "/tmp/orig"]);
        (ready.stdout.trim() == "original").then_some(id)
    })
}

#[test]
fn cp_out_and_in_and_export() {
    let Some((_ctrd, d)) = swarm_with_test_image() else {
        return;
    };
    let id = service_container(&d, "cpweb");
    let local = d.dir.path().join("orig");
    let local_s = local.display().to_string();
    d.ok(&["cp", &format!("{id}:/tmp/orig"), &local_s]);
    assert_eq!(std::fs::read_to_string(&local).unwrap(), "original\n");

    std::fs::write(&local, "changed on the host\n").unwrap();
    d.ok(&["cp", &local_s, &format!("{id}:/tmp/back")]);
    let back = d.ok(&["exec", &id, "cat", "/tmp/back"]);
    assert_eq!(back, "changed on the host\n");
    // Into a directory: the file keeps its name.
    d.ok(&["cp", &local_s, &format!("{id}:/tmp/")]);
    assert_eq!(
        d.ok(&["exec", &id, "cat", "/tmp/orig"]),
        "changed on the host\n"
    );

    let missing = d.fail(&["cp", &format!("{id}:/nope"), &local_s]);
    assert!(
        missing.contains(&format!("Could not find the file /nope in container {id}")),
        "{missing}"
    );

    let out = d.dir.path().join("export.tar");
    d.ok(&["container", "export", "-o", &out.display().to_string(), &id]);
    let listing = Command::new("tar").arg("-tf").arg(&out).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(
        listing
            .lines()
            .any(|l| l.trim_end_matches('/') == "bin/busybox"),
        "{listing}"
    );
    assert!(listing.lines().any(|l| l == "tmp/back"), "{listing}");
}

/// A one-file rootfs tar under the daemon's temp dir.
fn rootfs_tar(d: &Daemon, content: &str) -> String {
    let root = d.dir.path().join(format!("rootfs-{}", content.len()));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/content"), content).unwrap();
    let tar = root.with_extension("tar");
    let ok = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    tar.display().to_string()
}

/// `docker system df` rows as (type, total, active).
fn df_rows(d: &Daemon) -> Vec<(String, String, String)> {
    let out = d.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}",
    ]);
    out.lines()
        .map(|l| {
            let p: Vec<&str> = l.split('|').collect();
            (p[0].to_string(), p[1].to_string(), p[2].to_string())
        })
        .collect()
}

#[test]
fn df_and_prunes() {
    let Some((_ctrd, d)) = swarm_with_test_image() else {
        return;
    };
    let id = service_container(&d, "dfweb");
    d.ok(&["volume", "create", "keep"]);
    let tar = rootfs_tar(&d, &"x".repeat(5000));
    let unused = d.ok(&["import", &tar, "unused/img:1"]);
    let unused = unused.trim().to_string();

    let rows = df_rows(&d);
    let find = |t: &str| rows.iter().find(|r| r.0 == t).cloned().unwrap();
    assert_eq!(
        find("Images"),
        ("Images".into(), "2".into(), "1".into()),
        "{rows:?}"
    );
    assert_eq!(find("Containers").1, "1", "{rows:?}");
    assert_eq!(find("Containers").2, "1", "{rows:?}");
    assert_eq!(find("Local Volumes").1, "1", "{rows:?}");
    assert_eq!(find("Build Cache").1, "0", "{rows:?}");
    let verbose = d.ok(&["system", "df", "-v"]);
    assert!(verbose.contains("unused/img"), "{verbose}");
    assert!(verbose.contains("keep"), "{verbose}");

    // An extra name on the image the service runs: -a takes the name and
    // keeps the image and the name the container was made from.
    d.ok(&["image", "tag", TAG, "extra/name:1"]);
    // Dangling only: nothing to do.
    let none = d.ok(&["image", "prune", "-f"]);
    assert_eq!(none.trim(), "Total reclaimed space: 0B");
    let all = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(all.contains("Deleted Images:"), "{all}");
    assert!(all.contains("untagged: unused/img:1"), "{all}");
    assert!(all.contains("untagged: extra/name:1"), "{all}");
    assert!(all.contains(&format!("deleted: {unused}")), "{all}");
    let reclaimed = all
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or("");
    assert!(reclaimed.ends_with("kB") && reclaimed != "0B", "{all}");
    let ls = d.ok(&["image", "ls", "--format", "{{.Repository}}"]);
    assert_eq!(ls.trim(), "shoal-test/busybox", "{ls}");

    // A task that has ended leaves a stopped container; prune takes it
    // and leaves the running one.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "oneshot",
        "--restart-condition",
        "none",
        TAG,
        "true",
    ]);
    let stopped = wait_for(60, "the one-shot task's container to exit", || {
        let out = d.docker(&[
            "container",
            "ls",
            "-aq",
            "--no-trunc",
            "--filter",
            "status=exited",
        ]);
        out.stdout.lines().next().map(str::to_string)
    });
    let pruned = d.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert!(pruned.contains(&stopped), "{pruned}");
    assert!(!pruned.contains(&id), "{pruned}");
    let left = d.ok(&["container", "ls", "-aq", "--no-trunc"]);
    assert_eq!(left.trim(), id);
    let tasks = d.ok(&["service", "ps", "-q", "oneshot"]);
    assert_eq!(tasks.lines().count(), 1, "{tasks}");

    // system prune answers every pruner (build cache included).
    let sys = d.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(sys.contains("Total reclaimed space:"), "{sys}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "keep");
}
