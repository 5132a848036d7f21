//! Where dockerd's JSON and the generated API types disagree, on the way
//! out.
//!
//! dockerd writes `Healthcheck` in a service's container spec; the generated
//! type names that field `HealthCheck`. Requests need nothing here: the Go
//! decoding of every body ([`crate::gojson`]) matches keys in any case.
//! Responses are rewritten to dockerd's spelling, get the fields dockerd
//! always writes (Go structs without `omitempty`) and lose those newer than
//! the request's API version.

use serde_json::Value;

use crate::server::version::ApiVersion;

const DOCKERD: &str = "Healthcheck";
const GENERATED: &str = "HealthCheck";

fn rename(obj: &mut Value, from: &str, to: &str) {
    if let Some(map) = obj.as_object_mut() {
        if let Some(v) = map.remove(from) {
            map.insert(to.to_string(), v);
        }
    }
}

fn container_spec_of_task_spec(task_spec: &mut Value) -> Option<&mut Value> {
    task_spec.get_mut("ContainerSpec")
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

/// A secret or config as dockerd writes it: a driver (`Driver`,
/// `Templating`) with an empty name has no `Name` (Go's `omitempty`), so
/// `"Templating": {}` reads back as it was sent.
pub fn object_out<T: serde::Serialize>(object: &T) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if let Some(spec) = v.get_mut("Spec") {
        for key in ["Driver", "Templating"] {
            if let Some(d) = spec.get_mut(key).and_then(Value::as_object_mut) {
                if d.get("Name").and_then(Value::as_str) == Some("") {
                    d.remove("Name");
                }
            }
        }
    }
    v
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
    fn an_empty_driver_name_is_omitted() {
        let c: api::Config = serde_json::from_value(
            serde_json::json!({"Spec": {"Name": "c", "Templating": {"Name": ""}}}),
        )
        .unwrap();
        assert_eq!(object_out(&c)["Spec"]["Templating"], serde_json::json!({}));
        let c: api::Config =
            serde_json::from_value(serde_json::json!({"Spec": {"Templating": {"Name": "golang"}}}))
                .unwrap();
        assert_eq!(object_out(&c)["Spec"]["Templating"]["Name"], "golang");
    }

    #[test]
    fn healthcheck_round_trips_in_dockerds_spelling() {
        let body = br#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Healthcheck":{"Test":["CMD","true"],"Interval":10000000000}}}}"#;
        let spec: api::ServiceSpec = crate::body::decode(body).unwrap();
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
