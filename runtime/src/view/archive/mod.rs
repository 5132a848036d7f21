//! `docker cp` and `docker container export` on task containers: the
//! stat of a path (`HEAD /containers/{id}/archive`), a path as a tar
//! (`GET`), a tar extracted into a directory (`PUT`), and the whole root
//! filesystem as a tar (`GET /containers/{id}/export`).
//!
//! Paths are resolved as dockerd does: relative to `/`, every symlink on
//! the way followed inside the container ([`scope`]), the last element
//! followed only when the path ends in `/` or `/.`. Tars are built in an
//! unnamed temp file on a blocking thread and handed back rewound.

pub mod rootfs;
pub mod scope;
pub mod stat;

use std::io::Seek;
use std::path::Path;

pub use stat::PathStat;

use self::rootfs::Rootfs;
use super::ContainerInfo;
use super::Error;
use super::Result;
use crate::Containerd;

/// A path in a container as a `docker cp` request names it.
#[derive(Debug, Clone)]
pub struct CopyPath {
    /// The container as the client named it (for error texts).
    pub container: String,
    /// The path as the client gave it.
    pub path: String,
}

impl CopyPath {
    fn not_found(&self) -> Error {
        Error::NoSuchPath {
            path: self.path.clone(),
            container: self.container.clone(),
        }
    }

    /// Whether the last element is to be followed (`/` or `/.` at the end).
    fn follow_last(&self) -> bool {
        self.path.ends_with('/') || self.path.ends_with("/.") || self.path == "."
    }

    /// The name entries are rebased on: Go's `filepath.Base` of the
    /// absolute path, `.` kept for a path ending in `/.`.
    fn base(&self) -> String {
        if self.path.ends_with("/.") || self.path == "." {
            return ".".into();
        }
        let trimmed = self.path.trim_end_matches('/');
        match trimmed.rsplit_once('/') {
            _ if trimmed.is_empty() => "/".into(),
            Some((_, last)) => last.to_string(),
            None => trimmed.to_string(),
        }
    }
}

fn files(op: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Files { op, source }
}

fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    r.map_err(|e| Error::Files {
        op: "copy",
        source: std::io::Error::other(e.to_string()),
    })?
}

impl Containerd {
    /// The container's files: its process's root while it runs, else its
    /// snapshot mounted for the call.
    async fn rootfs(&self, c: &ContainerInfo, writable: bool) -> Result<Rootfs> {
        if c.state.status.is_running() && c.state.pid > 0 {
            return Ok(Rootfs::of_process(c.state.pid));
        }
        self.snapshot_rootfs(c, writable).await
    }

    async fn snapshot_rootfs(&self, c: &ContainerInfo, writable: bool) -> Result<Rootfs> {
        let mounts = self.snapshot_mounts(&c.id).await?;
        let work = self.work_dir().to_path_buf();
        joined(
            tokio::task::spawn_blocking(move || Rootfs::of_snapshot(&mounts, &work, writable))
                .await,
        )
    }

    /// `HEAD /containers/{id}/archive?path=`.
    pub async fn container_stat_path(&self, c: &ContainerInfo, p: &CopyPath) -> Result<PathStat> {
        let root = self.rootfs(c, false).await?;
        let p = p.clone();
        joined(tokio::task::spawn_blocking(move || stat_in(root.path(), &p).map(|(s, _)| s)).await)
    }

    /// `GET /containers/{id}/archive?path=`: the stat and the tar.
    pub async fn container_archive(
        &self,
        c: &ContainerInfo,
        p: &CopyPath,
    ) -> Result<(PathStat, std::fs::File)> {
        let root = self.rootfs(c, false).await?;
        let p = p.clone();
        let work = self.work_dir().to_path_buf();
        joined(
            tokio::task::spawn_blocking(move || {
                let (stat, host) = stat_in(root.path(), &p)?;
                let out = tempfile::tempfile_in(&work).map_err(files("create temp file"))?;
                let mut tar = tar::Builder::new(out);
                tar.follow_symlinks(false);
                append(&mut tar, &p.base(), &host)?;
                let mut out = tar.into_inner().map_err(files("write archive"))?;
                out.rewind().map_err(files("write archive"))?;
                Ok((stat, out))
            })
            .await,
        )
    }

    /// `PUT /containers/{id}/archive?path=`: extracts the tar in `body`
    /// into the directory `p` names. Owners in the tar are kept only with
    /// `copy_uid_gid`; otherwise files belong to root, as with dockerd.
    pub async fn container_extract<S, E>(
        &self,
        c: &ContainerInfo,
        p: &CopyPath,
        body: S,
        copy_uid_gid: bool,
    ) -> Result<()>
    where
        S: futures::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let body = self.spool_raw(body).await?;
        let root = self.rootfs(c, true).await?;
        let p = p.clone();
        joined(
            tokio::task::spawn_blocking(move || {
                let dir = scope::resolve(root.path(), &p.path, true).map_err(files("resolve"))?;
                let meta = std::fs::metadata(&dir).map_err(|_| p.not_found())?;
                if !meta.is_dir() {
                    return Err(Error::NotADirectory);
                }
                extract(body, &dir, copy_uid_gid)
            })
            .await,
        )
    }

    /// `GET /containers/{id}/export`: the root filesystem (its snapshot,
    /// without volumes) as a tar.
    pub async fn container_export(&self, c: &ContainerInfo) -> Result<std::fs::File> {
        let root = self.snapshot_rootfs(c, false).await?;
        let work = self.work_dir().to_path_buf();
        joined(
            tokio::task::spawn_blocking(move || {
                let out = tempfile::tempfile_in(&work).map_err(files("create temp file"))?;
                let mut tar = tar::Builder::new(out);
                tar.follow_symlinks(false);
                let mut names: Vec<_> = std::fs::read_dir(root.path())
                    .map_err(files("read rootfs"))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .collect();
                names.sort();
                for n in names {
                    let name = n.to_string_lossy().to_string();
                    append(&mut tar, &name, &root.path().join(&n))?;
                }
                let mut out = tar.into_inner().map_err(files("write archive"))?;
                out.rewind().map_err(files("write archive"))?;
                Ok(out)
            })
            .await,
        )
    }
}

/// The stat of `p` under `root` and its host path (last element not
/// followed unless the path asks for it).
fn stat_in(root: &Path, p: &CopyPath) -> Result<(PathStat, std::path::PathBuf)> {
    let host = scope::resolve(root, &p.path, p.follow_last()).map_err(|_| p.not_found())?;
    let meta = std::fs::symlink_metadata(&host).map_err(|_| p.not_found())?;
    let link = if meta.file_type().is_symlink() {
        let target = scope::resolve(root, &p.path, true).map_err(|_| p.not_found())?;
        scope::container_path(root, &target)
    } else {
        String::new()
    };
    Ok((PathStat::new(&p.base(), &meta, link), host))
}

fn append(tar: &mut tar::Builder<std::fs::File>, name: &str, host: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(host).map_err(files("read file"))?;
    if meta.is_dir() {
        tar.append_dir_all(name, host)
            .map_err(files("write archive"))
    } else {
        tar.append_path_with_name(host, name)
            .map_err(files("write archive"))
    }
}

fn extract(body: std::fs::File, dir: &Path, copy_uid_gid: bool) -> Result<()> {
    let mut ar = tar::Archive::new(body);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(copy_uid_gid);
    ar.set_overwrite(true);
    // Entry by entry: unpacking the whole archive would canonicalize the
    // destination, which for `/proc/<pid>/root/...` leaves the container.
    for entry in ar.entries().map_err(files("read archive"))? {
        let mut entry = entry.map_err(files("read archive"))?;
        entry.unpack_in(dir).map_err(files("extract archive"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> CopyPath {
        CopyPath {
            container: "c".into(),
            path: path.into(),
        }
    }

    #[test]
    fn bases_and_following() {
        assert_eq!(p("/etc/hello").base(), "hello");
        assert_eq!(p("/etc/").base(), "etc");
        assert_eq!(p("/etc/.").base(), ".");
        assert_eq!(p("/").base(), "/");
        assert_eq!(p("rel").base(), "rel");
        assert!(!p("/etc/link").follow_last());
        assert!(p("/etc/link/").follow_last());
    }

    #[test]
    fn stat_and_tar_of_a_file_and_missing_paths() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), b"abc").unwrap();
        std::os::unix::fs::symlink("/d/f", t.path().join("l")).unwrap();
        let (s, host) = stat_in(t.path(), &p("/d/f")).unwrap();
        assert_eq!((s.name.as_str(), s.size, s.mode), ("f", 3, 0o644));
        assert_eq!(host, t.path().join("d/f"));
        let (s, _) = stat_in(t.path(), &p("/l")).unwrap();
        assert_eq!(s.link_target, "/d/f");
        let e = stat_in(t.path(), &p("/nope")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Could not find the file /nope in container c"
        );

        let out = tempfile::tempfile().unwrap();
        let mut tar = tar::Builder::new(out);
        append(&mut tar, "d", &t.path().join("d")).unwrap();
        let mut out = tar.into_inner().unwrap();
        out.rewind().unwrap();
        let dest = tempfile::tempdir().unwrap();
        extract(out, dest.path(), false).unwrap();
        assert_eq!(std::fs::read(dest.path().join("d/f")).unwrap(), b"abc");
    }
}
