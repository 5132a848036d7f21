use serde_json::json;

use super::*;

fn decode(v: serde_json::Value) -> api::ServiceSpec {
    serde_json::from_value(v).unwrap()
}

fn shaped(v: serde_json::Value) -> serde_json::Value {
    serde_json::to_value(normalize(decode(v))).unwrap()
}

#[test]
fn given_configs_gain_what_go_always_writes() {
    let out = shaped(json!({
        "Name": "r2",
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}, "RestartPolicy": {}},
        "UpdateConfig": {},
        "RollbackConfig": {"Parallelism": 2, "Delay": 0, "Monitor": 0},
    }));
    assert_eq!(
        out["UpdateConfig"],
        json!({"Parallelism": 0, "FailureAction": "pause", "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    assert_eq!(
        out["RollbackConfig"],
        json!({"Parallelism": 2, "FailureAction": "pause", "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    assert_eq!(
        out["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "any", "MaxAttempts": 0})
    );
    assert_eq!(out["TaskTemplate"]["ForceUpdate"], 0);
    assert_eq!(out["Labels"], json!({}));
}

#[test]
fn empty_lists_maps_strings_and_zero_sizes_vanish() {
    let out = shaped(json!({
        "Name": "e1", "Networks": [],
        "TaskTemplate": {
            "Networks": [],
            "ContainerSpec": {
                "Image": "busybox", "Args": [], "Env": [], "Labels": {}, "Sysctls": {},
                "Privileges": {}, "DNSConfig": {"Nameservers": []}, "HealthCheck": {"Test": []},
                "TTY": false, "Init": false, "Dir": "",
                "Secrets": [{"SecretID": "a", "SecretName": "b", "File": {"Name": "f", "UID": "", "GID": "0", "Mode": 0}}]
            },
            "Placement": {"Constraints": [], "MaxReplicas": 0},
            "Resources": {"Limits": {"NanoCPUs": 0}, "Reservations": {"GenericResources": []}},
            "RestartPolicy": {"Delay": 0, "Window": 0},
            "LogDriver": {"Name": "", "Options": {}}
        },
        "EndpointSpec": {"Ports": []}
    }));
    let tt = &out["TaskTemplate"];
    let cs = &tt["ContainerSpec"];
    assert!(out.get("Networks").is_none() && tt.get("Networks").is_none());
    for gone in ["Args", "Env", "Labels", "Sysctls", "TTY", "Dir"] {
        assert!(cs.get(gone).is_none(), "{gone} kept: {cs}");
    }
    assert_eq!(cs["Init"], false, "a pointer flag stays");
    assert_eq!(cs["Privileges"], json!({}));
    assert_eq!(cs["DNSConfig"], json!({}));
    assert_eq!(cs["HealthCheck"], json!({}));
    assert_eq!(
        cs["Secrets"][0]["File"],
        json!({"Name": "f", "UID": "", "GID": "0", "Mode": 0})
    );
    assert_eq!(tt["Placement"], json!({}));
    assert_eq!(tt["Resources"], json!({"Limits": {}, "Reservations": {}}));
    assert_eq!(
        tt["RestartPolicy"],
        json!({"Condition": "any", "Delay": 0, "MaxAttempts": 0, "Window": 0})
    );
    assert_eq!(tt["LogDriver"], json!({}));
    assert_eq!(out["EndpointSpec"], json!({"Mode": "vip"}));
    assert_eq!(normalize(decode(out.clone())), decode(out), "idempotent");
}

#[test]
fn insert_defaults_fills_only_what_swarmkit_fills() {
    let stored = normalize(decode(json!({
        "Name": "r2",
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
        "UpdateConfig": {},
    })));
    let out = serde_json::to_value(with_defaults(stored)).unwrap();
    // A given update config keeps its zero parallelism; only the monitor
    // period is filled in it.
    assert_eq!(
        out["UpdateConfig"],
        json!({"Parallelism": 0, "FailureAction": "pause", "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    assert_eq!(
        out["RollbackConfig"],
        json!({"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    let tt = &out["TaskTemplate"];
    assert_eq!(
        tt["RestartPolicy"],
        json!({"Condition": "any", "Delay": 5_000_000_000i64, "MaxAttempts": 0})
    );
    assert_eq!(tt["Placement"], json!({}));
    assert_eq!(tt["Resources"], json!({}));
    assert_eq!(tt["ContainerSpec"]["DNSConfig"], json!({}));
    assert_eq!(tt["ContainerSpec"]["StopGracePeriod"], 10_000_000_000i64);
}

#[test]
fn mounts_and_privileges_as_swarmkit_gives_them_back() {
    let out = shaped(json!({
        "Name": "e2",
        "TaskTemplate": {"ContainerSpec": {
            "Image": "busybox",
            "Privileges": {"SELinuxContext": {"Disable": true}, "CredentialSpec": {"File": "x.json"}},
            "Mounts": [
                {"Source": "/tmp", "Target": "/y", "ReadOnly": false, "BindOptions": {}},
                {"Type": "bind", "Source": "/tmp", "Target": "/w", "BindOptions": {"NonRecursive": true}},
                {"Type": "tmpfs", "Target": "/z", "TmpfsOptions": {"SizeBytes": 0, "Mode": 0}}
            ]
        }}
    }));
    let cs = &out["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        cs["Privileges"],
        json!({
            "CredentialSpec": {"Config": "", "File": "x.json", "Registry": ""},
            "SELinuxContext": {"Disable": true, "User": "", "Role": "", "Type": "", "Level": ""}
        })
    );
    assert_eq!(
        cs["Mounts"][0],
        json!({"Type": "bind", "Source": "/tmp", "Target": "/y"})
    );
    assert_eq!(
        cs["Mounts"][1]["BindOptions"],
        json!({"Propagation": "rprivate", "NonRecursive": true})
    );
    assert_eq!(cs["Mounts"][2]["TmpfsOptions"], json!({}));
}
