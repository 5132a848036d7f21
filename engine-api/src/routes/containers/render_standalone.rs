//! What a standalone container's JSON shows beyond a task container's:
//! its request as given (`Config`, `HostConfig`), its restart count, and
//! its published ports. Applied over the task-container rendering of
//! [`super::render`], which both kinds share.

use runtime::standalone::record::Record;
use runtime::view::ContainerInfo;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;
use swarm::exec::PortProtocol;

fn proto(p: PortProtocol) -> &'static str {
    match p {
        PortProtocol::Tcp => "tcp",
        PortProtocol::Udp => "udp",
        PortProtocol::Sctp => "sctp",
    }
}

/// `NetworkSettings.Ports`: every exposed or bound port, with the host
/// ports published for the current run while it runs.
fn ports(c: &ContainerInfo, r: &Record) -> Value {
    let mut out = Map::new();
    let exposed = r
        .config
        .exposed_ports
        .iter()
        .flat_map(|m| m.keys().cloned())
        .chain(
            r.image_config
                .pointer("/config/ExposedPorts")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.keys().cloned()),
        );
    for p in exposed {
        out.insert(p, Value::Null);
    }
    if c.state.status.is_running() {
        for p in &r.run.published {
            let key = format!("{}/{}", p.target, proto(p.protocol));
            let entry = out.entry(key).or_insert_with(|| json!([]));
            if !entry.is_array() {
                *entry = json!([]);
            }
            if let Some(a) = entry.as_array_mut() {
                a.push(json!({"HostIp": "0.0.0.0", "HostPort": p.published.to_string()}));
            }
        }
    }
    Value::Object(out)
}

/// The summary's `Ports` list.
fn summary_ports(c: &ContainerInfo, r: &Record) -> Value {
    if !c.state.status.is_running() {
        return json!([]);
    }
    let mut list: Vec<Value> = r
        .run
        .published
        .iter()
        .map(|p| {
            json!({
                "IP": "0.0.0.0",
                "PrivatePort": p.target,
                "PublicPort": p.published,
                "Type": proto(p.protocol),
            })
        })
        .collect();
    list.sort_by_key(|v| v["PrivatePort"].as_u64());
    Value::Array(list)
}

fn network_mode(r: &Record) -> String {
    r.config
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// Patches a summary (`GET /containers/json` entry).
pub fn summary(v: &mut Value, c: &ContainerInfo, r: &Record) {
    v["Ports"] = summary_ports(c, r);
    v["HostConfig"] = json!({ "NetworkMode": network_mode(r) });
    if let Some(image) = r.config.image.as_deref() {
        v["Image"] = json!(image);
    }
}

/// `Config.Entrypoint` and `Config.Cmd` as dockerd keeps them: the
/// request's, filled from the image (its `Cmd` only when no entrypoint
/// was given).
fn entrypoint_and_cmd(r: &Record) -> (Value, Value) {
    let image = |k: &str| r.image_config.pointer(&format!("/config/{k}")).cloned();
    let given_entry = r.config.entrypoint.clone().filter(|e| !e.is_empty());
    let entry = match &given_entry {
        Some(e) => json!(e),
        None => image("Entrypoint").unwrap_or(Value::Null),
    };
    let cmd = match (&r.config.cmd, &given_entry) {
        (Some(c), _) if !c.is_empty() => json!(c),
        (_, Some(_)) => Value::Null,
        _ => image("Cmd").unwrap_or(Value::Null),
    };
    (entry, cmd)
}

/// Patches an inspect document (`GET /containers/{id}/json`).
pub fn inspect(v: &mut Value, c: &ContainerInfo, r: &Record) {
    v["RestartCount"] = json!(r.run.restart_count);
    let b = &r.config;
    let (entry, cmd) = entrypoint_and_cmd(r);
    let cfg = &mut v["Config"];
    cfg["AttachStdin"] = json!(b.attach_stdin.unwrap_or(false));
    cfg["AttachStdout"] = json!(b.attach_stdout.unwrap_or(false));
    cfg["AttachStderr"] = json!(b.attach_stderr.unwrap_or(false));
    cfg["Tty"] = json!(b.tty.unwrap_or(false));
    cfg["OpenStdin"] = json!(b.open_stdin.unwrap_or(false));
    cfg["StdinOnce"] = json!(b.stdin_once.unwrap_or(false));
    cfg["Entrypoint"] = entry;
    cfg["Cmd"] = cmd;
    if let Some(image) = b.image.as_deref() {
        cfg["Image"] = json!(image);
    }
    if let Some(user) = b.user.as_deref() {
        cfg["User"] = json!(user);
    }
    if let Some(p) = b.exposed_ports.as_ref().filter(|p| !p.is_empty()) {
        cfg["ExposedPorts"] = json!(p
            .keys()
            .map(|k| (k.clone(), json!({})))
            .collect::<Map<_, _>>());
    }
    if let Some(sig) = b.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        cfg["StopSignal"] = json!(sig);
    }
    if let Some(t) = b.stop_timeout {
        cfg["StopTimeout"] = json!(t);
    }
    if let Some(h) = &b.healthcheck {
        cfg["Healthcheck"] = json!(h);
    }
    let hc = r.host_config();
    let host = &mut v["HostConfig"];
    host["NetworkMode"] = json!(network_mode(r));
    host["Binds"] = json!(hc.binds);
    host["PortBindings"] = json!(hc.port_bindings.unwrap_or_default());
    host["RestartPolicy"] = json!({
        "Name": hc.restart_policy.as_ref().and_then(|p| p.name).map(|n| n.to_string()).filter(|n| !n.is_empty()).unwrap_or_else(|| "no".into()),
        "MaximumRetryCount": hc.restart_policy.as_ref().and_then(|p| p.maximum_retry_count).unwrap_or(0),
    });
    // The limits as recorded: `docker update` changes them in the record
    // (and the running task), not in the spec containerd holds.
    host["Memory"] = json!(hc.memory.unwrap_or(0));
    host["MemorySwap"] = json!(hc.memory_swap.unwrap_or(0));
    host["MemoryReservation"] = json!(hc.memory_reservation.unwrap_or(0));
    host["NanoCpus"] = json!(hc.nano_cpus.unwrap_or(0));
    host["CpuShares"] = json!(hc.cpu_shares.unwrap_or(0));
    host["CpuPeriod"] = json!(hc.cpu_period.unwrap_or(0));
    host["CpuQuota"] = json!(hc.cpu_quota.unwrap_or(0));
    host["CpusetCpus"] = json!(hc.cpuset_cpus.clone().unwrap_or_default());
    host["PidsLimit"] = json!(hc.pids_limit);
    host["AutoRemove"] = json!(hc.auto_remove.unwrap_or(false));
    host["Privileged"] = json!(hc.privileged.unwrap_or(false));
    host["PublishAllPorts"] = json!(hc.publish_all_ports.unwrap_or(false));
    host["CapAdd"] = json!(hc.cap_add);
    host["CapDrop"] = json!(hc.cap_drop);
    host["Init"] = json!(hc.init);
    host["ExtraHosts"] = json!(hc.extra_hosts);
    host["GroupAdd"] = json!(hc.group_add);
    if let Some(cs) = hc.console_size {
        host["ConsoleSize"] = json!(cs);
    }
    host["CgroupnsMode"] = json!("private");
    v["NetworkSettings"]["Ports"] = ports(c, r);
    // The legacy top-level fields carry the default bridge's endpoint.
    if let Some(b) = v["NetworkSettings"]["Networks"].get("bridge").cloned() {
        let ns = &mut v["NetworkSettings"];
        for k in [
            "EndpointID",
            "Gateway",
            "IPAddress",
            "IPPrefixLen",
            "MacAddress",
        ] {
            ns[k] = b[k].clone();
        }
    }
    networks(&mut v["NetworkSettings"]["Networks"], c, r);
    if network_mode(r) == "host" || network_mode(r) == "none" {
        let name = network_mode(r);
        v["NetworkSettings"]["Networks"] = json!({ name: {
            "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
            "DriverOpts": null, "NetworkID": "", "EndpointID": "", "Gateway": "",
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": null,
        }});
    }
}

/// `NetworkSettings.Networks` of a standalone container as dockerd keeps
/// them: `IPAMConfig` as asked for (`--ip`), the networks connected while
/// it was stopped, and no address, gateway or endpoint while it is not
/// running (it holds none then).
fn networks(nets: &mut Value, c: &ContainerInfo, r: &Record) {
    let Some(nets) = nets.as_object_mut() else {
        return;
    };
    let asked = r
        .config
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    let running = c.state.status.is_running();
    if !running {
        // Disconnected since its last run: gone from its networks.
        let mode = match network_mode(r).as_str() {
            "default" => "bridge".to_string(),
            m => m.to_string(),
        };
        nets.retain(|name, _| *name == mode || asked.contains_key(name));
    }
    for (name, entry) in nets.iter_mut() {
        entry["IPAMConfig"] = asked
            .get(name)
            .and_then(|e| e.ipam_config.as_ref())
            .filter(|i| i.ipv4_address.as_deref().is_some_and(|a| !a.is_empty()))
            .map_or(Value::Null, |i| json!({"IPv4Address": i.ipv4_address}));
        if !running {
            blank(entry);
        }
    }
    let builtin = ["bridge", "default", "host", "none"];
    for (name, e) in &asked {
        if builtin.contains(&name.as_str()) || nets.contains_key(name) {
            continue;
        }
        let mut entry = json!({
            "IPAMConfig": null, "Links": null, "Aliases": e.aliases,
            "MacAddress": "", "DriverOpts": null, "NetworkID": "", "EndpointID": "",
            "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null,
        });
        blank(&mut entry);
        nets.insert(name.clone(), entry);
    }
}

/// An endpoint's run-time fields emptied.
fn blank(entry: &mut Value) {
    for k in ["EndpointID", "Gateway", "IPAddress", "MacAddress"] {
        entry[k] = json!("");
    }
    entry["IPPrefixLen"] = json!(0);
    entry["DNSNames"] = Value::Null;
}
