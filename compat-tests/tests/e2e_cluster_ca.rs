//! `docker swarm ca --rotate` on a running cluster: the CLI follows the
//! rotation to its end as with dockerd, every node ends on the new root,
//! the join tokens carry its digest, and no task is interrupted.

use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

#[test]
fn e2e_cluster_root_ca_rotation() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 2, 2);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    n1.ok(&[
        "service", "create", "-d", "--name", "web", "--mode", "global", TEST_IMAGE, "httpd", "-f",
        "-p", "80",
    ]);
    wait_for(90, "a web task on every node", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 4)
    });
    let tasks_before = n1.ok(&["service", "ps", "-q", "web"]);
    let old_root = n1.ok(&["swarm", "ca"]);
    assert!(
        old_root.starts_with("-----BEGIN CERTIFICATE-----"),
        "{old_root}"
    );
    let old_token = n1.ok(&["swarm", "join-token", "-q", "worker"]);

    // Through a manager that does not lead; the CLI waits for convergence.
    let r = n2.docker_within(
        std::time::Duration::from_secs(120),
        &["swarm", "ca", "--rotate"],
        None,
    );
    assert!(r.success(), "{r:?}");
    assert!(
        r.stdout.contains("rotated TLS certificates"),
        "{}",
        r.stdout
    );
    let new_root = n1.ok(&["swarm", "ca"]);
    assert_ne!(new_root, old_root);
    assert!(
        r.stdout.trim_end().ends_with(new_root.trim_end()),
        "the CLI ends with the new root: {}",
        r.stdout
    );
    // Every node trusts only the new root and holds a certificate it signed.
    let issuer = n1.ok(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.TLSInfo.CertIssuerPublicKey}}",
    ]);
    for n in &nodes {
        let name = n.hostname();
        let trust = n1.ok(&[
            "node",
            "inspect",
            "--format",
            "{{.Description.TLSInfo.TrustRoot}}",
            &name,
        ]);
        assert_eq!(trust.trim(), new_root.trim(), "{name}");
        let key = n1.ok(&[
            "node",
            "inspect",
            "--format",
            "{{.Description.TLSInfo.CertIssuerPublicKey}}",
            &name,
        ]);
        assert_eq!(key.trim(), issuer.trim(), "{name}");
    }
    let info = n1.ok(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.RootRotationInProgress}}",
    ]);
    assert_eq!(info.trim(), "false");
    // No task was interrupted, and the cluster still works end to end.
    assert_eq!(n1.ok(&["service", "ps", "-q", "web"]), tasks_before);
    assert_eq!(swarm::running_on(n1, "web").unwrap().len(), 4);
    let rows = swarm::node_ls(n2).unwrap();
    assert!(rows.iter().all(|r| r.status == "Ready"), "{rows:?}");
    // The tokens carry the new root's digest: the old one admits no one.
    let new_token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    assert_ne!(new_token, old_token);
    let n5 = lab.add_node().expect("node");
    let remote = format!("{}:2377", n1.addr());
    let err = n5.fail(&["swarm", "join", "--token", old_token.trim(), &remote]);
    assert!(
        err.contains("remote CA does not match fingerprint"),
        "{err}"
    );
    n5.ok(&["swarm", "join", "--token", new_token.trim(), &remote]);
    wait_for(30, "node5 ready", || {
        let rows = swarm::node_ls(n1)?;
        (rows.iter().find(|r| r.hostname == "node5")?.status == "Ready").then_some(())
    });
}
