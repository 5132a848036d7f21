//! Where dockerd's JSON and the generated API types disagree.
//!
//! Go decodes JSON keys case-insensitively and writes `Healthcheck` in a
//! service's container spec; the generated type names that field
//! `HealthCheck` and serde matches keys exactly. Requests are rewritten to
//! the type's spelling before decoding and responses back to dockerd's.
//! Responses also get the fields dockerd always writes (Go structs without
//! `omitempty`) and lose those newer than the request's API version.

use serde_json::Value;

use crate::body::decode;
use crate::error::ApiError;
use crate::server::version::ApiVersion;

const DOCKERD: &str = "Healthcheck";
const GENERATED: &str = "HealthCheck";

fn rename(obj: &mut Value, from: &str, to: &str) {
    if let Some(map) = obj.as_object_mut() {
        // Go accepts any case; take the first spelling that matches.
        let key = map.keys().find(|k| k.eq_ignore_ascii_case(from)).cloned();
        if let Some(k) = key {
            if let Some(v) = map.remove(&k) {
                map.insert(to.to_string(), v);
            }
        }
    }
}

fn container_spec_of_task_spec(task_spec: &mut Value) -> Option<&mut Value> {
    task_spec.get_mut("ContainerSpec")
}

/// Decodes a `ServiceSpec` request body with dockerd's key spellings.
pub fn decode_service_spec<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut v: Value = decode(bytes)?;
    if let Some(cs) = v
        .get_mut("TaskTemplate")
        .and_then(container_spec_of_task_spec)
    {
        rename(cs, DOCKERD, GENERATED);
    }
    // Go matches keys in any case: the Python SDK sends
    // `{"replicated": {"Replicas": 2}}` for the service mode.
    canonical_keys(&mut v, &["Mode"]);
    if let Some(mode) = v.get_mut("Mode") {
        canonical_keys(
            mode,
            &["Replicated", "Global", "ReplicatedJob", "GlobalJob"],
        );
        for (k, inner) in [
            ("Replicated", &["Replicas"][..]),
            ("ReplicatedJob", &["MaxConcurrent", "TotalCompletions"][..]),
        ] {
            if let Some(m) = mode.get_mut(k) {
                canonical_keys(m, inner);
            }
        }
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Renames keys of `obj` that match one of `keys` in another case to it.
fn canonical_keys(obj: &mut Value, keys: &[&str]) {
    for k in keys {
        rename(obj, k, k);
    }
}

/// Rewrites a serialized `ServiceSpec` as dockerd writes it for API `version`.
pub fn service_spec_out(spec: &mut Value, version: ApiVersion) {
    if let Some(tt) = spec.get_mut("TaskTemplate") {
        task_spec_out(tt, version);
    }
    for key in ["UpdateConfig", "RollbackConfig"] {
        if let Some(c) = spec.get_mut(key).and_then(Value::as_object_mut) {
            // Go writes a whole float64 without a fraction.
            if let Some(r) = c.get("MaxFailureRatio").and_then(Value::as_f64) {
                if r.fract() == 0.0 && r.abs() < 1e15 {
                    c.insert("MaxFailureRatio".into(), Value::from(r as i64));
                }
            }
        }
    }
}

/// Rewrites a serialized `TaskSpec` as dockerd writes it for API `version`.
pub fn task_spec_out(task_spec: &mut Value, version: ApiVersion) {
    let Some(cs) = container_spec_of_task_spec(task_spec) else {
        return;
    };
    rename(cs, GENERATED, DOCKERD);
    let Some(cs) = cs.as_object_mut() else {
        return;
    };
    cs.entry("Isolation").or_insert_with(|| "default".into());
    if let Some(p) = cs.get_mut("Privileges").and_then(Value::as_object_mut) {
        p.entry("CredentialSpec").or_insert(Value::Null);
        p.entry("SELinuxContext").or_insert(Value::Null);
        // Seccomp, AppArmor and NoNewPrivileges came with API 1.46.
        if !version.at_least(46) {
            for k in ["NoNewPrivileges", "Seccomp", "AppArmor"] {
                p.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm::model::api;

    #[test]
    fn mode_keys_match_in_any_case() {
        let body = br#"{"Name":"m","Mode":{"replicated":{"replicas":2}}}"#;
        let spec: api::ServiceSpec = decode_service_spec(body).unwrap();
        let r = spec
            .mode
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas);
        assert_eq!(r, Some(2));
        let body = br#"{"Name":"g","mode":{"global":{}}}"#;
        let spec: api::ServiceSpec = decode_service_spec(body).unwrap();
        assert!(spec.mode.and_then(|m| m.global).is_some());
    }

    #[test]
    fn healthcheck_round_trips_in_dockerds_spelling() {
        let body = br#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Healthcheck":{"Test":["CMD","true"],"Interval":10000000000}}}}"#;
        let spec: api::ServiceSpec = decode_service_spec(body).unwrap();
        let hc = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.health_check.as_ref())
            .expect("healthcheck kept");
        assert_eq!(hc.interval, Some(10_000_000_000));
        let mut out = serde_json::to_value(&spec).unwrap();
        service_spec_out(&mut out, ApiVersion(41));
        let cs = &out["TaskTemplate"]["ContainerSpec"];
        assert_eq!(cs["Healthcheck"]["Test"][1], "true");
        assert!(cs.get("HealthCheck").is_none());
    }
}
