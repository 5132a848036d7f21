//! End-to-end: request bodies decoded as dockerd's Go decoder reads them,
//! and the name references a spec carries stored as dockerd stores them.
//!
//! - Keys match in any case at every depth, unknown keys are ignored, a
//!   repeated key is read over the earlier one, and `null` is the zero
//!   value: what the Python SDK and hand-written calls rely on.
//! - A network named in a service spec is stored by ID, as dockerd 20.10
//!   does (it resolves `TaskTemplate.Networks`, or the service-level
//!   `Networks` when the template has none, before swarmkit stores the
//!   spec); a service-level list beside a template list is kept as sent.

mod common;

use common::Daemon;
use serde_json::json;
use serde_json::Value;

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

fn post(d: &Daemon, path: &str, body: &str, want: u16) -> Value {
    let (code, out) = d.curl("POST", path, Some(body));
    assert_eq!(code, want, "POST {path} {body}: {out}");
    if out.trim().is_empty() {
        Value::Null
    } else {
        parse(&out)
    }
}

fn get(d: &Daemon, path: &str) -> Value {
    let (code, out) = d.curl("GET", path, None);
    assert_eq!(code, 200, "GET {path}: {out}");
    parse(&out)
}

#[test]
fn lower_case_config_and_secret_bodies() {
    let d = Daemon::with_swarm();
    let body =
        json!({"name": "tpl", "data": "aGVsbG8=", "templating": {"name": "golang"}, "extra": 1});
    post(&d, "/v1.41/configs/create", &body.to_string(), 201);
    let spec = &get(&d, "/v1.41/configs/tpl")["Spec"];
    assert_eq!(spec["Name"], "tpl");
    assert_eq!(spec["Data"], "aGVsbG8=");
    assert_eq!(spec["Templating"]["Name"], "golang");
    // The CLI sees it like any other config.
    let name = d.ok(&[
        "config",
        "inspect",
        "--format",
        "{{.Spec.Templating.Name}}",
        "tpl",
    ]);
    assert_eq!(name.trim(), "golang");
    // A driver with no name is Go's zero value, and reads back as sent.
    let body = json!({"name": "empty-tpl", "data": "aGk=", "templating": {}, "labels": null});
    post(&d, "/v1.41/configs/create", &body.to_string(), 201);
    let spec = &get(&d, "/v1.41/configs/empty-tpl")["Spec"];
    assert_eq!(spec["Templating"], json!({}));
    assert_eq!(spec["Labels"], json!({}));

    let body = r#"{"NAME":"pw","Data":"aGk=","labels":null,"Labels":{"a":"1"},"labels":{"b":"2"}}"#;
    post(&d, "/v1.41/secrets/create", body, 201);
    let spec = &get(&d, "/v1.41/secrets/pw")["Spec"];
    assert_eq!(spec["Name"], "pw");
    assert_eq!(spec["Labels"], json!({"a": "1", "b": "2"}));
}

#[test]
fn lower_case_service_body() {
    let d = Daemon::with_swarm();
    let body = json!({
        "name": "lower",
        "labels": {"Tier": "front"},
        "tasktemplate": {
            "containerspec": {
                "image": "busybox:latest",
                "args": ["sleep", "1000"],
                "healthcheck": {"test": ["CMD", "true"], "interval": 5000000000u64},
            },
            "restartpolicy": {"condition": "none"},
            "unknown": {"x": 1},
        },
        "mode": {"replicated": {"replicas": 0}},
        "endpointspec": {"ports": [{"targetport": 80, "publishedport": 18080}]},
    });
    post(&d, "/v1.41/services/create", &body.to_string(), 201);
    let spec = &get(&d, "/v1.41/services/lower")["Spec"];
    assert_eq!(spec["Name"], "lower");
    assert_eq!(spec["Labels"]["Tier"], "front");
    let cs = &spec["TaskTemplate"]["ContainerSpec"];
    assert_eq!(cs["Image"], "busybox:latest");
    assert_eq!(cs["Args"], json!(["sleep", "1000"]));
    assert_eq!(cs["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(spec["TaskTemplate"]["RestartPolicy"]["Condition"], "none");
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 0);
    assert_eq!(spec["EndpointSpec"]["Ports"][0]["PublishedPort"], 18080);

    // A repeated key is read over the earlier one (objects merge), and an
    // update with lower-case keys works too.
    let version = get(&d, "/v1.41/services/lower")["Version"]["Index"]
        .as_u64()
        .unwrap();
    let update = r#"{"Name":"lower","TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest","Env":["A=1"]},
        "containerSpec":{"args":["sleep","5"]}},"Mode":{"Replicated":{"Replicas":0}},"mode":{"replicated":{"replicas":0}}}"#;
    post(
        &d,
        &format!("/v1.41/services/lower/update?version={version}"),
        update,
        200,
    );
    let cs = &get(&d, "/v1.41/services/lower")["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(cs["Env"], json!(["A=1"]));
    assert_eq!(cs["Args"], json!(["sleep", "5"]));

    // Wrong kinds are still refused with a 400.
    let (code, out) = d.curl(
        "POST",
        "/v1.41/services/create",
        Some(r#"{"name":"bad","mode":{"replicated":{"replicas":"x"}}}"#),
    );
    assert_eq!(code, 400, "{out}");
}

#[test]
fn networks_named_in_a_service_are_stored_by_id() {
    let d = Daemon::with_swarm();
    let net = post(
        &d,
        "/v1.41/networks/create",
        r#"{"name":"front","driver":"overlay","attachable":true}"#,
        201,
    );
    let net_id = net["Id"].as_str().unwrap().to_string();
    let create = |name: &str, template: Value, service: Value| {
        let mut spec = json!({
            "Name": name,
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox:latest", "Args": ["sleep", "1000"]}},
            "Mode": {"Replicated": {"Replicas": 0}},
        });
        if !template.is_null() {
            spec["TaskTemplate"]["Networks"] = template;
        }
        if !service.is_null() {
            spec["Networks"] = service;
        }
        post(&d, "/v1.41/services/create", &spec.to_string(), 201);
        get(&d, &format!("/v1.41/services/{name}"))["Spec"].clone()
    };

    let spec = create(
        "by-name",
        json!([{"target": "front", "aliases": ["web"]}]),
        Value::Null,
    );
    let nets = &spec["TaskTemplate"]["Networks"];
    assert_eq!(nets, &json!([{"Target": net_id, "Aliases": ["web"]}]));

    let spec = create("service-level", Value::Null, json!([{"Target": "front"}]));
    assert_eq!(spec["Networks"], json!([{"Target": net_id}]));

    let spec = create(
        "both",
        json!([{"Target": "front"}]),
        json!([{"Target": "front"}]),
    );
    assert_eq!(
        spec["TaskTemplate"]["Networks"],
        json!([{"Target": net_id}])
    );
    assert_eq!(spec["Networks"], json!([{"Target": "front"}]));

    // The CLI shows the network by name whichever way it was given.
    let shown = d.ok(&["service", "inspect", "--pretty", "by-name"]);
    assert!(shown.contains("front"), "{shown}");
}

#[test]
fn lower_case_node_update() {
    let d = Daemon::with_swarm();
    let node = &get(&d, "/v1.41/nodes")[0];
    let id = node["ID"].as_str().unwrap().to_string();
    let version = node["Version"]["Index"].as_u64().unwrap();
    post(
        &d,
        &format!("/v1.41/nodes/{id}/update?version={version}"),
        r#"{"role":"Manager","availability":"PAUSE","labels":{"k":"v"}}"#,
        200,
    );
    let spec = &get(&d, &format!("/v1.41/nodes/{id}"))["Spec"];
    assert_eq!(spec["Availability"], "pause");
    assert_eq!(spec["Role"], "manager");
    assert_eq!(spec["Labels"]["k"], "v");
}
