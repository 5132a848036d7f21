//! Where a container's files are, seen from the host.
//!
//! A running container is reached through `/proc/<pid>/root`: the walk
//! enters its mount namespace, so its volumes and tmpfs mounts are seen as
//! the container sees them, and writes land where the container will see
//! them. A container that does not run has only its snapshot: it is
//! mounted in a private temp directory for the call (read-only, the upper
//! directory as the top lower one, when only reading) and unmounted when
//! the [`Rootfs`] is dropped.

use std::path::Path;
use std::path::PathBuf;

use containerd_client::types::Mount;
use nix::mount::MntFlags;
use nix::mount::MsFlags;

use super::super::Error;
use super::super::Result;

/// A container's root directory on the host for the span of one call.
pub struct Rootfs {
    path: PathBuf,
    // The temp dir the snapshot is mounted on, when it is.
    mounted: Option<tempfile::TempDir>,
}

impl Rootfs {
    /// The root of the running process `pid`.
    pub fn of_process(pid: u32) -> Rootfs {
        Rootfs {
            path: PathBuf::from(format!("/proc/{pid}/root")),
            mounted: None,
        }
    }

    /// Mounts the snapshot `mounts` under `work`; read-only unless
    /// `writable`. Blocking (a mount syscall).
    pub fn of_snapshot(mounts: &[Mount], work: &Path, writable: bool) -> Result<Rootfs> {
        let io = |op| move |source| Error::Files { op, source };
        let m = mounts.first().ok_or_else(|| Error::Files {
            op: "mount snapshot",
            source: std::io::Error::other("the snapshot has no mounts"),
        })?;
        std::fs::create_dir_all(work).map_err(io("create work dir"))?;
        let dir = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(work)
            .map_err(io("create mount point"))?;
        let (fstype, options) = mount_options(m, writable);
        let mut flags = if m.r#type == "bind" {
            MsFlags::MS_BIND | MsFlags::MS_REC
        } else {
            MsFlags::empty()
        };
        if !writable && m.r#type != "overlay" {
            flags |= MsFlags::MS_RDONLY;
        }
        nix::mount::mount(
            Some(m.source.as_str()),
            dir.path(),
            Some(fstype.as_str()),
            flags,
            Some(options.as_str()),
        )
        .map_err(|e| Error::Files {
            op: "mount snapshot",
            source: std::io::Error::from(e),
        })?;
        Ok(Rootfs {
            path: dir.path().to_path_buf(),
            mounted: Some(dir),
        })
    }

    /// The host path of the container's `/`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.mounted.is_some() {
            if let Err(e) = nix::mount::umount2(&self.path, MntFlags::MNT_DETACH) {
                tracing::warn!(path = %self.path.display(), error = %e, "unmount snapshot");
            }
        }
    }
}

/// The filesystem type and data of a snapshot mount; for a read-only
/// overlay the upper directory becomes the topmost lower one, so the mount
/// never touches the work directory a running container may use.
fn mount_options(m: &Mount, writable: bool) -> (String, String) {
    if m.r#type != "overlay" || writable {
        let opts: Vec<&str> = m
            .options
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(*o, "rbind" | "bind" | "ro" | "rw"))
            .collect();
        return (m.r#type.clone(), opts.join(","));
    }
    // Read-only: every layer, the writable one included, becomes a lower.
    let layers: Vec<String> = crate::exec::files::layer_dirs(std::slice::from_ref(m))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    ("overlay".into(), format!("lowerdir={}", layers.join(":")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay() -> Mount {
        Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                "index=off".into(),
                "workdir=/s/2/work".into(),
                "upperdir=/s/2/fs".into(),
                "lowerdir=/s/1/fs".into(),
            ],
        }
    }

    #[test]
    fn read_only_overlay_stacks_upper_on_lowers() {
        let (t, o) = mount_options(&overlay(), false);
        assert_eq!(
            (t.as_str(), o.as_str()),
            ("overlay", "lowerdir=/s/2/fs:/s/1/fs")
        );
        let (_, o) = mount_options(&overlay(), true);
        assert_eq!(
            o,
            "index=off,workdir=/s/2/work,upperdir=/s/2/fs,lowerdir=/s/1/fs"
        );
    }
}
