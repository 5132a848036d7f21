//! From a create request to what runs: the request as the task spec the
//! executor's spec builder reads (one builder for both kinds of
//! container), the bind list as mounts, and the network mode.

use swarm::model::api;
use swarm::model::Task;

use super::error::Error;
use super::error::Result;

/// Where a standalone container's network comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// The node's default bridge (`bridge`, `default`, or none given).
    Bridge,
    /// The node's own network namespace.
    Host,
    /// Loopback only.
    None,
    /// A named network (an attachable swarm network).
    Network(String),
}

impl NetworkMode {
    /// The mode of `HostConfig.NetworkMode`.
    pub fn of(hc: &api::HostConfig) -> Result<NetworkMode> {
        let mode = hc.network_mode.as_deref().unwrap_or("");
        Ok(match mode {
            "" | "default" | "bridge" => NetworkMode::Bridge,
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            m if m.starts_with("container:") => {
                return Err(Error::Unsupported(format!(
                    "network mode \"{m}\" is not supported by this daemon"
                )))
            }
            m => NetworkMode::Network(m.to_string()),
        })
    }

    /// The name `NetworkSettings.Networks` keys this mode by.
    pub fn name(&self) -> &str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
            NetworkMode::Network(n) => n,
        }
    }
}

/// One `-v` entry (`SRC:DST[:OPTS]`) as a mount: a source starting with
/// `/` is a bind, anything else a named volume.
pub fn bind_mount(bind: &str) -> Result<api::Mount> {
    let parts: Vec<&str> = bind.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => {
            return Err(Error::Invalid(format!(
                "invalid volume specification: '{bind}'"
            )))
        }
    };
    if !dst.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid mount config for type \"{}\": invalid mount path: '{dst}' mount path must be absolute",
            if src.starts_with('/') { "bind" } else { "volume" }
        )));
    }
    let read_only = opts.split(',').any(|o| o == "ro");
    let typ = if src.starts_with('/') {
        api::MountTypeEnum::BIND
    } else {
        api::MountTypeEnum::VOLUME
    };
    Ok(api::Mount {
        target: Some(dst.to_string()),
        source: (!src.is_empty()).then(|| src.to_string()),
        typ: Some(typ),
        read_only: Some(read_only),
        volume_options: (typ == api::MountTypeEnum::VOLUME
            && opts.split(',').any(|o| o == "nocopy"))
        .then(|| api::MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The create request as a task the executor's spec builder reads: the
/// container spec and the resource limits; `id` is the container's.
pub fn as_task(body: &api::ContainerCreateBody, id: &str) -> Result<Task> {
    let hc = body.host_config.clone().unwrap_or_default();
    let mut mounts = Vec::new();
    for b in hc.binds.iter().flatten() {
        mounts.push(bind_mount(b)?);
    }
    mounts.extend(hc.mounts.clone().unwrap_or_default());
    for (target, opts) in hc.tmpfs.iter().flatten() {
        mounts.push(api::Mount {
            target: Some(target.clone()),
            typ: Some(api::MountTypeEnum::TMPFS),
            tmpfs_options: (!opts.is_empty()).then(|| api::MountTmpfsOptions {
                options: Some(
                    opts.split(',')
                        .map(|o| match o.split_once('=') {
                            Some((k, v)) => vec![k.to_string(), v.to_string()],
                            None => vec![o.to_string()],
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let spec = api::TaskSpecContainerSpec {
        image: body.image.clone(),
        labels: body.labels.clone(),
        command: body.entrypoint.clone().filter(|e| !e.is_empty()),
        args: body.cmd.clone(),
        hostname: body.hostname.clone(),
        env: body.env.clone(),
        dir: body.working_dir.clone(),
        user: body.user.clone(),
        groups: hc.group_add.clone(),
        tty: body.tty,
        open_stdin: body.open_stdin,
        read_only: hc.readonly_rootfs,
        mounts: (!mounts.is_empty()).then_some(mounts),
        stop_signal: body.stop_signal.clone(),
        stop_grace_period: body
            .stop_timeout
            .filter(|t| *t >= 0)
            .map(|t| t * 1_000_000_000),
        health_check: body.healthcheck.clone(),
        hosts: hc.extra_hosts.clone(),
        oom_score_adj: hc.oom_score_adj,
        init: hc.init,
        sysctls: hc.sysctls.clone(),
        // Every capability for `--privileged`, as the builder reads `ALL`.
        capability_add: if hc.privileged.unwrap_or(false) {
            Some(vec!["ALL".into()])
        } else {
            hc.cap_add.clone()
        },
        capability_drop: hc.cap_drop.clone(),
        ulimits: hc.ulimits.clone(),
        ..Default::default()
    };
    let limits = api::Limit {
        nano_cpus: hc.nano_cpus.filter(|n| *n > 0),
        memory_bytes: hc.memory.filter(|m| *m > 0),
        pids: hc.pids_limit.filter(|p| *p > 0),
    };
    let mut task = Task::default();
    task.api.id = Some(id.to_string());
    task.api.spec = Some(api::TaskSpec {
        container_spec: Some(spec),
        resources: Some(api::TaskSpecResources {
            limits: Some(limits),
            ..Default::default()
        }),
        ..Default::default()
    });
    Ok(task)
}

/// Changes the built spec for what a task never has: the host's network
/// (and with it its hostname), and `--privileged`.
pub fn adjust(spec: &mut oci_spec::runtime::Spec, mode: &NetworkMode, privileged: bool) {
    use oci_spec::runtime::LinuxNamespaceType;
    if let Some(linux) = spec.linux_mut() {
        if *mode == NetworkMode::Host {
            if let Some(ns) = linux.namespaces_mut() {
                ns.retain(|n| {
                    n.typ() != LinuxNamespaceType::Network && n.typ() != LinuxNamespaceType::Uts
                });
            }
        }
        if privileged {
            linux.set_masked_paths(None);
            linux.set_readonly_paths(None);
            if let Some(res) = linux.resources_mut() {
                let mut all = oci_spec::runtime::LinuxDeviceCgroup::default();
                all.set_allow(true);
                all.set_access(Some("rwm".into()));
                res.set_devices(Some(vec![all]));
            }
        }
    }
    if *mode == NetworkMode::Host {
        spec.set_hostname(None);
    }
    if privileged {
        let ro_sys = |m: &oci_spec::runtime::Mount| {
            m.destination() == std::path::Path::new("/sys")
                || m.destination() == std::path::Path::new("/sys/fs/cgroup")
        };
        if let Some(mounts) = spec.mounts_mut() {
            for m in mounts.iter_mut().filter(|m| ro_sys(m)) {
                if let Some(opts) = m.options_mut() {
                    opts.retain(|o| o != "ro");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_become_mounts() {
        let m = bind_mount("/srv/data:/data:ro").unwrap();
        assert_eq!(m.typ, Some(api::MountTypeEnum::BIND));
        assert_eq!(m.source.as_deref(), Some("/srv/data"));
        assert_eq!(m.read_only, Some(true));
        let v = bind_mount("cache:/cache").unwrap();
        assert_eq!(v.typ, Some(api::MountTypeEnum::VOLUME));
        assert_eq!(v.source.as_deref(), Some("cache"));
        assert_eq!(v.read_only, Some(false));
        let anon = bind_mount("/scratch").unwrap();
        assert_eq!(anon.typ, Some(api::MountTypeEnum::VOLUME));
        assert_eq!(anon.source, None);
        assert!(bind_mount("a:relative").is_err());
        assert!(bind_mount("a:/b:ro:x").is_err());
    }

    #[test]
    fn network_modes() {
        let mode = |m: &str| {
            NetworkMode::of(&api::HostConfig {
                network_mode: Some(m.into()),
                ..Default::default()
            })
        };
        assert_eq!(mode("default").unwrap(), NetworkMode::Bridge);
        assert_eq!(mode("host").unwrap(), NetworkMode::Host);
        assert_eq!(mode("none").unwrap(), NetworkMode::None);
        assert_eq!(mode("mynet").unwrap(), NetworkMode::Network("mynet".into()));
        assert!(mode("container:abc").is_err());
    }

    #[test]
    fn entrypoint_and_cmd_map_to_command_and_args() {
        let body = api::ContainerCreateBody {
            image: Some("busybox".into()),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec!["echo hi".into()]),
            stop_timeout: Some(3),
            host_config: Some(api::HostConfig {
                memory: Some(1 << 26),
                binds: Some(vec!["/tmp:/host-tmp".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = as_task(&body, "abc").unwrap();
        let spec = t.api.spec.unwrap();
        let c = spec.container_spec.unwrap();
        assert_eq!(c.command.unwrap(), vec!["sh", "-c"]);
        assert_eq!(c.args.unwrap(), vec!["echo hi"]);
        assert_eq!(c.stop_grace_period, Some(3_000_000_000));
        assert_eq!(c.mounts.unwrap().len(), 1);
        assert_eq!(
            spec.resources.unwrap().limits.unwrap().memory_bytes,
            Some(1 << 26)
        );
    }
}
