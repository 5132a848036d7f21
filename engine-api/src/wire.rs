//! Where dockerd's JSON and the generated API types disagree on a key.
//!
//! Go decodes JSON keys case-insensitively and writes `Healthcheck` in a
//! service's container spec; the generated type names that field
//! `HealthCheck` and serde matches keys exactly. Requests are rewritten to
//! the type's spelling before decoding and responses back to dockerd's.

use serde_json::Value;

use crate::body::decode;
use crate::error::ApiError;

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
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Rewrites a serialized `ServiceSpec` to dockerd's key spellings.
pub fn service_spec_out(spec: &mut Value) {
    if let Some(tt) = spec.get_mut("TaskTemplate") {
        task_spec_out(tt);
    }
}

/// Rewrites a serialized `TaskSpec` to dockerd's key spellings.
pub fn task_spec_out(task_spec: &mut Value) {
    if let Some(cs) = container_spec_of_task_spec(task_spec) {
        rename(cs, GENERATED, DOCKERD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm::model::api;

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
        service_spec_out(&mut out);
        let cs = &out["TaskTemplate"]["ContainerSpec"];
        assert_eq!(cs["Healthcheck"]["Test"][1], "true");
        assert!(cs.get("HealthCheck").is_none());
    }
}
