//! End-to-end: odd input answered as dockerd 20.10 answers it.
//!
//! - An update with a stale `version` and a bad body gets the 400 for the
//!   body (swarmkit judges the spec before it meets the version at the
//!   write); a stale version with a good body is swarmkit's plain error,
//!   which dockerd relays as gRPC Unknown, 500.
//! - A bad `?version=` is worded per route, and an empty body is
//!   `got EOF while reading request body`.
//! - Boolean query values: `status`, `insertDefaults`, `verbose` and the
//!   `rotate*` flags go through Go's `strconv.ParseBool` and refuse what it
//!   refuses; `force` goes through `httputils.BoolValue` and never refuses.
//! - `POST /networks/prune` with its `label`, `label!` and `until` filters,
//!   and `docker network prune -f` from the stock CLI.

mod common;

use common::wait_for;
use common::Daemon;
use serde_json::json;
use serde_json::Value;

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

/// `(status, message)` of a request that must fail.
fn refused(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let (code, body) = d.curl(method, path, body);
    let message = parse(&body)["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path}: no message in {body}"))
        .to_string();
    (code, message)
}

/// Percent-encodes a query value (the filters' JSON).
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get(d: &Daemon, path: &str) -> Value {
    let (code, body) = d.curl("GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    parse(&body)
}

fn version_of(v: &Value) -> u64 {
    v["Version"]["Index"].as_u64().expect("Version.Index")
}

/// A version no object has now: one past the current one.
fn stale(v: &Value) -> u64 {
    version_of(v) + 1000
}

const OUT_OF_SEQUENCE: &str = "rpc error: code = Unknown desc = update out of sequence";

#[test]
fn stale_service_update_with_a_bad_body_gets_the_body_error() {
    let d = Daemon::with_swarm();
    let spec = json!({
        "Name": "odd",
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:latest", "Args": ["sleep", "1000"]}},
        "Mode": {"Replicated": {"Replicas": 0}},
    });
    let (code, body) = d.curl("POST", "/v1.41/services/create", Some(&spec.to_string()));
    assert_eq!(code, 201, "{body}");
    let svc = get(&d, "/v1.41/services/odd");
    let old = stale(&svc);
    let path = format!("/v1.41/services/odd/update?version={old}");

    let mut no_image = spec.clone();
    no_image["TaskTemplate"]["ContainerSpec"]["Image"] = json!("");
    assert_eq!(
        refused(&d, "POST", &path, Some(&no_image.to_string())),
        (
            400,
            "rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided"
                .to_string()
        )
    );
    let mut global = spec.clone();
    global["Mode"] = json!({"Global": {}});
    assert_eq!(
        refused(&d, "POST", &path, Some(&global.to_string())),
        (
            501,
            "rpc error: code = Unimplemented desc = service mode change is not allowed".to_string()
        )
    );
    let mut renamed = spec.clone();
    renamed["Name"] = json!("other");
    assert_eq!(
        refused(&d, "POST", &path, Some(&renamed.to_string())),
        (
            501,
            "rpc error: code = Unimplemented desc = renaming services is not supported".to_string()
        )
    );
    let rollback = format!("{path}&rollback=previous");
    let id = svc["ID"].as_str().unwrap();
    assert_eq!(
        refused(&d, "POST", &rollback, Some(&spec.to_string())),
        (
            400,
            format!(
                "rpc error: code = FailedPrecondition desc = service {id} does not have a previous spec"
            )
        )
    );
    // A good body with the stale version.
    assert_eq!(
        refused(&d, "POST", &path, Some(&spec.to_string())),
        (500, OUT_OF_SEQUENCE.to_string())
    );
    // The body first, then the version text of this route.
    assert_eq!(
        refused(
            &d,
            "POST",
            "/v1.41/services/odd/update?version=x",
            Some("{")
        ),
        (400, "unexpected EOF".to_string())
    );
    assert_eq!(
        refused(&d, "POST", "/v1.41/services/odd/update?version=x", Some("")),
        (400, "got EOF while reading request body".to_string())
    );
    assert_eq!(
        refused(
            &d,
            "POST",
            "/v1.41/services/odd/update?version=x",
            Some(&spec.to_string())
        ),
        (
            400,
            "invalid service version 'x': strconv.ParseUint: parsing \"x\": invalid syntax"
                .to_string()
        )
    );
    // The current version still works: nothing above was written.
    let now = version_of(&get(&d, "/v1.41/services/odd"));
    assert_eq!(now, version_of(&svc));
    let path = format!("/v1.41/services/odd/update?version={now}");
    let (code, body) = d.curl("POST", &path, Some(&spec.to_string()));
    assert_eq!(code, 200, "{body}");
}

#[test]
fn stale_node_secret_config_and_swarm_updates_with_bad_bodies() {
    let d = Daemon::with_swarm();
    // Node: demoting the only manager is refused before the version.
    let node = &get(&d, "/v1.41/nodes")[0];
    let node_id = node["ID"].as_str().unwrap().to_string();
    let path = format!("/v1.41/nodes/{node_id}/update?version={}", stale(node));
    assert_eq!(
        refused(&d, "POST", &path, Some(r#"{"Role":"worker","Availability":"active"}"#)),
        (
            400,
            "rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm"
                .to_string()
        )
    );
    assert_eq!(
        refused(
            &d,
            "POST",
            &path,
            Some(r#"{"Role":"manager","Availability":"bogus"}"#)
        ),
        (400, "invalid Availability: \"bogus\"".to_string())
    );
    assert_eq!(
        refused(
            &d,
            "POST",
            &path,
            Some(r#"{"Role":"manager","Availability":"active"}"#)
        ),
        (500, OUT_OF_SEQUENCE.to_string())
    );
    assert_eq!(
        refused(
            &d,
            "POST",
            &format!("/v1.41/nodes/{node_id}/update"),
            Some("{}")
        ),
        (
            400,
            "invalid node version '': strconv.ParseUint: parsing \"\": invalid syntax".to_string()
        )
    );

    // Secrets and configs: only labels may change, whatever the version.
    for (kind, data) in [("secrets", "c2VjcmV0"), ("configs", "Y29uZmln")] {
        let create = json!({"Name": format!("odd-{kind}"), "Data": data});
        let (code, body) = d.curl(
            "POST",
            &format!("/v1.41/{kind}/create"),
            Some(&create.to_string()),
        );
        assert_eq!(code, 201, "{body}");
        let id = parse(&body)["ID"].as_str().unwrap().to_string();
        let obj = get(&d, &format!("/v1.41/{kind}/{id}"));
        let path = format!("/v1.41/{kind}/{id}/update?version={}", stale(&obj));
        let changed = json!({"Name": format!("odd-{kind}"), "Data": "b3RoZXI="});
        assert_eq!(
            refused(&d, "POST", &path, Some(&changed.to_string())),
            (
                400,
                "rpc error: code = InvalidArgument desc = only updates to Labels are allowed"
                    .to_string()
            ),
            "{kind}"
        );
        let labels = json!({"Name": format!("odd-{kind}"), "Labels": {"a": "b"}});
        assert_eq!(
            refused(&d, "POST", &path, Some(&labels.to_string())),
            (500, OUT_OF_SEQUENCE.to_string()),
            "{kind}"
        );
        let word = kind.trim_end_matches('s');
        assert_eq!(
            refused(
                &d,
                "POST",
                &format!("/v1.41/{kind}/{id}/update?version=-1"),
                Some(&labels.to_string())
            ),
            (400, format!("invalid {word} version")),
        );
    }

    // Swarm: the spec and the flags are judged before the version.
    let sw = get(&d, "/v1.41/swarm");
    let path = format!("/v1.41/swarm/update?version={}", stale(&sw));
    let mut spec = sw["Spec"].clone();
    spec["CAConfig"]["NodeCertExpiry"] = json!(60_000_000_000u64);
    assert_eq!(
        refused(&d, "POST", &path, Some(&spec.to_string())),
        (
            400,
            "rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s"
                .to_string()
        )
    );
    let mut named = sw["Spec"].clone();
    named["Name"] = json!("mine");
    assert_eq!(
        refused(&d, "POST", &path, Some(&named.to_string())),
        (400, "swarm spec must be named \"default\"".to_string())
    );
    let good = sw["Spec"].to_string();
    assert_eq!(
        refused(
            &d,
            "POST",
            &format!("{path}&rotateWorkerToken=yes"),
            Some(&good)
        ),
        (400, "invalid value for rotateWorkerToken: yes".to_string())
    );
    assert_eq!(
        refused(&d, "POST", &path, Some(&good)),
        (500, OUT_OF_SEQUENCE.to_string())
    );
    assert_eq!(
        refused(&d, "POST", "/v1.41/swarm/update?version=1x", Some(&good)),
        (
            400,
            "invalid swarm version '1x': strconv.ParseUint: parsing \"1x\": invalid syntax"
                .to_string()
        )
    );
    // Nothing above was written.
    assert_eq!(version_of(&get(&d, "/v1.41/swarm")), version_of(&sw));
}

#[test]
fn boolean_query_values_are_refused_or_read_per_route() {
    let d = Daemon::with_swarm();
    let spec = json!({
        "Name": "flags",
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:latest"}},
        "Mode": {"Replicated": {"Replicas": 0}},
    });
    let (code, body) = d.curl("POST", "/v1.41/services/create", Some(&spec.to_string()));
    assert_eq!(code, 201, "{body}");

    assert_eq!(
        refused(&d, "GET", "/v1.41/services?status=AAA", None),
        (
            400,
            "invalid value for status: AAA: strconv.ParseBool: parsing \"AAA\": invalid syntax"
                .to_string()
        )
    );
    // Before API 1.41 dockerd does not read `status` at all.
    let old = get(&d, "/v1.40/services?status=AAA");
    assert!(old[0].get("ServiceStatus").is_none(), "{old}");
    let with = get(&d, "/v1.41/services?status=T");
    assert!(with[0].get("ServiceStatus").is_some(), "{with}");
    let without = get(&d, "/v1.41/services?status=0");
    assert!(without[0].get("ServiceStatus").is_none(), "{without}");

    assert_eq!(
        refused(&d, "GET", "/v1.41/services/flags?insertDefaults=2", None),
        (
            400,
            "invalid value for insertDefaults: 2: strconv.ParseBool: parsing \"2\": invalid syntax"
                .to_string()
        )
    );
    // The check comes before the lookup, as in dockerd.
    assert_eq!(
        refused(&d, "GET", "/v1.41/services/nosuch?insertDefaults=yes", None).0,
        400
    );
    let filled = get(&d, "/v1.41/services/flags?insertDefaults=TRUE");
    assert_eq!(filled["Spec"]["UpdateConfig"]["FailureAction"], "pause");

    assert_eq!(
        refused(&d, "GET", "/v1.41/networks/ingress?verbose=maybe", None),
        (
            400,
            "invalid value for verbose: maybe: strconv.ParseBool: parsing \"maybe\": invalid syntax"
                .to_string()
        )
    );
    get(&d, "/v1.41/networks/ingress?verbose=false");

    // `force` is dockerd's lenient BoolValue: any text but 0/no/false/none
    // is true, so a node that is the last manager leaves with `force=AAA`
    // and would not without it.
    let (code, _) = d.curl("POST", "/v1.41/swarm/leave?force=none", None);
    assert_eq!(code, 503, "force=none is false");
    let (code, body) = d.curl("POST", "/v1.41/swarm/leave?force=AAA", None);
    assert_eq!(code, 200, "{body}");
}

fn network(d: &Daemon, name: &str, labels: Value) -> String {
    let req = json!({"Name": name, "Driver": "overlay", "Labels": labels});
    let (code, body) = d.curl("POST", "/v1.41/networks/create", Some(&req.to_string()));
    assert_eq!(code, 201, "{body}");
    parse(&body)["Id"].as_str().unwrap().to_string()
}

fn swarm_networks(d: &Daemon) -> Vec<String> {
    let mut names: Vec<String> = get(
        d,
        &format!(
            "/v1.41/networks?filters={}",
            enc(r#"{"scope":{"swarm":true}}"#)
        ),
    )
    .as_array()
    .unwrap()
    .iter()
    .map(|n| n["Name"].as_str().unwrap().to_string())
    .collect();
    names.sort();
    names
}

#[test]
fn networks_prune_removes_unused_swarm_networks() {
    let d = Daemon::with_swarm();
    wait_for(10, "ingress network", || {
        swarm_networks(&d)
            .contains(&"ingress".to_string())
            .then_some(())
    });
    network(&d, "keep-me", json!({"keep": "yes"}));
    network(&d, "plain", json!({}));
    let used = network(&d, "used", json!({}));
    let svc = json!({
        "Name": "user",
        "TaskTemplate": {
            "ContainerSpec": {"Image": "busybox:latest"},
            "Networks": [{"Target": used}],
        },
        "Mode": {"Replicated": {"Replicas": 0}},
    });
    let (code, body) = d.curl("POST", "/v1.41/services/create", Some(&svc.to_string()));
    assert_eq!(code, 201, "{body}");

    // Filters dockerd does not take, or cannot read.
    assert_eq!(
        refused(
            &d,
            "POST",
            &format!(
                "/v1.41/networks/prune?filters={}",
                enc(r#"{"name":{"x":true}}"#)
            ),
            None
        ),
        (400, "Invalid filter 'name'".to_string())
    );
    assert_eq!(
        refused(
            &d,
            "POST",
            &format!(
                "/v1.41/networks/prune?filters={}",
                enc(r#"{"until":{"soon":true}}"#)
            ),
            None
        ),
        (
            500,
            "failed to parse value as time or duration: \"soon\"".to_string()
        )
    );
    // Nothing matches: Go writes the empty list as null.
    let (code, body) = d.curl(
        "POST",
        &format!(
            "/v1.41/networks/prune?filters={}",
            enc(r#"{"until":{"1h":true}}"#)
        ),
        None,
    );
    assert_eq!(
        (code, parse(&body)),
        (200, json!({"NetworksDeleted": null}))
    );
    let (code, body) = d.curl(
        "POST",
        &format!(
            "/v1.41/networks/prune?filters={}",
            enc(r#"{"label":{"nothing":true}}"#)
        ),
        None,
    );
    assert_eq!(
        (code, parse(&body)),
        (200, json!({"NetworksDeleted": null}))
    );

    // The stock CLI, keeping the labelled one.
    let out = d.ok(&["network", "prune", "-f", "--filter", "label!=keep=yes"]);
    assert_eq!(out.trim(), "Deleted Networks:\nplain", "{out}");
    assert_eq!(swarm_networks(&d), ["ingress", "keep-me", "used"]);

    let (code, body) = d.curl(
        "POST",
        &format!(
            "/v1.41/networks/prune?filters={}",
            enc(r#"{"label":{"keep=yes":true}}"#)
        ),
        None,
    );
    assert_eq!(
        (code, parse(&body)),
        (200, json!({"NetworksDeleted": ["keep-me"]}))
    );
    // The ingress network and one a service uses stay.
    let out = d.ok(&["network", "prune", "-f"]);
    assert_eq!(out.trim(), "", "{out}");
    assert_eq!(swarm_networks(&d), ["ingress", "used"]);
}

#[test]
fn a_network_without_a_name_is_refused() {
    let d = Daemon::start();
    for body in [
        "null",
        "{}",
        r#"{"Name": ""}"#,
        r#"{"Name": "", "Driver": "overlay"}"#,
    ] {
        assert_eq!(
            refused(&d, "POST", "/v1.41/networks/create", Some(body)),
            (400, "invalid name: ".to_string()),
            "{body}"
        );
    }
    let (code, body) = d.curl("GET", "/v1.41/networks", None);
    assert_eq!(code, 200, "{body}");
    let names: Vec<Value> = serde_json::from_str::<Vec<Value>>(&body)
        .unwrap()
        .into_iter()
        .map(|n| n["Name"].clone())
        .collect();
    assert!(!names.contains(&json!("")), "{names:?}");
}
