//! What the Docker view needs from a container's OCI runtime spec (kept as
//! JSON in the containerd record): the process, the hostname, the user's
//! mounts and the resource limits.

use std::path::Path;

use serde_json::Value;

/// The kind of a user mount, as `Mounts[].Type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// A host path bound in.
    Bind,
    /// A named or anonymous local volume.
    Volume,
    /// A tmpfs.
    Tmpfs,
}

impl MountKind {
    /// dockerd's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// One mount the task's spec asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountView {
    /// Its kind.
    pub kind: MountKind,
    /// The volume's name (volumes only).
    pub name: Option<String>,
    /// Host source (empty for tmpfs).
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Writable.
    pub rw: bool,
    /// Bind propagation (binds only).
    pub propagation: String,
}

/// The parts of an OCI spec the container JSON shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecView {
    /// The init process's argv.
    pub args: Vec<String>,
    /// Its environment (`K=V`).
    pub env: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// Its user ID.
    pub uid: u32,
    /// Its group ID.
    pub gid: u32,
    /// Whether it has a terminal.
    pub tty: bool,
    /// The container's hostname.
    pub hostname: String,
    /// Whether the root filesystem is read-only.
    pub read_only: bool,
    /// The mounts the task asked for (not the runtime's defaults nor the
    /// per-container files).
    pub mounts: Vec<MountView>,
    /// Memory limit in bytes (0: none).
    pub memory: i64,
    /// CPU limit in billionths of a CPU (0: none).
    pub nano_cpus: i64,
    /// PIDs limit (0: none).
    pub pids_limit: i64,
}

/// Mount points every container gets from the runtime: not the user's.
const RUNTIME_MOUNTS: &[&str] = &[
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
];

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

impl SpecView {
    /// Reads the spec JSON. `dir` is the container's own directory (its
    /// files are not user mounts) and `volumes_root` where local volumes
    /// live. Unreadable input gives an empty view: the container still
    /// lists.
    pub fn parse(json: &[u8], dir: &Path, volumes_root: &Path) -> SpecView {
        let Ok(v) = serde_json::from_slice::<Value>(json) else {
            return SpecView::default();
        };
        let quota = int(&v, "/linux/resources/cpu/quota");
        let period = int(&v, "/linux/resources/cpu/period");
        SpecView {
            args: strings(v.pointer("/process/args")),
            env: strings(v.pointer("/process/env")),
            cwd: text(&v, "/process/cwd"),
            uid: int(&v, "/process/user/uid") as u32,
            gid: int(&v, "/process/user/gid") as u32,
            tty: v
                .pointer("/process/terminal")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            hostname: text(&v, "/hostname"),
            read_only: v
                .pointer("/root/readonly")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            mounts: user_mounts(&v, dir, volumes_root),
            memory: int(&v, "/linux/resources/memory/limit"),
            nano_cpus: if period > 0 {
                quota * 1_000_000_000 / period
            } else {
                0
            },
            pids_limit: int(&v, "/linux/resources/pids/limit"),
        }
    }
}

fn user_mounts(v: &Value, dir: &Path, volumes_root: &Path) -> Vec<MountView> {
    let Some(all) = v.pointer("/mounts").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in all {
        let destination = text(m, "/destination");
        if RUNTIME_MOUNTS.contains(&destination.as_str()) {
            continue;
        }
        let source = text(m, "/source");
        let options = strings(m.get("options"));
        let rw = !options.iter().any(|o| o == "ro");
        let view = match text(m, "/type").as_str() {
            "tmpfs" => MountView {
                kind: MountKind::Tmpfs,
                name: None,
                source: String::new(),
                destination,
                rw,
                propagation: String::new(),
            },
            "bind" => {
                let src = Path::new(&source);
                if src.starts_with(dir) {
                    continue;
                }
                let volume = src
                    .strip_prefix(volumes_root)
                    .ok()
                    .and_then(|rest| rest.components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned());
                match volume {
                    Some(name) => MountView {
                        kind: MountKind::Volume,
                        name: Some(name),
                        source,
                        destination,
                        rw,
                        propagation: String::new(),
                    },
                    None => MountView {
                        kind: MountKind::Bind,
                        name: None,
                        source,
                        destination,
                        rw,
                        propagation: options
                            .iter()
                            .find(|o| {
                                o.ends_with("private")
                                    || o.ends_with("shared")
                                    || o.ends_with("slave")
                            })
                            .cloned()
                            .unwrap_or_default(),
                    },
                }
            }
            _ => continue,
        };
        out.push(view);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_process_and_user_mounts() {
        let spec = serde_json::json!({
            "hostname": "abc",
            "root": {"path": "rootfs", "readonly": false},
            "process": {
                "args": ["sh", "-c", "echo hi"],
                "env": ["PATH=/bin", "HOSTNAME=abc"],
                "cwd": "/",
                "user": {"uid": 1, "gid": 2},
                "terminal": false
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/etc/hosts", "type": "bind", "source": "/d/c1/hosts", "options": ["rbind", "rprivate", "rw"]},
                {"destination": "/data", "type": "bind", "source": "/v/vol1/_data", "options": ["rbind", "rw", "rprivate"]},
                {"destination": "/host", "type": "bind", "source": "/srv", "options": ["rbind", "ro", "rslave"]},
                {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "rw"]}
            ],
            "linux": {"resources": {"memory": {"limit": 1048576}, "cpu": {"quota": 50000, "period": 100000}}}
        });
        let v = SpecView::parse(
            &serde_json::to_vec(&spec).unwrap(),
            Path::new("/d/c1"),
            Path::new("/v"),
        );
        assert_eq!(v.args, vec!["sh", "-c", "echo hi"]);
        assert_eq!((v.uid, v.gid), (1, 2));
        assert_eq!(v.hostname, "abc");
        assert_eq!(v.memory, 1048576);
        assert_eq!(v.nano_cpus, 500_000_000);
        let kinds: Vec<_> = v
            .mounts
            .iter()
            .map(|m| (m.kind, m.destination.as_str(), m.rw))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (MountKind::Volume, "/data", true),
                (MountKind::Bind, "/host", false),
                (MountKind::Tmpfs, "/t", true)
            ]
        );
        assert_eq!(v.mounts[0].name.as_deref(), Some("vol1"));
        assert_eq!(v.mounts[1].propagation, "rslave");
    }

    #[test]
    fn garbage_gives_an_empty_view() {
        assert_eq!(
            SpecView::parse(b"nope", Path::new("/d"), Path::new("/v")),
            SpecView::default()
        );
    }
}
