//! End-to-end: docker network create/ls/inspect/rm on swarm-scoped overlays,
//! the default ingress network, and dockerd's error texts.

mod common;

use common::wait_for;
use common::Daemon;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

#[test]
fn ingress_exists_after_init() {
    let d = Daemon::with_swarm();
    let ls = wait_for(10, "ingress network", || {
        let ls = d.ok(&["network", "ls"]);
        ls.contains("ingress").then_some(ls)
    });
    for name in ["host", "none", "docker_gwbridge", "ingress"] {
        assert!(ls.contains(name), "{name} missing:\n{ls}");
    }
    let v = json(&d.ok(&["network", "inspect", "ingress"]));
    let n = &v[0];
    assert_eq!(n["Scope"], "swarm");
    assert_eq!(n["Driver"], "overlay");
    assert_eq!(n["Ingress"], true);
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.0.0.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.0.0.1");
    assert_eq!(n["Id"].as_str().unwrap().len(), 25);
    let host = json(&d.ok(&["network", "inspect", "host"]));
    assert_eq!(host[0]["Id"].as_str().unwrap().len(), 64);
    assert_eq!(host[0]["Scope"], "local");
    let err = d.fail(&["network", "rm", "host"]);
    assert!(
        err.contains("host is a pre-defined network and cannot be removed"),
        "{err}"
    );
}

#[test]
fn overlay_lifecycle_with_subnet_labels_and_options() {
    let d = Daemon::with_swarm();
    let id = d.ok(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        "--subnet",
        "10.20.0.0/24",
        "--gateway",
        "10.20.0.254",
        "--opt",
        "encrypted",
        "--label",
        "env=prod",
        "n1",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 25, "{id}");
    let auto = d.ok(&["network", "create", "-d", "overlay", "n2"]);
    let v = json(&d.ok(&["network", "inspect", "n1"]));
    let n = &v[0];
    assert_eq!(n["Id"], id.as_str());
    assert_eq!(n["Attachable"], true);
    assert_eq!(n["Labels"]["env"], "prod");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.20.0.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.20.0.254");
    assert!(n["Options"].as_object().unwrap().contains_key("encrypted"));
    let v2 = json(&d.ok(&["network", "inspect", auto.trim()]));
    let subnet = v2[0]["IPAM"]["Config"][0]["Subnet"].as_str().unwrap();
    assert!(
        subnet.starts_with("10.0.") && subnet.ends_with("/24"),
        "{subnet}"
    );
    assert_ne!(subnet, "10.0.0.0/24", "collides with ingress");

    let names = d.ok(&[
        "network",
        "ls",
        "--filter",
        "label=env=prod",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(names.trim(), "n1");
    let swarm = d.ok(&["network", "ls", "--filter", "scope=swarm", "-q"]);
    assert_eq!(swarm.lines().count(), 3, "{swarm}");
    let overlay = d.ok(&[
        "network",
        "ls",
        "--filter",
        "driver=overlay",
        "--format",
        "{{.Name}} {{.Scope}}",
    ]);
    assert!(
        overlay.contains("n1 swarm") && overlay.contains("n2 swarm"),
        "{overlay}"
    );
    let (code, _) = d.curl("GET", &format!("/v1.41/networks/{id}?scope=swarm"), None);
    assert_eq!(code, 200);

    let err = d.fail(&["network", "create", "-d", "overlay", "n1"]);
    assert!(err.contains("network with name n1 already exists"), "{err}");
    let err = d.fail(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.0.0.0/33",
        "bad",
    ]);
    assert!(
        err.contains("Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"),
        "{err}"
    );
    d.ok(&["network", "rm", "n1", "n2"]);
    let err = d.fail(&["network", "inspect", "n1"]);
    assert!(err.contains("network n1 not found"), "{err}");
}

#[test]
fn raw_api_shapes_and_codes() {
    let d = Daemon::with_swarm();
    let (code, body) = d.curl(
        "POST",
        "/v1.41/networks/create",
        Some(r#"{"Name":"api1","Driver":"overlay","CheckDuplicate":true,"IPAM":null,"Options":null,"Attachable":true}"#),
    );
    assert_eq!(code, 201, "{body}");
    let v = json(&body);
    assert_eq!(v["Warning"], "");
    let id = v["Id"].as_str().unwrap().to_string();
    let (code, body) = d.curl(
        "GET",
        "/v1.41/networks?filters=%7B%22type%22%3A%7B%22x%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = d.curl(
        "GET",
        "/v1.41/networks?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Invalid filter 'bogus'"), "{body}");
    let (code, body) = d.curl("GET", "/v1.41/networks/nosuch", None);
    assert_eq!(code, 404);
    assert!(body.contains("network nosuch not found"), "{body}");
    let (code, _) = d.curl("DELETE", &format!("/v1.41/networks/{id}"), None);
    assert_eq!(code, 204);
}

#[test]
fn overlay_create_outside_swarm_is_500_not_manager() {
    let d = Daemon::start();
    let (code, body) = d.curl(
        "POST",
        "/v1.41/networks/create",
        Some(r#"{"Name":"n1","Driver":"overlay"}"#),
    );
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("This node is not a swarm manager."), "{body}");
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(ls.contains("host") && ls.contains("none"), "{ls}");
}
