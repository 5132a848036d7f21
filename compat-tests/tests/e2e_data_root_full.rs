//! End-to-end: the data root full. Writes are refused with a clear error
//! (500 "no space left on device", as dockerd answers for a full disk) while
//! reads go on; once space is back, writes work again, and a restart finds
//! every acknowledged write with nothing damaged.
//!
//! The data root is a 48 MiB tmpfs mounted by the test inside the daemon's
//! own mount namespace (so it vanishes with it) and filled with `dd`.

mod common;

use std::path::Path;

use common::Daemon;
use common::NodeNs;

fn sh(node: &NodeNs, script: &str) -> String {
    let o = node.run(&["sh", "-c", script]);
    assert!(o.status.success(), "{script}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Free bytes of the filesystem at `path` as the daemon sees it.
fn free(node: &NodeNs, path: &Path) -> u64 {
    sh(
        node,
        &format!("df -B1 --output=avail {} | tail -1", path.display()),
    )
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn a_full_data_root_refuses_writes_keeps_reads_and_recovers() {
    let mut d = Daemon::with_swarm();
    let s0 = d.ok(&[
        "secret",
        "create",
        "before",
        &common::temp_file(&d, "s0", b"zero"),
    ]);
    d.stop();
    let data = d.data_root();
    let copy = d.dir.path().join("data-copy");
    let node = d.node().expect("the daemon's namespaces");
    // The same files, now on a small filesystem of their own.
    sh(
        node,
        &format!(
            "cp -a {data} {copy} && mount -t tmpfs -o size=48m shoal-full {data} && cp -a {copy}/. {data}/",
            data = data.display(),
            copy = copy.display()
        ),
    );
    d.restart();
    d.ok(&[
        "secret",
        "create",
        "on-small",
        &common::temp_file(&d, "s1", b"one"),
    ]);

    // Fill it: dd stops at ENOSPC.
    let node = d.node().expect("the daemon's namespaces");
    let filler = data.join("filler");
    let _ = node.run(&[
        "dd",
        "if=/dev/zero",
        &format!("of={}", filler.display()),
        "bs=1M",
    ]);
    assert!(free(node, &data) < 1 << 20, "the data root is not full");

    // Writes: refused, clearly, with dockerd's status for a full disk.
    let err = d.fail(&[
        "secret",
        "create",
        "while-full",
        &common::temp_file(&d, "s2", b"two"),
    ]);
    assert!(err.contains("no space left on device"), "{err}");
    eprintln!("secret create on a full data root: {}", err.trim());
    let err = d.fail(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "web",
        "--constraint",
        "node.labels.none==1",
        "busybox:latest",
    ]);
    assert!(err.contains("no space left on device"), "{err}");
    let (code, body) = d.curl(
        "POST",
        "/v1.41/configs/create",
        Some(r#"{"Name":"c1","Data":"eA=="}"#),
    );
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("no space left on device"), "{body}");

    // Reads go on.
    let listed = d.ok(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(
        listed.contains("before") && listed.contains("on-small"),
        "{listed}"
    );
    d.ok(&["node", "ls"]);
    d.ok(&["info"]);

    // Space back: writes work again.
    sh(node, &format!("rm {}", filler.display()));
    d.ok(&[
        "secret",
        "create",
        "after",
        &common::temp_file(&d, "s3", b"three"),
    ]);
    d.ok(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "web",
        "--constraint",
        "node.labels.none==1",
        "busybox:latest",
    ]);

    // Nothing was damaged: a restart reads every acknowledged write.
    d.restart();
    let listed = d.ok(&["secret", "ls", "--format", "{{.ID}} {{.Name}}"]);
    for name in ["before", "on-small", "after"] {
        assert!(listed.contains(name), "{name} lost: {listed}");
    }
    assert!(listed.contains(s0.trim()));
    assert!(!listed.contains("while-full"), "{listed}");
    d.ok(&["service", "inspect", "web"]);
    d.stop();
    let node = d.node().expect("the daemon's namespaces");
    sh(node, &format!("umount {}", data.display()));
}
