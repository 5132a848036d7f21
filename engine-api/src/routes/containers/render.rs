//! dockerd's JSON for task containers: the `GET /containers/json` summary
//! and the `GET /containers/{id}/json` inspect document.
//!
//! Most of it comes from containerd (see `runtime::view`); what only the
//! task's `ContainerSpec` says (how the command splits into entrypoint and
//! arguments, the user as written, the stop signal) comes from the swarm
//! store when this node can read it.

use std::collections::HashMap;

use runtime::exec::endpoints::Endpoints;
use runtime::view::spec::MountView;
use runtime::view::ContainerInfo;
use serde_json::json;
use serde_json::Value;
use swarm::model::api::TaskSpecContainerSpec;
use time::OffsetDateTime;

/// What dockerd prints for a time that never happened.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Everything beyond the container itself that its JSON shows.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// The task's container spec, when the store has the task.
    pub spec: Option<&'a TaskSpecContainerSpec>,
    /// The image's ID (`sha256:...`), when the image is still there.
    pub image_id: Option<&'a str>,
}

fn time_text(t: Option<OffsetDateTime>) -> String {
    t.map(swarm::model::format_time)
        .unwrap_or_else(|| ZERO_TIME.to_string())
}

/// `Config.Image` and the summary's `Image`: the familiar name with its tag.
pub fn image_name(c: &ContainerInfo) -> String {
    runtime::images::reference::familiar(&c.image).unwrap_or_else(|| c.image.clone())
}

/// dockerd's `Command` column: the path, then each argument, quoted in
/// single quotes when it holds a space.
pub fn command(c: &ContainerInfo) -> String {
    let mut parts = c.spec.args.iter();
    let Some(path) = parts.next() else {
        return String::new();
    };
    let mut out = path.clone();
    for a in parts {
        out.push(' ');
        if a.contains(' ') {
            out.push_str(&format!("'{a}'"));
        } else {
            out.push_str(a);
        }
    }
    out
}

/// `Config.Entrypoint` and `Config.Cmd`. The OCI spec only has the final
/// argv; the task spec says which part the user gave as the command (the
/// entrypoint) and which as arguments. Without it, all of argv is `Cmd`.
fn entrypoint_and_cmd(c: &ContainerInfo, spec: Option<&TaskSpecContainerSpec>) -> (Value, Value) {
    let argv = &c.spec.args;
    let non_empty = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    let command = spec.and_then(|s| non_empty(&s.command));
    let args = spec.and_then(|s| non_empty(&s.args));
    match (command, args) {
        (Some(cmd), args) => (json!(cmd), args.map_or(Value::Null, |a| json!(a))),
        (None, Some(args)) if argv.ends_with(&args) => {
            let entry = &argv[..argv.len() - args.len()];
            let entry = if entry.is_empty() {
                Value::Null
            } else {
                json!(entry)
            };
            (entry, json!(args))
        }
        _ => (Value::Null, json!(argv)),
    }
}

/// `Config.Env`: the process environment without the `HOSTNAME` the
/// runtime adds (dockerd keeps that out of the config too).
fn config_env(c: &ContainerInfo) -> Vec<&String> {
    let own = format!("HOSTNAME={}", c.spec.hostname);
    c.spec.env.iter().filter(|e| **e != own).collect()
}

/// `Config.User`: the task's user, else the process's IDs (none for root).
pub(crate) fn user(c: &ContainerInfo, spec: Option<&TaskSpecContainerSpec>) -> String {
    if let Some(u) = spec.and_then(|s| s.user.clone()) {
        return u;
    }
    match (c.spec.uid, c.spec.gid) {
        (0, 0) => String::new(),
        (u, g) => format!("{u}:{g}"),
    }
}

fn labels(c: &ContainerInfo) -> &HashMap<String, String> {
    &c.labels
}

fn mount_json(m: &MountView) -> Value {
    let mut v = json!({
        "Type": m.kind.as_str(),
        "Source": m.source,
        "Destination": m.destination,
        "Mode": "",
        "RW": m.rw,
        "Propagation": m.propagation,
    });
    if let Some(name) = &m.name {
        v["Name"] = json!(name);
        v["Driver"] = json!("local");
        v["Mode"] = json!("z");
    }
    v
}

fn mounts(c: &ContainerInfo) -> Vec<Value> {
    c.spec.mounts.iter().map(mount_json).collect()
}

/// One entry of `GET /containers/json`.
pub fn summary(c: &ContainerInfo, x: &Extras<'_>, now: OffsetDateTime) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": image_name(c),
        "ImageID": x.image_id.unwrap_or(""),
        "Command": command(c),
        "Created": c.created.map_or(0, |t| t.unix_timestamp()),
        "Ports": [],
        "Labels": labels(c),
        "State": c.state.status.as_str(),
        "Status": c.state.status_text(now),
        "HostConfig": { "NetworkMode": "default" },
        "NetworkSettings": { "Networks": networks(c, Endpoints::read(&c.dir)) },
        "Mounts": mounts(c),
    })
}

/// `NetworkSettings.Networks`: one entry per swarm network the task is
/// on, keyed by network name, as dockerd shows task containers.
fn networks(c: &ContainerInfo, eps: Option<Endpoints>) -> Value {
    let mut out = serde_json::Map::new();
    for e in eps.map(|e| e.endpoints).unwrap_or_default() {
        let (ip, len) = e.address.split_once('/').unwrap_or((&e.address, "0"));
        let mut names = vec![c.name.clone()];
        names.extend(e.aliases.iter().cloned());
        names.push(c.id.chars().take(12).collect());
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        out.insert(
            e.network.clone(),
            json!({
                "IPAMConfig": { "IPv4Address": ip },
                "Links": null,
                "Aliases": if e.aliases.is_empty() { Value::Null } else { json!(e.aliases) },
                "MacAddress": e.mac,
                "DriverOpts": null,
                "NetworkID": e.network_id,
                "EndpointID": e.id,
                "Gateway": e.gateway,
                "IPAddress": ip,
                "IPPrefixLen": len.parse::<u8>().unwrap_or(0),
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DNSNames": names,
            }),
        );
    }
    Value::Object(out)
}

fn state_json(c: &ContainerInfo) -> Value {
    let s = &c.state;
    json!({
        "Status": s.status.as_str(),
        "Running": s.status.is_running(),
        "Paused": s.status == runtime::view::state::Status::Paused,
        "Restarting": false,
        "OOMKilled": false,
        "Dead": false,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": "",
        "StartedAt": time_text(s.started_at),
        "FinishedAt": time_text(s.finished_at),
    })
}

fn config_json(c: &ContainerInfo, spec: Option<&TaskSpecContainerSpec>) -> Value {
    let (entrypoint, cmd) = entrypoint_and_cmd(c, spec);
    let mut v = json!({
        "Hostname": c.spec.hostname,
        "Domainname": "",
        "User": user(c, spec),
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": c.spec.tty,
        "OpenStdin": spec.and_then(|s| s.open_stdin).unwrap_or(false),
        "StdinOnce": false,
        "Env": config_env(c),
        "Cmd": cmd,
        "Image": image_name(c),
        "Volumes": null,
        "WorkingDir": c.spec.cwd,
        "Entrypoint": entrypoint,
        "OnBuild": null,
        "Labels": labels(c),
    });
    if let Some(sig) = spec
        .and_then(|s| s.stop_signal.clone())
        .filter(|s| !s.is_empty())
    {
        v["StopSignal"] = json!(sig);
    }
    v
}

fn host_config_json(c: &ContainerInfo) -> Value {
    let binds: Vec<Value> = c
        .spec
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": m.kind.as_str(),
                "Source": m.name.clone().unwrap_or_else(|| m.source.clone()),
                "Target": m.destination,
                "ReadOnly": !m.rw,
            })
        })
        .collect();
    json!({
        "Binds": null,
        "ContainerIDFile": "",
        "LogConfig": { "Type": "json-file", "Config": {} },
        "NetworkMode": "default",
        "PortBindings": {},
        "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
        "AutoRemove": false,
        "VolumeDriver": "",
        "VolumesFrom": null,
        "ConsoleSize": [0, 0],
        "CapAdd": null,
        "CapDrop": null,
        "CgroupnsMode": "host",
        "Dns": null,
        "DnsOptions": null,
        "DnsSearch": null,
        "ExtraHosts": null,
        "GroupAdd": null,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": null,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": false,
        "PublishAllPorts": false,
        "ReadonlyRootfs": c.spec.read_only,
        "SecurityOpt": null,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 67108864,
        "Runtime": "runc",
        "Isolation": "default",
        "CpuShares": 0,
        "Memory": c.spec.memory,
        "NanoCpus": c.spec.nano_cpus,
        "CgroupParent": "",
        "PidsLimit": if c.spec.pids_limit > 0 { json!(c.spec.pids_limit) } else { Value::Null },
        "Init": null,
        "Mounts": if binds.is_empty() { Value::Null } else { json!(binds) },
    })
}

/// `GET /containers/{id}/json`.
pub fn inspect(c: &ContainerInfo, x: &Extras<'_>) -> Value {
    let (path, args) = match c.spec.args.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let file = |name: &str| c.dir.join(name).display().to_string();
    let eps = Endpoints::read(&c.dir);
    let sandbox = eps.as_ref().map(|e| e.sandbox.display().to_string());
    json!({
        "Id": c.id,
        "Created": time_text(c.created),
        "Path": path,
        "Args": args,
        "State": state_json(c),
        "Image": x.image_id.unwrap_or(""),
        "ResolvConfPath": file("resolv.conf"),
        "HostnamePath": file("hostname"),
        "HostsPath": file("hosts"),
        "LogPath": c.log_path.display().to_string(),
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": "overlayfs",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config_json(c),
        "GraphDriver": { "Data": null, "Name": "overlayfs" },
        "Mounts": mounts(c),
        "Config": config_json(c, x.spec),
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": sandbox.unwrap_or_default(),
            "Ports": {},
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": networks(c, eps),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use runtime::view::spec::SpecView;
    use runtime::view::state::RunState;
    use runtime::view::state::Status;

    use super::*;

    fn container(args: &[&str]) -> ContainerInfo {
        ContainerInfo {
            id: "c".repeat(64),
            name: "web.1.abc".into(),
            image: "docker.io/shoal-test/busybox:latest".into(),
            labels: HashMap::from([("com.docker.swarm.task.id".to_string(), "abc".to_string())]),
            created: Some(OffsetDateTime::UNIX_EPOCH),
            state: RunState {
                status: Status::Running,
                pid: 7,
                exit_code: 0,
                started_at: Some(OffsetDateTime::UNIX_EPOCH),
                finished_at: None,
            },
            spec: SpecView {
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/bin".into(), "HOSTNAME=cccc".into()],
                hostname: "cccc".into(),
                cwd: "/".into(),
                ..Default::default()
            },
            dir: PathBuf::from("/d/c"),
            log_path: PathBuf::from("/d/c/c-json.log"),
            standalone: false,
        }
    }

    #[test]
    fn command_quotes_arguments_with_spaces() {
        let c = container(&["sh", "-c", "echo hi; sleep 1"]);
        assert_eq!(command(&c), "sh -c 'echo hi; sleep 1'");
    }

    #[test]
    fn inspect_splits_args_and_hides_runtime_env() {
        let c = container(&["/entry", "sh", "-c", "x"]);
        let spec = TaskSpecContainerSpec {
            args: Some(vec!["sh".into(), "-c".into(), "x".into()]),
            stop_signal: Some("SIGINT".into()),
            ..Default::default()
        };
        let v = inspect(
            &c,
            &Extras {
                spec: Some(&spec),
                image_id: Some("sha256:1"),
            },
        );
        assert_eq!(v["Path"], "/entry");
        assert_eq!(v["Config"]["Entrypoint"], json!(["/entry"]));
        assert_eq!(v["Config"]["Cmd"], json!(["sh", "-c", "x"]));
        assert_eq!(v["Config"]["Env"], json!(["PATH=/bin"]));
        assert_eq!(v["Config"]["StopSignal"], "SIGINT");
        assert_eq!(v["Config"]["Image"], "shoal-test/busybox:latest");
        assert_eq!(v["Name"], "/web.1.abc");
        assert_eq!(v["State"]["Pid"], 7);
        assert_eq!(v["State"]["FinishedAt"], ZERO_TIME);
        assert_eq!(v["Image"], "sha256:1");
    }

    #[test]
    fn without_the_task_all_of_argv_is_cmd() {
        let c = container(&["sh", "-c", "x"]);
        let v = inspect(&c, &Extras::default());
        assert_eq!(v["Config"]["Entrypoint"], Value::Null);
        assert_eq!(v["Config"]["Cmd"], json!(["sh", "-c", "x"]));
        let s = summary(
            &c,
            &Extras::default(),
            OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(5),
        );
        assert_eq!(s["Status"], "Up 5 seconds");
        assert_eq!(s["Names"], json!(["/web.1.abc"]));
        assert_eq!(s["Command"], "sh -c x");
    }
}
