//! The OCI runtime spec of a task's container: the task's `ContainerSpec`
//! laid over the image config the way dockerd does it. Pure: every input
//! comes in through [`TaskContext`], so the rules are unit-tested without
//! containerd.

use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;

use oci_spec::runtime::Capability;
use oci_spec::runtime::LinuxCpu;
use oci_spec::runtime::LinuxDeviceCgroup;
use oci_spec::runtime::LinuxMemory;
use oci_spec::runtime::LinuxNamespaceType;
use oci_spec::runtime::LinuxPids;
use oci_spec::runtime::Mount;
use oci_spec::runtime::PosixRlimit;
use oci_spec::runtime::PosixRlimitBuilder;
use oci_spec::runtime::PosixRlimitType;
use oci_spec::runtime::Spec;
use oci_spec::runtime::User;
use swarm::model::api;
use swarm::model::Task;

use super::template;
use super::users::UserDb;
use crate::volumes::task::TaskVolume;
use crate::volumes::NewVolume;

/// Docker's default capability set.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Where `--init`'s binary appears in the container, as under dockerd.
const INIT_PATH: &str = "/sbin/docker-init";

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Files the node writes for each container and binds into it.
#[derive(Debug, Clone)]
pub struct ContainerFiles {
    /// `/etc/hostname`.
    pub hostname: PathBuf,
    /// `/etc/hosts`.
    pub hosts: PathBuf,
    /// `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
}

/// Everything the spec of one task's container depends on.
#[derive(Debug)]
pub struct TaskContext<'a> {
    /// The task (its spec is the service's task template).
    pub task: &'a Task,
    /// This node's ID.
    pub node_id: &'a str,
    /// This node's hostname.
    pub node_hostname: &'a str,
    /// The container's ID (64 hex digits).
    pub container_id: &'a str,
    /// The image config JSON (`{"config": {...}, "rootfs": ...}`).
    pub image_config: &'a serde_json::Value,
    /// Where the per-container files live.
    pub files: &'a ContainerFiles,
    /// The host path of each volume mount's data, by target, made ready
    /// (see [`task_volumes`] and `volumes::task::prepare`).
    pub volumes: &'a HashMap<String, PathBuf>,
    /// `/etc/passwd` and `/etc/group` of the image.
    pub users: &'a UserDb,
    /// Secret and config files to bind read-only.
    pub dep_files: &'a [super::secrets::DepFile],
    /// The node's init binary for `--init` (tini, dockerd's docker-init).
    pub init_binary: Option<&'a Path>,
    /// The network namespace the network driver made for the task; without
    /// one the container gets a new namespace with loopback only.
    pub netns: Option<&'a Path>,
    /// The node's cgroup parent (`/shoal` unless configured).
    pub cgroup_parent: &'a str,
}

impl TaskContext<'_> {
    fn container(&self) -> api::TaskSpecContainerSpec {
        self.task
            .api
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.clone())
            .unwrap_or_default()
    }

    fn image(&self, key: &str) -> Option<&serde_json::Value> {
        self.image_config.get("config").and_then(|c| c.get(key))
    }

    fn image_strings(&self, key: &str) -> Option<Vec<String>> {
        self.image(key).and_then(|v| v.as_array()).map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    }

    fn image_str(&self, key: &str) -> Option<String> {
        self.image(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn template_fields(&self) -> template::Fields {
        template_fields(self.task, self.node_id, self.node_hostname)
    }
}

/// The values placeholders in the task's hostname, env and mount sources
/// refer to, on node `node_id`.
pub fn template_fields(task: &Task, node_id: &str, node_hostname: &str) -> template::Fields {
    let t = &task.api;
    template::Fields {
        service_id: t.service_id.clone().unwrap_or_default(),
        service_name: task.service_name.clone(),
        service_labels: Default::default(),
        node_id: node_id.to_string(),
        node_hostname: node_hostname.to_string(),
        task_id: t.id.clone().unwrap_or_default(),
        task_name: task_name(task),
        task_slot: t
            .slot
            .filter(|s| *s > 0)
            .map(|s| s.to_string())
            .unwrap_or_else(|| node_id.to_string()),
    }
}

/// The task's `type=volume` mounts as the volumes to make for them: the
/// source (placeholders expanded) names the volume, none makes an
/// anonymous one; labels, driver and options come from `VolumeOptions`,
/// as dockerd's executor passes them to its volume service.
pub fn task_volumes(task: &Task, fields: &template::Fields) -> Vec<TaskVolume> {
    let mounts = task
        .api
        .spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .and_then(|c| c.mounts.clone())
        .unwrap_or_default();
    mounts
        .into_iter()
        .filter(|m| m.typ == Some(api::MountTypeEnum::VOLUME))
        .map(|m| {
            let opts = m.volume_options.unwrap_or_default();
            let driver = opts.driver_config.unwrap_or_default();
            let name = m
                .source
                .as_deref()
                .map(|s| template::expand(s, fields))
                .filter(|s| !s.is_empty());
            TaskVolume {
                target: m.target.unwrap_or_default(),
                volume: NewVolume {
                    name,
                    driver: driver.name.unwrap_or_default(),
                    labels: opts.labels,
                    options: driver.options,
                },
                no_copy: opts.no_copy.unwrap_or(false),
            }
        })
        .collect()
}

/// Anonymous volumes for the image's `VOLUME` paths that no mount of the
/// task covers: dockerd gives every container one for each (seeded from
/// the image like any new volume).
pub fn image_volumes(image_config: &serde_json::Value, task: &Task) -> Vec<TaskVolume> {
    let targets: Vec<String> = task
        .api
        .spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .and_then(|c| c.mounts.as_ref())
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m.target.as_deref())
                .map(clean_path)
                .collect()
        })
        .unwrap_or_default();
    let Some(paths) = image_config
        .pointer("/config/Volumes")
        .and_then(|v| v.as_object())
    else {
        return Vec::new();
    };
    let mut out: Vec<TaskVolume> = paths
        .keys()
        .map(|p| clean_path(p))
        .filter(|p| !targets.contains(p))
        .map(|target| TaskVolume {
            target,
            volume: NewVolume::default(),
            no_copy: false,
        })
        .collect();
    out.sort_by(|a, b| a.target.cmp(&b.target));
    out.dedup_by(|a, b| a.target == b.target);
    out
}

/// A container path without a trailing `/` (`/data/` and `/data` are one
/// mount point).
fn clean_path(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    }
}

/// The task's name as dockerd shows it: `web.1`, or `web.<node id>` for
/// global services.
pub fn task_name(task: &Task) -> String {
    match task.api.slot.filter(|s| *s > 0) {
        Some(slot) => format!("{}.{slot}", task.service_name),
        None => format!(
            "{}.{}",
            task.service_name,
            task.api.node_id.as_deref().unwrap_or("")
        ),
    }
}

/// The container's name: `web.1.<task id>`.
pub fn container_name(task: &Task) -> String {
    format!(
        "{}.{}",
        task_name(task),
        task.api.id.as_deref().unwrap_or("")
    )
}

/// The image config's `Labels`, which a container starts from.
pub fn image_labels(image_config: &serde_json::Value) -> HashMap<String, String> {
    image_config
        .pointer("/config/Labels")
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// The labels of the task's container: the image's, the spec's, and the
/// `com.docker.swarm.*` set.
pub fn labels(ctx: &TaskContext<'_>) -> HashMap<String, String> {
    let mut out = image_labels(ctx.image_config);
    out.extend(ctx.container().labels.unwrap_or_default());
    let t = &ctx.task.api;
    out.insert("com.docker.swarm.node.id".into(), ctx.node_id.to_string());
    out.insert(
        "com.docker.swarm.service.id".into(),
        t.service_id.clone().unwrap_or_default(),
    );
    out.insert(
        "com.docker.swarm.service.name".into(),
        ctx.task.service_name.clone(),
    );
    out.insert("com.docker.swarm.task".into(), String::new());
    out.insert(
        "com.docker.swarm.task.id".into(),
        t.id.clone().unwrap_or_default(),
    );
    out.insert(
        "com.docker.swarm.task.name".into(),
        container_name(ctx.task),
    );
    out
}

/// The container's hostname: the spec's (templates expanded) or the first
/// 12 digits of the container ID.
pub fn hostname(ctx: &TaskContext<'_>) -> String {
    match ctx.container().hostname.filter(|h| !h.is_empty()) {
        Some(h) => template::expand(&h, &ctx.template_fields()),
        None => ctx.container_id.chars().take(12).collect(),
    }
}

/// The process arguments: docker's ENTRYPOINT/CMD rules. A spec command
/// replaces the image entrypoint and drops the image CMD.
pub fn args(ctx: &TaskContext<'_>) -> Vec<String> {
    let c = ctx.container();
    let spec_args = c.args.filter(|a| !a.is_empty());
    match c.command.filter(|c| !c.is_empty()) {
        Some(mut cmd) => {
            cmd.extend(spec_args.unwrap_or_default());
            cmd
        }
        None => {
            let mut out = ctx.image_strings("Entrypoint").unwrap_or_default();
            out.extend(
                spec_args
                    .or_else(|| ctx.image_strings("Cmd"))
                    .unwrap_or_default(),
            );
            out
        }
    }
}

/// The environment: the image's, then the spec's (same key wins), PATH if
/// neither set it, and HOSTNAME.
pub fn env(ctx: &TaskContext<'_>, hostname: &str) -> Vec<String> {
    let fields = ctx.template_fields();
    let mut out: Vec<String> = Vec::new();
    let key = |s: &str| s.split('=').next().unwrap_or("").to_string();
    let mut set = |kv: String| {
        let k = key(&kv);
        match out.iter_mut().find(|e| key(e) == k) {
            Some(slot) => *slot = kv,
            None => out.push(kv),
        }
    };
    set(format!("HOSTNAME={hostname}"));
    for e in ctx.image_strings("Env").unwrap_or_default() {
        set(e);
    }
    for e in ctx.container().env.unwrap_or_default() {
        set(template::expand(&e, &fields));
    }
    if !out.iter().any(|e| key(e) == "PATH") {
        out.insert(0, DEFAULT_PATH.into());
    }
    out
}

fn user(ctx: &TaskContext<'_>) -> Result<User, String> {
    let c = ctx.container();
    let raw = c
        .user
        .filter(|u| !u.is_empty())
        .or_else(|| ctx.image_str("User"))
        .unwrap_or_else(|| "0".into());
    let (uid, gid) = ctx.users.resolve(&raw)?;
    let mut groups = Vec::new();
    for g in c.groups.unwrap_or_default() {
        groups.push(ctx.users.group(&g)?);
    }
    let mut u = User::default();
    u.set_uid(uid);
    u.set_gid(gid);
    u.set_additional_gids(if groups.is_empty() {
        None
    } else {
        Some(groups)
    });
    Ok(u)
}

fn capabilities(c: &api::TaskSpecContainerSpec) -> Result<Vec<Capability>, String> {
    let norm = |s: &String| {
        let up = s.to_ascii_uppercase();
        if up == "ALL" || up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        }
    };
    let add: Vec<String> = c.capability_add.iter().flatten().map(norm).collect();
    let drop: Vec<String> = c.capability_drop.iter().flatten().map(norm).collect();
    let mut set: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all_caps()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    }
    set.retain(|c| !drop.contains(c));
    for a in add.into_iter().filter(|c| c != "ALL") {
        if !set.contains(&a) {
            set.push(a);
        }
    }
    set.iter()
        .map(|c| {
            serde_json::from_value::<Capability>(serde_json::Value::String(c.clone()))
                .map_err(|_| format!("unknown capability: \"{c}\""))
        })
        .collect()
}

/// Every capability name runc knows on current kernels (`--cap-add ALL`).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn all_caps() -> Vec<String> {
    ALL_CAPS.iter().map(|s| s.to_string()).collect()
}

fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    use PosixRlimitType::*;
    Some(match name {
        "core" => RlimitCore,
        "cpu" => RlimitCpu,
        "data" => RlimitData,
        "fsize" => RlimitFsize,
        "locks" => RlimitLocks,
        "memlock" => RlimitMemlock,
        "msgqueue" => RlimitMsgqueue,
        "nice" => RlimitNice,
        "nofile" => RlimitNofile,
        "nproc" => RlimitNproc,
        "rss" => RlimitRss,
        "rtprio" => RlimitRtprio,
        "rttime" => RlimitRttime,
        "sigpending" => RlimitSigpending,
        "stack" => RlimitStack,
        _ => return None,
    })
}

fn rlimits(c: &api::TaskSpecContainerSpec) -> Result<Vec<PosixRlimit>, String> {
    let mut out: Vec<PosixRlimit> = Vec::new();
    let mut push = |typ: PosixRlimitType, soft: u64, hard: u64| {
        out.retain(|r| r.typ() != typ);
        if let Ok(r) = PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()
        {
            out.push(r);
        }
    };
    // Containers inherit the daemon's own open-file limit, as under dockerd.
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    push(PosixRlimitType::RlimitNofile, soft, hard);
    for u in c.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        let typ = rlimit_type(&name).ok_or_else(|| format!("invalid ulimit type: {name}"))?;
        push(
            typ,
            u.soft.unwrap_or(0).max(0) as u64,
            u.hard.unwrap_or(0).max(0) as u64,
        );
    }
    Ok(out)
}

fn bind(source: &Path, target: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(target));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// The spec's mounts (bind, volume, tmpfs) as OCI mounts. Volumes were
/// made beforehand: their paths are in `ctx.volumes`.
fn user_mounts(ctx: &TaskContext<'_>) -> Result<Vec<Mount>, String> {
    let fields = ctx.template_fields();
    let mut out = Vec::new();
    for m in ctx.container().mounts.unwrap_or_default() {
        let target = m.target.clone().unwrap_or_default();
        let ro = if m.read_only.unwrap_or(false) {
            "ro"
        } else {
            "rw"
        };
        let source = m
            .source
            .as_deref()
            .map(|s| template::expand(s, &fields))
            .unwrap_or_default();
        match m.typ {
            Some(api::MountTypeEnum::BIND) => {
                if !Path::new(&source).exists() {
                    return Err(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                    ));
                }
                let prop = m
                    .bind_options
                    .as_ref()
                    .and_then(|b| b.propagation)
                    .map(|p| p.to_string())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "rprivate".into());
                out.push(bind(Path::new(&source), &target, &["rbind", ro, &prop]));
            }
            Some(api::MountTypeEnum::VOLUME) => {
                let data = ctx
                    .volumes
                    .get(&target)
                    .ok_or_else(|| format!("no volume was made for the mount at {target}"))?;
                out.push(bind(data, &target, &["rbind", ro, "rprivate"]));
            }
            Some(api::MountTypeEnum::TMPFS) => {
                let mut opts = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
                if let Some(t) = &m.tmpfs_options {
                    if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
                        opts.push(format!("size={size}"));
                    }
                    if let Some(mode) = t.mode.filter(|m| *m > 0) {
                        opts.push(format!("mode={mode:o}"));
                    }
                }
                opts.push(ro.into());
                let mut mt = Mount::default();
                mt.set_destination(PathBuf::from(&target));
                mt.set_typ(Some("tmpfs".into()));
                mt.set_source(Some(PathBuf::from("tmpfs")));
                mt.set_options(Some(opts));
                out.push(mt);
            }
            other => {
                return Err(format!(
                    "mount type {} is not supported on this node",
                    other.map(|t| t.to_string()).unwrap_or_default()
                ))
            }
        }
    }
    for v in image_volumes(ctx.image_config, ctx.task) {
        let data = ctx
            .volumes
            .get(&v.target)
            .ok_or_else(|| format!("no volume was made for the image's volume {}", v.target))?;
        out.push(bind(data, &v.target, &["rbind", "rw", "rprivate"]));
    }
    Ok(out)
}

/// The container's cgroup, `<parent>/<id>` as dockerd's cgroupfs driver
/// makes it. An absolute parent is from the root of each hierarchy; a
/// relative one is below runc's own cgroup, as with dockerd.
pub fn cgroups_path(parent: &str, container_id: &str) -> PathBuf {
    let parent = parent.trim_end_matches('/');
    if parent.is_empty() {
        // "/" given as the parent: the container sits at the root.
        return PathBuf::from(format!("/{container_id}"));
    }
    PathBuf::from(format!("{parent}/{container_id}"))
}

/// The container's OCI spec.
pub fn build(ctx: &TaskContext<'_>) -> Result<Spec, String> {
    let c = ctx.container();
    let host = hostname(ctx);
    let mut spec = Spec::default();
    spec.set_hostname(Some(host.clone()));

    let mut root = oci_spec::runtime::Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(c.read_only.unwrap_or(false)));
    spec.set_root(Some(root));

    let mut process = oci_spec::runtime::Process::default();
    let mut args = args(ctx);
    if args.is_empty() {
        return Err("no command specified".into());
    }
    let init = c.init.unwrap_or(false);
    if init {
        if ctx.init_binary.is_none() {
            return Err("exec: \"docker-init\": executable file not found in $PATH".into());
        }
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    process.set_args(Some(args));
    process.set_env(Some(env(ctx, &host)));
    process.set_cwd(PathBuf::from(
        c.dir
            .clone()
            .filter(|d| !d.is_empty())
            .or_else(|| ctx.image_str("WorkingDir"))
            .unwrap_or_else(|| "/".into()),
    ));
    process.set_user(user(ctx)?);
    process.set_terminal(Some(c.tty.unwrap_or(false)));
    process.set_no_new_privileges(Some(false));
    let caps: std::collections::HashSet<Capability> = capabilities(&c)?.into_iter().collect();
    let mut pc = oci_spec::runtime::LinuxCapabilities::default();
    pc.set_bounding(Some(caps.clone()));
    pc.set_effective(Some(caps.clone()));
    pc.set_permitted(Some(caps));
    pc.set_inheritable(None);
    pc.set_ambient(None);
    process.set_capabilities(Some(pc));
    process.set_rlimits(Some(rlimits(&c)?));
    process.set_oom_score_adj(c.oom_score_adj.map(|v| v as i32));
    spec.set_process(Some(process));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    // cgroup v1 hosts keep the host cgroup namespace (dockerd's default there).
    mounts.retain(|m| m.destination() != Path::new("/sys/fs/cgroup"));
    let mut cg = Mount::default();
    cg.set_destination(PathBuf::from("/sys/fs/cgroup"));
    cg.set_typ(Some("cgroup".into()));
    cg.set_source(Some(PathBuf::from("cgroup")));
    cg.set_options(Some(
        ["ro", "nosuid", "noexec", "nodev"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ));
    mounts.push(cg);
    let user = user_mounts(ctx)?;
    let taken = |t: &str| user.iter().any(|m| m.destination() == Path::new(t));
    for (src, dst) in [
        (&ctx.files.hostname, "/etc/hostname"),
        (&ctx.files.hosts, "/etc/hosts"),
        (&ctx.files.resolv_conf, "/etc/resolv.conf"),
    ] {
        if !taken(dst) {
            mounts.push(bind(src, dst, &["rbind", "rprivate", "rw"]));
        }
    }
    mounts.extend(user);
    for f in ctx.dep_files {
        mounts.push(bind(&f.host, &f.target, &["rbind", "ro", "rprivate"]));
    }
    if let (true, Some(bin)) = (init, ctx.init_binary) {
        mounts.push(bind(bin, INIT_PATH, &["bind", "ro", "rprivate"]));
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    if let Some(ns) = linux.namespaces_mut() {
        ns.retain(|n| n.typ() != LinuxNamespaceType::Cgroup);
        if let Some(path) = ctx.netns {
            for n in ns.iter_mut() {
                if n.typ() == LinuxNamespaceType::Network {
                    n.set_path(Some(path.to_path_buf()));
                }
            }
        }
    }
    linux.set_cgroups_path(Some(cgroups_path(ctx.cgroup_parent, ctx.container_id)));
    let sysctls = c.sysctls.clone().unwrap_or_default();
    linux.set_sysctl(if sysctls.is_empty() {
        None
    } else {
        Some(sysctls)
    });
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".into()));
    res.set_devices(Some(vec![deny_all]));
    let limits = ctx
        .task
        .api
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    if let Some(mem) = limits.memory_bytes.filter(|m| *m > 0) {
        let mut m = LinuxMemory::default();
        m.set_limit(Some(mem));
        res.set_memory(Some(m));
    }
    if let Some(nano) = limits.nano_cpus.filter(|n| *n > 0) {
        // dockerd's --cpus: a 100 ms period and a quota in proportion.
        let period: u64 = 100_000;
        let mut cpu = LinuxCpu::default();
        cpu.set_period(Some(period));
        cpu.set_quota(Some(nano * period as i64 / 1_000_000_000));
        res.set_cpu(Some(cpu));
    }
    if let Some(p) = limits.pids.filter(|p| *p > 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(p);
        res.set_pids(Some(pids));
    }
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    Ok(spec)
}

#[cfg(test)]
mod tests;
