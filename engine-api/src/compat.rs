//! API-version differences, in one place: what a request under an older
//! `/v1.NN/` prefix may set, and the shape of answers at that version.
//!
//! dockerd's version gates are few and live in its HTTP routers: requests
//! lose the fields their version did not have (`adjustForAPIVersion` for
//! service specs, swarm init's address pools and data path port, templating
//! of secrets and configs), and `/info` gains or loses the fields that came
//! or went with a version. Services, tasks, nodes and the swarm are written
//! the same at every version (a job's `JobStatus` and a task's
//! `JobIteration` included), so nothing here changes them.

use serde_json::json;
use serde_json::Value;
use swarm::model::api;

use crate::error::ApiError;
use crate::server::version::ApiVersion;

/// Drops from a service spec sent at `v` the fields added after `v`, as
/// dockerd does before it stores the spec. Jobs came with 1.41: under an
/// older prefix a job mode is dropped, and the service is replicated.
pub fn service_spec_in(spec: &mut api::ServiceSpec, v: ApiVersion) {
    if !v.at_least(41) {
        if let Some(m) = spec.mode.as_mut() {
            m.replicated_job = None;
            m.global_job = None;
        }
    }
    let Some(tt) = spec.task_template.as_mut() else {
        return;
    };
    if !v.at_least(40) {
        if let Some(cs) = tt.container_spec.as_mut() {
            cs.sysctls = None;
            if let Some(c) = cs
                .privileges
                .as_mut()
                .and_then(|p| p.credential_spec.as_mut())
            {
                c.config = None;
            }
            for c in cs.configs.iter_mut().flatten() {
                c.runtime = None;
            }
        }
        if let Some(p) = tt.placement.as_mut() {
            p.max_replicas = None;
        }
    }
    if !v.at_least(41) {
        if let Some(cs) = tt.container_spec.as_mut() {
            cs.capability_add = None;
            cs.capability_drop = None;
            cs.ulimits = None;
        }
        if let Some(l) = tt.resources.as_mut().and_then(|r| r.limits.as_mut()) {
            l.pids = None;
        }
    }
    if !v.at_least(44) {
        if let Some(cs) = tt.container_spec.as_mut() {
            if let Some(p) = cs.privileges.as_mut() {
                p.seccomp = None;
                p.app_armor = None;
                p.no_new_privileges = None;
            }
            if let Some(h) = cs.health_check.as_mut() {
                h.start_interval = None;
            }
        }
    }
    if !v.at_least(46) {
        if let Some(cs) = tt.container_spec.as_mut() {
            for m in cs.mounts.iter_mut().flatten() {
                if let Some(t) = m.tmpfs_options.as_mut() {
                    t.options = None;
                }
            }
            cs.oom_score_adj = None;
        }
    }
}

/// Drops from a swarm init request the settings added after `v`.
pub fn swarm_init_in(req: &mut api::SwarmInitRequest, v: ApiVersion) {
    if !v.at_least(39) {
        req.default_addr_pool = None;
        req.subnet_size = None;
    }
    if !v.at_least(40) {
        req.data_path_port = None;
    }
}

/// Templating of secrets (`what` = "secret") and configs came with 1.37;
/// dockerd refuses it under an older prefix.
pub fn templating_in(what: &str, templating: bool, v: ApiVersion) -> Result<(), ApiError> {
    if templating && !v.at_least(37) {
        return Err(ApiError::bad_request(format!(
            "{what} templating is not supported on the specified API version: {v}"
        )));
    }
    Ok(())
}

/// `/info` as written at `v`: the fields dockerd kept for older clients
/// after it dropped them (the bridge netfilter flags, the expected commits,
/// the non-distributable registries, kernel memory accounting), and the
/// oldest versions' own spellings.
pub fn info_out(info: &mut Value, v: ApiVersion) {
    let Some(o) = info.as_object_mut() else {
        return;
    };
    if !v.at_least(50) {
        // Always false for these versions; shoal sets up no bridge of its
        // own that netfilter would see.
        o.insert("BridgeNfIptables".into(), json!(false));
        o.insert("BridgeNfIp6tables".into(), json!(false));
    }
    if !v.at_least(49) {
        for key in ["ContainerdCommit", "RuncCommit", "InitCommit"] {
            if let Some(c) = o.get_mut(key).and_then(Value::as_object_mut) {
                let id = c.get("ID").cloned().unwrap_or_else(|| json!(""));
                c.insert("Expected".into(), id);
            }
        }
    }
    if !v.at_least(47) {
        if let Some(r) = o.get_mut("RegistryConfig").and_then(Value::as_object_mut) {
            // Empty lists, as dockerd 20.10 writes them.
            r.insert("AllowNondistributableArtifactsCIDRs".into(), json!([]));
            r.insert("AllowNondistributableArtifactsHostnames".into(), json!([]));
        }
    }
    if !v.at_least(44) {
        // Removed with 1.44. Kernel memory is always accounted under
        // cgroup v2 (the only hierarchy shoal runs on), as dockerd reports.
        o.insert("KernelMemory".into(), json!(true));
        o.insert("KernelMemoryTCP".into(), json!(true));
    }
    if !v.at_least(39) {
        for key in ["KernelVersion", "OperatingSystem"] {
            if o.get(key).and_then(Value::as_str) == Some("") {
                o.insert(key.into(), json!("<unknown>"));
            }
        }
    }
    if !v.at_least(25) {
        o.insert("ExecutionDriver".into(), json!("<not supported>"));
        // Security options were names only: `name=seccomp,profile=default`
        // is `seccomp`.
        if let Some(opts) = o.get_mut("SecurityOptions").and_then(Value::as_array_mut) {
            for opt in opts.iter_mut() {
                let name = opt
                    .as_str()
                    .and_then(|s| s.split(',').find_map(|kv| kv.strip_prefix("name=")))
                    .map(str::to_string);
                if let Some(name) = name {
                    *opt = json!(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> api::ServiceSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn older_prefixes_drop_newer_spec_fields() {
        let sent = json!({
            "Name": "w",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox", "CapabilityAdd": ["NET_ADMIN"],
                    "Sysctls": {"a": "b"}, "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}]},
                "Placement": {"MaxReplicas": 2},
                "Resources": {"Limits": {"Pids": 5}}
            },
            "Mode": {"ReplicatedJob": {}}
        });
        let mut at41 = spec(sent.clone());
        service_spec_in(&mut at41, ApiVersion(41));
        assert_eq!(at41, spec(sent.clone()), "1.41 has all of these");
        let mut at40 = spec(sent.clone());
        service_spec_in(&mut at40, ApiVersion(40));
        let cs = at40
            .task_template
            .as_ref()
            .unwrap()
            .container_spec
            .as_ref()
            .unwrap();
        assert!(cs.capability_add.is_none() && cs.ulimits.is_none());
        assert!(cs.sysctls.is_some(), "sysctls came with 1.40");
        assert!(at40.mode.as_ref().unwrap().replicated_job.is_none());
        let mut at35 = spec(sent);
        service_spec_in(&mut at35, ApiVersion(35));
        let tt = at35.task_template.as_ref().unwrap();
        assert!(tt.container_spec.as_ref().unwrap().sysctls.is_none());
        assert!(tt.placement.as_ref().unwrap().max_replicas.is_none());
    }

    #[test]
    fn info_at_older_versions() {
        let base = json!({
            "KernelVersion": "", "OperatingSystem": "Debian",
            "ContainerdCommit": {"ID": "c1"},
            "RegistryConfig": {"Mirrors": []},
            "SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"],
        });
        let mut at50 = base.clone();
        info_out(&mut at50, ApiVersion(50));
        assert_eq!(at50, base);
        let mut at41 = base.clone();
        info_out(&mut at41, ApiVersion(41));
        assert_eq!(
            at41["ContainerdCommit"],
            json!({"ID": "c1", "Expected": "c1"})
        );
        assert_eq!(at41["BridgeNfIptables"], false);
        assert_eq!(at41["KernelMemory"], true);
        assert_eq!(
            at41["RegistryConfig"]["AllowNondistributableArtifactsCIDRs"],
            json!([])
        );
        assert_eq!(at41["KernelVersion"], "");
        let mut at24 = base;
        info_out(&mut at24, ApiVersion(24));
        assert_eq!(at24["KernelVersion"], "<unknown>");
        assert_eq!(at24["ExecutionDriver"], "<not supported>");
        assert_eq!(at24["SecurityOptions"], json!(["seccomp", "cgroupns"]));
    }
}
