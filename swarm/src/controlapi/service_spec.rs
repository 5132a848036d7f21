//! A service spec in the shape dockerd stores and returns it, and the
//! defaults `GET /services/{id}?insertDefaults=true` adds.
//!
//! dockerd turns the request's spec into swarmkit's protobuf spec and back
//! again when it is read, so what a client reads back is what survives that
//! round trip: a given update config gains its `Order`, `Parallelism` and
//! `MaxFailureRatio` (Go fields without `omitempty`), a given restart policy
//! its `Condition` and `MaxAttempts`, the task template its `ForceUpdate`;
//! while empty lists, maps and strings, zero sizes and durations and false
//! flags written by the client vanish (Go's `omitempty`). shoal stores the
//! spec already in that shape, so a spec reads back the same from a fresh
//! store, a restarted daemon or a follower.

use serde_json::Map;
use serde_json::Value;

use crate::model::api;

/// Fills what dockerd stores for omitted fields and drops what its round
/// trip drops (see the module text). Idempotent.
pub fn normalize(spec: api::ServiceSpec) -> api::ServiceSpec {
    let mut spec = fill(spec);
    let Ok(mut v) = serde_json::to_value(&spec) else {
        return spec;
    };
    if let Some(top) = v.as_object_mut() {
        prune_object("", top);
    }
    if let Ok(shaped) = serde_json::from_value(v) {
        spec = shaped;
    }
    // The service's own labels are the one map Go always writes.
    spec.labels.get_or_insert_with(Default::default);
    spec
}

/// The values swarmkit's protobuf types give the fields dockerd always writes.
fn fill(mut spec: api::ServiceSpec) -> api::ServiceSpec {
    let mode = spec.mode.get_or_insert_with(Default::default);
    let none = mode.replicated.is_none()
        && mode.global.is_none()
        && mode.replicated_job.is_none()
        && mode.global_job.is_none();
    if none {
        mode.replicated = Some(Default::default());
    }
    if let Some(r) = mode.replicated.as_mut() {
        r.replicas.get_or_insert(1);
    }
    if let Some(j) = mode.replicated_job.as_mut() {
        let mc = *j.max_concurrent.get_or_insert(1);
        j.total_completions.get_or_insert(mc);
    }
    if let Some(uc) = spec.update_config.as_mut() {
        use api::ServiceSpecUpdateConfigFailureActionEnum as Fail;
        use api::ServiceSpecUpdateConfigOrderEnum as Order;
        if matches!(uc.failure_action, None | Some(Fail::EMPTY)) {
            uc.failure_action = Some(Fail::PAUSE);
        }
        if matches!(uc.order, None | Some(Order::EMPTY)) {
            uc.order = Some(Order::STOP_FIRST);
        }
        uc.parallelism.get_or_insert(0);
        uc.max_failure_ratio.get_or_insert(0.0);
    }
    if let Some(rc) = spec.rollback_config.as_mut() {
        use api::ServiceSpecRollbackConfigFailureActionEnum as Fail;
        use api::ServiceSpecRollbackConfigOrderEnum as Order;
        if matches!(rc.failure_action, None | Some(Fail::EMPTY)) {
            rc.failure_action = Some(Fail::PAUSE);
        }
        if matches!(rc.order, None | Some(Order::EMPTY)) {
            rc.order = Some(Order::STOP_FIRST);
        }
        rc.parallelism.get_or_insert(0);
        rc.max_failure_ratio.get_or_insert(0.0);
    }
    // dockerd shows `Labels: {}` for a service created without labels.
    spec.labels.get_or_insert_with(Default::default);
    // An endpoint spec without a mode means VIP, a port without protocol or
    // publish mode is TCP through ingress, and dockerd says so.
    if let Some(es) = spec.endpoint_spec.as_mut() {
        if matches!(es.mode, None | Some(api::EndpointSpecModeEnum::EMPTY)) {
            es.mode = Some(api::EndpointSpecModeEnum::VIP);
        }
        for p in es.ports.iter_mut().flatten() {
            use api::EndpointPortConfigProtocolEnum as Proto;
            use api::EndpointPortConfigPublishModeEnum as Publish;
            if matches!(p.protocol, None | Some(Proto::EMPTY)) {
                p.protocol = Some(Proto::TCP);
            }
            if matches!(p.publish_mode, None | Some(Publish::EMPTY)) {
                p.publish_mode = Some(Publish::INGRESS);
            }
        }
    }
    if let Some(tt) = spec.task_template.as_mut() {
        fill_task(tt);
    }
    spec
}

fn fill_task(tt: &mut api::TaskSpec) {
    tt.force_update.get_or_insert(0);
    if let Some(rp) = tt.restart_policy.as_mut() {
        use api::TaskSpecRestartPolicyConditionEnum as Cond;
        if matches!(rp.condition, None | Some(Cond::EMPTY)) {
            rp.condition = Some(Cond::ANY);
        }
        rp.max_attempts.get_or_insert(0);
    }
    // dockerd reports the runtime it derives from the spec and clients send
    // it back on update; storing it keeps such a round trip a no-op for tasks.
    if tt.container_spec.is_some() && tt.runtime.as_deref().unwrap_or("").is_empty() {
        tt.runtime = Some("container".into());
    }
    if let Some(cs) = tt.container_spec.as_mut() {
        use api::TaskSpecContainerSpecIsolationEnum as Iso;
        if matches!(cs.isolation, None | Some(Iso::EMPTY)) {
            cs.isolation = Some(Iso::DEFAULT);
        }
        fill_privileges(cs);
        for m in cs.mounts.iter_mut().flatten() {
            // swarmkit's first mount type is a bind.
            if matches!(m.typ, None | Some(api::MountTypeEnum::EMPTY)) {
                m.typ = Some(api::MountTypeEnum::BIND);
            }
            // Bind options survive only with a propagation or non-recursive.
            let kept = m.bind_options.as_ref().is_some_and(|b| {
                !matches!(
                    b.propagation,
                    None | Some(api::MountBindOptionsPropagationEnum::EMPTY)
                ) || b.non_recursive == Some(true)
            });
            if !kept {
                m.bind_options = None;
            }
            // ...and then swarmkit's first propagation is rprivate.
            if let Some(b) = m.bind_options.as_mut() {
                use api::MountBindOptionsPropagationEnum as Prop;
                if matches!(b.propagation, None | Some(Prop::EMPTY)) {
                    b.propagation = Some(Prop::RPRIVATE);
                }
            }
        }
    }
}

/// The strings of an SELinux context and a credential spec are Go fields
/// without `omitempty`: dockerd writes all of them once the object is there.
fn fill_privileges(cs: &mut api::TaskSpecContainerSpec) {
    let Some(p) = cs.privileges.as_mut() else {
        return;
    };
    if let Some(c) = p.se_linux_context.as_mut() {
        c.disable.get_or_insert(false);
        for f in [&mut c.user, &mut c.role, &mut c.typ, &mut c.level] {
            f.get_or_insert_with(String::new);
        }
    }
    if let Some(c) = p.credential_spec.as_mut() {
        for f in [&mut c.config, &mut c.file, &mut c.registry] {
            f.get_or_insert_with(String::new);
        }
    }
}

/// Maps (not structs) among a spec's objects: dropped when empty.
const MAPS: &[&str] = &["Labels", "Sysctls", "Options", "DriverOpts"];
/// Flags written only when true.
const FLAGS: &[&str] = &[
    "TTY",
    "OpenStdin",
    "ReadOnly",
    "NonRecursive",
    "CreateMountpoint",
    "ReadOnlyNonRecursive",
    "ReadOnlyForceRecursive",
    "NoCopy",
    "NoNewPrivileges",
];
/// Objects whose strings Go always writes, even empty.
const KEEP_STRINGS: &[&str] = &["CredentialSpec", "SELinuxContext", "File"];

/// Whether the number at `parent.key` is written only when non-zero.
fn zero_omitted(parent: &str, key: &str) -> bool {
    match key {
        "NanoCPUs" | "MemoryBytes" | "Pids" | "MaxReplicas" | "TargetPort" | "PublishedPort" => {
            true
        }
        "Delay" | "Monitor" => matches!(parent, "UpdateConfig" | "RollbackConfig"),
        "Interval" | "Timeout" | "StartPeriod" | "Retries" | "StartInterval" => {
            matches!(parent, "Healthcheck" | "HealthCheck")
        }
        "SizeBytes" | "Mode" => parent == "TmpfsOptions",
        _ => false,
    }
}

/// Go's `omitempty` over one field `key` of object `parent`: prunes inside
/// `v` and says whether `v` itself is to be dropped.
fn omitted(parent: &str, key: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty() && !KEEP_STRINGS.contains(&parent),
        Value::Bool(b) => !b && FLAGS.contains(&key),
        Value::Number(n) => n.as_f64() == Some(0.0) && zero_omitted(parent, key),
        Value::Object(o) => o.is_empty() && MAPS.contains(&key),
    }
}

/// Prunes inside the value of field `key` (the objects of a list are
/// pruned as objects of that field).
fn omit_empty(key: &str, v: &mut Value) {
    match v {
        Value::Array(items) => {
            for item in items.iter_mut() {
                omit_empty(key, item);
            }
        }
        // A map's own keys are data, not field names.
        Value::Object(map) if !MAPS.contains(&key) => prune_object(key, map),
        _ => {}
    }
}

fn prune_object(name: &str, map: &mut Map<String, Value>) {
    for (k, child) in map.iter_mut() {
        omit_empty(k, child);
    }
    map.retain(|k, child| !omitted(name, k, child));
}

/// The defaults `insertDefaults=true` shows: swarmkit's default service
/// spec merged in where the stored spec has nothing (a whole restart
/// policy, placement, resources, update or rollback config; a stop grace
/// period, DNS config, restart delay or monitor period inside given ones).
pub fn with_defaults(mut spec: api::ServiceSpec) -> api::ServiceSpec {
    const SECOND: i64 = 1_000_000_000;
    let tt = spec.task_template.get_or_insert_with(Default::default);
    if let Some(cs) = tt.container_spec.as_mut() {
        cs.stop_grace_period.get_or_insert(10 * SECOND);
        cs.dns_config.get_or_insert_with(Default::default);
    }
    tt.resources.get_or_insert_with(Default::default);
    let rp = tt
        .restart_policy
        .get_or_insert_with(|| api::TaskSpecRestartPolicy {
            condition: Some(api::TaskSpecRestartPolicyConditionEnum::ANY),
            max_attempts: Some(0),
            ..Default::default()
        });
    rp.delay.get_or_insert(5 * SECOND);
    tt.placement.get_or_insert_with(Default::default);
    let uc = spec
        .update_config
        .get_or_insert_with(|| api::ServiceSpecUpdateConfig {
            parallelism: Some(1),
            failure_action: Some(api::ServiceSpecUpdateConfigFailureActionEnum::PAUSE),
            max_failure_ratio: Some(0.0),
            order: Some(api::ServiceSpecUpdateConfigOrderEnum::STOP_FIRST),
            ..Default::default()
        });
    if uc.monitor.unwrap_or(0) == 0 {
        uc.monitor = Some(5 * SECOND);
    }
    let rc = spec
        .rollback_config
        .get_or_insert_with(|| api::ServiceSpecRollbackConfig {
            parallelism: Some(1),
            failure_action: Some(api::ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            max_failure_ratio: Some(0.0),
            order: Some(api::ServiceSpecRollbackConfigOrderEnum::STOP_FIRST),
            ..Default::default()
        });
    if rc.monitor.unwrap_or(0) == 0 {
        rc.monitor = Some(5 * SECOND);
    }
    spec
}

#[cfg(test)]
#[path = "service_spec_tests.rs"]
mod tests;
