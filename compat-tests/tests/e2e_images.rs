//! End-to-end: `docker load`, `docker image ls/inspect/rm` against shoald on
//! a private containerd. Skips (with the reason) when not root or when
//! containerd is not installed.

mod common;

use std::process::Command;

use common::make_test_image;
use common::Containerd;
use common::Daemon;

const TAG: &str = "shoal-test/busybox:latest";

/// `sha256:` of the config blob inside a docker-archive tar, computed from
/// the bytes (not from the file name).
fn config_id(tar: &std::path::Path) -> String {
    let manifest = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg("./manifest.json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let config = v[0]["Config"].as_str().unwrap().to_string();
    let sum = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -xOf '{}' './{config}' | sha256sum",
            tar.display()
        ))
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    format!("sha256:{hex}")
}

#[test]
fn load_list_inspect_rm_docker_archive() {
    let Some(ctrd) = Containerd::start() else {
        return;
    };
    let d = Daemon::with_containerd(&ctrd);
    let tar = make_test_image(d.dir.path(), false);
    let id = config_id(&tar);
    let tar_s = tar.display().to_string();

    let out = d.ok(&["load", "-i", &tar_s]);
    assert!(out.contains(&format!("Loaded image: {TAG}")), "{out}");

    let ls = d.ok(&[
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert_eq!(ls.trim(), format!("{TAG} {short}"), "{ls}");
    let ids = d.ok(&["image", "ls", "-q", "--no-trunc"]);
    assert_eq!(ids.trim(), id);

    let inspect = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}|{{json .RepoTags}}|{{.Os}}|{{.Architecture}}|{{.Created}}|{{json .Config.Cmd}}|{{.RootFS.Type}}|{{len .RootFS.Layers}}",
        TAG,
    ]);
    assert_eq!(
        inspect.trim(),
        format!("{id}|[\"{TAG}\"]|linux|amd64|1970-01-01T00:00:00Z|[\"sh\"]|layers|1"),
    );
    // By ID prefix too.
    let by_id = d.ok(&["image", "inspect", "--format", "{{.Id}}", short]);
    assert_eq!(by_id.trim(), id);

    // Loading again is idempotent.
    let again = d.ok(&["load", "-i", &tar_s]);
    assert!(again.contains(&format!("Loaded image: {TAG}")), "{again}");

    let rm = d.ok(&["image", "rm", TAG]);
    assert!(rm.contains(&format!("Untagged: {TAG}")), "{rm}");
    assert!(rm.contains(&format!("Deleted: {id}")), "{rm}");
    assert_eq!(d.ok(&["image", "ls", "-q"]).trim(), "");
}

#[test]
fn unknown_image_is_404_no_such_image() {
    let Some(ctrd) = Containerd::start() else {
        return;
    };
    let d = Daemon::with_containerd(&ctrd);
    let err = d.fail(&["image", "rm", "nosuch"]);
    assert!(err.contains("No such image: nosuch:latest"), "{err}");
    let (code, body) = d.curl("GET", "/v1.41/images/nosuch/json", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such image: nosuch:latest"), "{body}");
    let (code, _) = d.curl("DELETE", "/v1.41/images/nosuch", None);
    assert_eq!(code, 404);
    let err = d.fail(&["image", "inspect", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");
}

#[test]
fn load_oci_layout() {
    let Some(ctrd) = Containerd::start() else {
        return;
    };
    let d = Daemon::with_containerd(&ctrd);
    let tar = make_test_image(d.dir.path(), true);
    let out = d.ok(&["load", "-i", &tar.display().to_string()]);
    assert!(out.contains(&format!("Loaded image: {TAG}")), "{out}");
    let inspect = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        TAG,
    ]);
    assert_eq!(inspect.trim(), "linux/amd64");
    let rm = d.ok(&["image", "rm", TAG]);
    assert!(rm.contains(&format!("Untagged: {TAG}")), "{rm}");
}

#[test]
fn image_routes_answer_500_without_containerd() {
    let d = Daemon::start_with(&["--containerd", "/nonexistent/shoal-test/c.sock"]);
    let (code, body) = d.curl("GET", "/v1.41/images/json", None);
    assert_eq!(code, 500, "{body}");
    assert!(
        body.contains("containerd is not reachable at /nonexistent/shoal-test/c.sock"),
        "{body}"
    );
    // The daemon is still up and serving other routes.
    d.ok(&["version"]);
}
