use serde_json::json;

use super::*;
use crate::controlapi::config;
use crate::controlapi::secret;
use crate::controlapi::service;
use crate::store::Store;

fn spec(container: serde_json::Value) -> api::ServiceSpec {
    let mut cs = json!({"Image": "busybox"});
    cs.as_object_mut()
        .unwrap()
        .extend(container.as_object().unwrap().clone());
    serde_json::from_value(json!({"Name": "web", "TaskTemplate": {"ContainerSpec": cs}})).unwrap()
}

fn shape_error(container: serde_json::Value) -> String {
    let s = spec(container);
    check_config_targets(&s)
        .and_then(|_| check_shape(&s))
        .unwrap_err()
        .message()
        .to_string()
}

#[test]
fn malformed_references_get_swarmkits_texts() {
    let rpc = |d: &str| format!("rpc error: code = InvalidArgument desc = {d}");
    assert_eq!(
        shape_error(json!({"Secrets": [{"SecretName": "s", "File": {"Name": "a"}}]})),
        rpc("malformed secret reference")
    );
    assert_eq!(
        shape_error(json!({"Secrets": [{"SecretID": "i", "SecretName": "s"}]})),
        rpc("malformed secret reference, no target provided")
    );
    assert_eq!(
        shape_error(json!({"Secrets": [{"SecretID": "i", "SecretName": "s", "File": {}}]})),
        rpc("malformed file secret reference, invalid target file name provided")
    );
    assert_eq!(
        shape_error(json!({"Secrets": [
            {"SecretID": "a", "SecretName": "s1", "File": {"Name": "t"}},
            {"SecretID": "b", "SecretName": "s2", "File": {"Name": "t"}}]})),
        rpc("secret references 's1' and 's2' have a conflicting target: 't'")
    );
    assert_eq!(
        shape_error(json!({"Configs": [{"ConfigName": "c", "File": {"Name": "a"}}]})),
        rpc("malformed config reference")
    );
    assert_eq!(
        shape_error(json!({"Configs": [{"ConfigID": "i", "ConfigName": "c"}]})),
        "invalid Config: either File or Runtime should be set"
    );
    assert_eq!(
        shape_error(
            json!({"Configs": [{"ConfigID": "i", "ConfigName": "c", "File": {"Name": "a"}, "Runtime": {}}]})
        ),
        "invalid Config: cannot specify both File and Runtime"
    );
    assert_eq!(
        shape_error(json!({"Privileges": {"CredentialSpec": {"Config": "x"}}})),
        rpc("CredentialSpec references config 'x', but that config isn't in config references with RuntimeTarget")
    );
}

#[tokio::test]
async fn references_must_name_stored_objects_by_id_and_name() {
    let store = Store::in_memory();
    let sid = secret::create(
        &store,
        serde_json::from_value(json!({"Name": "s1", "Data": "aGk="})).unwrap(),
    )
    .await
    .unwrap();
    let cid = config::create(
        &store,
        serde_json::from_value(json!({"Name": "c1", "Data": "aGk="})).unwrap(),
    )
    .await
    .unwrap();
    let err = |r: crate::error::Result<String>| r.unwrap_err().message().to_string();
    let madeup = spec(
        json!({"Secrets": [{"SecretID": "madeupid123", "SecretName": "nosuch", "File": {"Name": "a"}}]}),
    );
    assert_eq!(
        err(service::create(&store, madeup, None).await),
        "rpc error: code = InvalidArgument desc = secret not found: nosuch"
    );
    let two = spec(json!({"Secrets": [
        {"SecretID": sid, "SecretName": "wrongname", "File": {"Name": "a"}},
        {"SecretID": "m2", "SecretName": "n2", "File": {"Name": "b"}}]}));
    assert_eq!(
        err(service::create(&store, two, None).await),
        "rpc error: code = InvalidArgument desc = secrets not found: wrongname, n2"
    );
    let cfg = spec(
        json!({"Configs": [{"ConfigID": "zz", "ConfigName": "nocfg", "File": {"Name": "a"}}]}),
    );
    assert_eq!(
        err(service::create(&store, cfg, None).await),
        "rpc error: code = InvalidArgument desc = config not found: nocfg"
    );
    let good = spec(json!({
        "Secrets": [{"SecretID": sid, "SecretName": "s1", "File": {"Name": "a"}}],
        "Configs": [{"ConfigID": cid, "ConfigName": "c1", "File": {"Name": "b"}}]}));
    let id = service::create(&store, good, None).await.unwrap();
    // Update checks the same, whatever the version says.
    let bad = spec(
        json!({"Secrets": [{"SecretID": "madeupid123", "SecretName": "nosuch", "File": {"Name": "a"}}]}),
    );
    let e = service::update(&store, &id, 1, bad, service::UpdateKind::Replace, None)
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "rpc error: code = InvalidArgument desc = secret not found: nosuch"
    );
}
