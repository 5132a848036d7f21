//! Go's decoding rules, case by case, on the API's own types and on small
//! structs that isolate one rule.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;
use serde_json::Value;
use swarm::model::api;

use super::fields::fold_eq;
use super::from_slice;

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
    from_slice(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

#[test]
fn keys_match_in_any_case_at_every_depth() {
    let spec: api::ServiceSpec = decode(json!({
        "name": "web",
        "LABELS": {"Tier": "front"},
        "tasktemplate": {
            "containerSpec": {
                "IMAGE": "busybox:latest",
                "args": ["sleep", "1"],
                "healthcheck": {"test": ["CMD", "true"], "interval": 5},
            },
            "networks": [{"target": "net1", "aliases": ["a"]}],
            "restartpolicy": {"condition": "none"},
        },
        "mode": {"replicated": {"replicas": 2}},
        "endpointspec": {"ports": [{"targetport": 80, "publishedport": 8080}]},
    }));
    assert_eq!(spec.name.as_deref(), Some("web"));
    assert_eq!(spec.labels.unwrap()["Tier"], "front");
    let tt = spec.task_template.unwrap();
    let cs = tt.container_spec.unwrap();
    assert_eq!(cs.image.as_deref(), Some("busybox:latest"));
    assert_eq!(cs.args.unwrap(), ["sleep", "1"]);
    assert_eq!(cs.health_check.unwrap().interval, Some(5));
    let nets = tt.networks.unwrap();
    assert_eq!(nets[0].target.as_deref(), Some("net1"));
    assert_eq!(nets[0].aliases.as_deref(), Some(&["a".to_string()][..]));
    assert_eq!(
        tt.restart_policy.unwrap().condition,
        Some(api::TaskSpecRestartPolicyConditionEnum::NONE)
    );
    assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(2));
    let port = &spec.endpoint_spec.unwrap().ports.unwrap()[0];
    assert_eq!(
        (port.target_port, port.published_port),
        (Some(80), Some(8080))
    );
}

#[test]
fn config_templating_in_lower_case() {
    let spec: api::ConfigSpec = decode(json!({
        "name": "c", "data": "aGk=", "templating": {"name": "golang"},
    }));
    assert_eq!(spec.name.as_deref(), Some("c"));
    assert_eq!(spec.data.as_deref(), Some("aGk="));
    assert_eq!(spec.templating.unwrap().name, "golang");
}

/// Two fields whose names differ only by case, as Go meets them.
#[derive(Debug, Deserialize, PartialEq)]
struct Twins {
    #[serde(rename = "Foo")]
    upper: Option<String>,
    #[serde(rename = "foo")]
    lower: Option<String>,
}

#[test]
fn an_exact_match_wins_over_a_folded_one() {
    let t: Twins = decode(json!({"foo": "l", "Foo": "u"}));
    assert_eq!(t.upper.as_deref(), Some("u"));
    assert_eq!(t.lower.as_deref(), Some("l"));
    // No exact match: the first field in declaration order takes it.
    let t: Twins = decode(json!({"FOO": "x"}));
    assert_eq!(t.upper.as_deref(), Some("x"));
    assert_eq!(t.lower, None);
}

#[test]
fn a_repeated_key_merges_objects_and_otherwise_the_last_wins() {
    // What dockerd stored for this very body: `Name` from the last key,
    // `ContainerSpec` from both.
    let body = br#"{"Name":"a","name":"b","TaskTemplate":{"ContainerSpec":
        {"Image":"busybox","Args":null,"Env":["A=1"]},"containerspec":{"args":["y"]}}}"#;
    let spec: api::ServiceSpec = from_slice(body).unwrap();
    assert_eq!(spec.name.as_deref(), Some("b"));
    let cs = spec.task_template.unwrap().container_spec.unwrap();
    assert_eq!(cs.image.as_deref(), Some("busybox"));
    assert_eq!(cs.env.unwrap(), ["A=1"]);
    assert_eq!(cs.args.unwrap(), ["y"]);
    // Arrays and scalars are replaced, and the same key twice too.
    let body = br#"{"Labels":{"a":"1"},"Name":"x","Name":"y","labels":{"b":"2"}}"#;
    let spec: api::SecretSpec = from_slice(body).unwrap();
    assert_eq!(spec.name.as_deref(), Some("y"));
    let labels = spec.labels.unwrap();
    assert_eq!((labels["a"].as_str(), labels["b"].as_str()), ("1", "2"));
}

#[test]
fn unknown_members_are_ignored_at_every_depth() {
    let spec: api::ServiceSpec = decode(json!({
        "Name": "s", "Bogus": 1,
        "TaskTemplate": {"Nope": [1], "ContainerSpec": {"Image": "i", "Extra": {"x": null}}},
    }));
    assert_eq!(spec.name.as_deref(), Some("s"));
    let cs = spec.task_template.unwrap().container_spec.unwrap();
    assert_eq!(cs.image.as_deref(), Some("i"));
}

#[test]
fn map_keys_are_data_and_kept_as_sent() {
    let spec: api::ConfigSpec =
        from_slice(br#"{"Labels":{"Foo":"1","foo":"2","x":"a","x":"b"}}"#).unwrap();
    let labels = spec.labels.unwrap();
    assert_eq!(labels.len(), 3);
    assert_eq!((labels["Foo"].as_str(), labels["foo"].as_str()), ("1", "2"));
    assert_eq!(labels["x"], "b");
    let v: Value = from_slice(br#"{"Container":"c","container":"d"}"#).unwrap();
    assert_eq!(v, json!({"Container": "c", "container": "d"}));
}

/// Fields of every kind that serde would otherwise call missing or refuse
/// as `null`.
#[derive(Debug, Deserialize, PartialEq)]
struct Plain {
    #[serde(rename = "S")]
    s: String,
    #[serde(rename = "N")]
    n: u64,
    #[serde(rename = "I")]
    i: i32,
    #[serde(rename = "F")]
    f: f64,
    #[serde(rename = "B")]
    b: bool,
    #[serde(rename = "V")]
    v: Vec<String>,
    #[serde(rename = "M")]
    m: HashMap<String, String>,
    #[serde(rename = "A")]
    a: [u32; 2],
    #[serde(rename = "Inner")]
    inner: Inner,
    #[serde(rename = "Role")]
    role: api::NodeSpecRoleEnum,
    #[serde(rename = "Opt")]
    opt: Option<String>,
    #[serde(rename = "Any")]
    any: Value,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Inner {
    #[serde(rename = "Name")]
    name: String,
}

fn zero_plain() -> Plain {
    Plain {
        s: String::new(),
        n: 0,
        i: 0,
        f: 0.0,
        b: false,
        v: Vec::new(),
        m: HashMap::new(),
        a: [0, 0],
        inner: Inner {
            name: String::new(),
        },
        role: api::NodeSpecRoleEnum::EMPTY,
        opt: None,
        any: Value::Null,
    }
}

#[test]
fn null_and_absent_members_give_the_zero_value() {
    assert_eq!(decode::<Plain>(json!({})), zero_plain());
    let nulls = json!({
        "S": null, "N": null, "I": null, "F": null, "B": null, "V": null, "M": null,
        "A": null, "Inner": null, "Role": null, "Opt": null, "Any": null,
    });
    assert_eq!(decode::<Plain>(nulls), zero_plain());
    assert_eq!(decode::<Plain>(json!({"Inner": {}})), zero_plain());
    // A whole body of `null` is a zero struct too (Go leaves it untouched).
    assert_eq!(from_slice::<Plain>(b"null").unwrap(), zero_plain());
    let t: api::ConfigSpec = decode(json!({"Templating": {}}));
    assert_eq!(t.templating.unwrap().name, "");
    let t: api::ConfigSpec = decode(json!({"Templating": null, "Labels": null}));
    assert_eq!((t.templating, t.labels), (None, None));
}

#[test]
fn set_members_keep_their_values() {
    let p: Plain = decode(json!({
        "s": "x", "n": 7, "i": -3, "f": 1.5, "b": true, "v": ["a"], "m": {"K": "v"},
        "a": [1, 2], "inner": {"NAME": "in"}, "role": "manager", "opt": "o", "any": {"k": [1]},
    }));
    assert_eq!(p.s, "x");
    assert_eq!((p.n, p.i, p.f, p.b), (7, -3, 1.5, true));
    assert_eq!((p.v, p.a), (vec!["a".to_string()], [1, 2]));
    assert_eq!(p.m["K"], "v");
    assert_eq!(p.inner.name, "in");
    assert_eq!(p.role, api::NodeSpecRoleEnum::MANAGER);
    assert_eq!(p.opt.as_deref(), Some("o"));
    assert_eq!(p.any, json!({"k": [1]}));
}

#[test]
fn wrong_kinds_are_still_refused() {
    let bad = |body: &[u8]| {
        from_slice::<api::ServiceSpec>(body)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad(br#"{"Mode":{"Replicated":{"Replicas":"x"}}}"#),
        "invalid type: string \"x\", expected i64"
    );
    assert_eq!(
        bad(br#"{"mode":{"replicated":{"replicas":1.5}}}"#),
        "invalid type: floating point `1.5`, expected i64"
    );
    assert_eq!(
        bad(br#"{"Name":7}"#),
        "invalid type: integer `7`, expected a string"
    );
    assert!(bad(b"[]").starts_with("invalid type: sequence"));
    let role = from_slice::<api::NodeSpec>(br#"{"Role":"boss"}"#).unwrap_err();
    assert!(
        role.to_string().starts_with("unknown variant `boss`"),
        "{role}"
    );
}

#[test]
fn syntax_errors_are_the_parsers() {
    let e = from_slice::<api::ServiceSpec>(br#"{"Name": "#).unwrap_err();
    assert!(e.is_eof());
    let e = from_slice::<api::ServiceSpec>(br#"{"Name": x}"#).unwrap_err();
    assert_eq!(e.to_string(), "expected value at line 1 column 10");
}

#[test]
fn folding_is_gos() {
    assert!(fold_eq("Name", "nAME"));
    assert!(fold_eq("Secrets", "\u{17F}ecrets"));
    assert!(fold_eq("Kind", "\u{212A}IND"));
    assert!(!fold_eq("Name", "Names"));
    assert!(!fold_eq("Name", "Nam\u{e9}"));
}

#[test]
fn an_empty_struct_ignores_its_members() {
    // Go's `GlobalService{}` takes any object; the generated type is a map
    // keyed by units.
    let spec: api::ServiceSpec =
        from_slice(br#"{"Name":"g","Mode":{"Global":{"Zza":1,"b":{"c":[]}}},"Labels":{"k":"v"}}"#)
            .unwrap();
    let out = serde_json::to_value(&spec).unwrap();
    assert_eq!(out["Mode"], serde_json::json!({"Global": {}}));
    assert_eq!(out["Labels"], serde_json::json!({"k": "v"}));
}
