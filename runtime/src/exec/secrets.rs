//! Secrets and configs of a task as files: written to a tmpfs mounted in
//! the container's directory (so secret data never reaches the node's disk)
//! and bound read-only at their targets, `/run/secrets/<name>` by default.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;

use nix::mount::MntFlags;
use nix::mount::MsFlags;
use swarm::exec::DepKind;
use swarm::exec::DependencyGetter;
use swarm::exec::ExecError;
use swarm::model::api;
use swarm::model::Task;

/// One file to bind into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepFile {
    /// Where it is on the node (inside the tmpfs).
    pub host: PathBuf,
    /// Where the container sees it.
    pub target: String,
}

/// The two kinds of dependency that become files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Secret,
    Config,
}

impl FileKind {
    fn dep(self) -> DepKind {
        match self {
            FileKind::Secret => DepKind::Secret,
            FileKind::Config => DepKind::Config,
        }
    }
}

struct Wanted {
    kind: FileKind,
    id: String,
    name: String,
    file: Option<(String, String, String, u32)>,
}

fn wanted(task: &Task) -> Vec<Wanted> {
    let Some(cs) = task
        .api
        .spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in cs.secrets.iter().flatten() {
        out.push(Wanted {
            kind: FileKind::Secret,
            id: s.secret_id.clone().unwrap_or_default(),
            name: s.secret_name.clone().unwrap_or_default(),
            file: s.file.as_ref().map(file_of),
        });
    }
    for c in cs.configs.iter().flatten() {
        // Runtime configs (credential specs) are not files.
        let Some(f) = c.file.as_ref() else { continue };
        out.push(Wanted {
            kind: FileKind::Config,
            id: c.config_id.clone().unwrap_or_default(),
            name: c.config_name.clone().unwrap_or_default(),
            file: Some((
                f.name.clone().unwrap_or_default(),
                f.uid.clone().unwrap_or_default(),
                f.gid.clone().unwrap_or_default(),
                f.mode.unwrap_or(0o444),
            )),
        });
    }
    out
}

fn file_of(f: &api::TaskSpecContainerSpecFile) -> (String, String, String, u32) {
    (
        f.name.clone().unwrap_or_default(),
        f.uid.clone().unwrap_or_default(),
        f.gid.clone().unwrap_or_default(),
        f.mode.unwrap_or(0o444),
    )
}

/// Where a dependency appears in the container, as dockerd places it.
fn target(kind: FileKind, file_name: &str, name: &str) -> String {
    let n = if file_name.is_empty() {
        name
    } else {
        file_name
    };
    if n.starts_with('/') {
        return n.to_string();
    }
    match kind {
        FileKind::Secret => format!("/run/secrets/{n}"),
        FileKind::Config => format!("/{n}"),
    }
}

/// The tmpfs of a container directory.
pub fn tmpfs_dir(container_dir: &Path) -> PathBuf {
    container_dir.join("deps")
}

/// Writes the task's secrets and configs into a fresh tmpfs under
/// `container_dir`; returns the files to bind.
pub async fn materialize(
    container_dir: &Path,
    task: &Task,
    deps: &dyn DependencyGetter,
) -> Result<Vec<DepFile>, ExecError> {
    let want = wanted(task);
    if want.is_empty() {
        return Ok(Vec::new());
    }
    let task_id = task.api.id.clone().unwrap_or_default();
    let mut payloads = Vec::with_capacity(want.len());
    for w in &want {
        let data = deps
            .get(&task_id, w.kind.dep(), &w.id)
            .await?
            .ok_or_else(|| {
                let what = match w.kind {
                    FileKind::Secret => "secret",
                    FileKind::Config => "config",
                };
                ExecError::Fatal(format!("{what} {} not found", w.name))
            })?;
        payloads.push(data);
    }
    let root = tmpfs_dir(container_dir);
    std::fs::create_dir_all(&root).map_err(|e| ExecError::Fatal(e.to_string()))?;
    nix::mount::mount(
        Some("tmpfs"),
        &root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=8m"),
    )
    .map_err(|e| ExecError::Fatal(format!("mount secrets tmpfs: {e}")))?;
    let mut out = Vec::with_capacity(want.len());
    for (i, (w, data)) in want.iter().zip(payloads).enumerate() {
        let (fname, uid, gid, mode) = w
            .file
            .clone()
            .unwrap_or_else(|| (String::new(), String::new(), String::new(), 0o444));
        let host = root.join(format!("{i}-{}", w.id));
        let write = || -> std::io::Result<()> {
            std::fs::write(&host, &data)?;
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode & 0o7777))?;
            std::os::unix::fs::chown(&host, uid.parse().ok(), gid.parse().ok())
        };
        write().map_err(|e| ExecError::Fatal(format!("write {}: {e}", w.name)))?;
        out.push(DepFile {
            host,
            target: target(w.kind, &fname, &w.name),
        });
    }
    Ok(out)
}

/// Unmounts the tmpfs of `container_dir`, if mounted.
pub fn release(container_dir: &Path) {
    let root = tmpfs_dir(container_dir);
    if root.exists() {
        let _ = nix::mount::umount2(&root, MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_dockerd() {
        assert_eq!(target(FileKind::Secret, "", "db"), "/run/secrets/db");
        assert_eq!(target(FileKind::Secret, "pw", "db"), "/run/secrets/pw");
        assert_eq!(target(FileKind::Secret, "/etc/pw", "db"), "/etc/pw");
        assert_eq!(target(FileKind::Config, "app.conf", "c"), "/app.conf");
        assert_eq!(
            target(FileKind::Config, "/etc/app.conf", "c"),
            "/etc/app.conf"
        );
    }
}
