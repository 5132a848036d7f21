//! Named network namespaces: an nsfs bind mount on a file, as `ip netns`
//! makes them, but under the driver's state directory and without shelling
//! out.
//!
//! A namespace is created on a short-lived dedicated thread: `unshare
//! (CLONE_NEWNET)` moves only that thread, the bind mount of
//! `/proc/thread-self/ns/net` keeps the namespace alive after the thread
//! exits, and no runtime worker thread ever leaves the driver's own
//! namespace (sockets and `nft` processes opened from them must stay
//! there). The same holds for [`run_in`], which enters an existing
//! namespace.

use std::fs::File;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::mount::mount;
use nix::mount::umount2;
use nix::mount::MntFlags;
use nix::mount::MsFlags;
use nix::sched::setns;
use nix::sched::unshare;
use nix::sched::CloneFlags;
use nix::sys::statfs::statfs;
use nix::sys::statfs::NSFS_MAGIC;

use crate::error::Error;
use crate::error::Result;

/// Makes `dir` (created if missing) a mount point with shared propagation,
/// as `ip netns` does for `/run/netns`: mount namespaces cloned from this
/// one later (a container runtime's, a service manager's) then see the
/// unmount of a namespace file too, instead of keeping a copy that pins the
/// namespace alive. Idempotent.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    // Tasks' namespaces are made concurrently: two first calls must not
    // both bind the directory onto itself.
    static PREPARING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = PREPARING.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => return Ok(()),
        // Not a mount point yet.
        Err(Errno::EINVAL) => {}
        Err(e) => return Err(Error::sys(format!("make {} shared", dir.display()))(e)),
    }
    mount(
        Some(dir),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(Error::sys(format!("bind {} onto itself", dir.display())))?;
    shared().map_err(Error::sys(format!("make {} shared", dir.display())))
}

/// Whether `path` is a mounted namespace file.
pub fn is_mounted(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Creates a new network namespace bound at `path` (replacing whatever was
/// there) and returns once it exists.
pub async fn create(path: &Path) -> Result<()> {
    remove(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(Error::io(format!("create {}", path.display())))?;
    let target = path.to_path_buf();
    let made = on_thread(move || {
        unshare(CloneFlags::CLONE_NEWNET).map_err(Error::sys("unshare(CLONE_NEWNET)"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(Error::sys(format!("bind netns on {}", target.display())))
    })
    .await;
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Unmounts and deletes a namespace file; absent or unmounted is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("unmount {}", path.display()))(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()))(e)),
    }
}

/// Deletes the links inside the namespace at `path` (if mounted), then the
/// namespace itself: the links, and the veth peers outside, are gone when
/// this returns rather than whenever the kernel destroys the namespace.
pub async fn clear_and_remove(path: &Path) -> Result<()> {
    if is_mounted(path) {
        // The connection (its socket pins the namespace) is closed before
        // the unmount.
        crate::netlink::Netlink::in_netns(path)
            .await?
            .delete_all_links()
            .await?;
    }
    remove(path)
}

/// The names of the files in `dir` (namespace files of tasks or networks);
/// a missing directory has none.
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", dir.display()))(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io(format!("read {}", dir.display())))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Runs `f` on a fresh thread that has entered the namespace at `path`.
/// The thread ends with `f`, so the namespace switch never leaks.
pub async fn run_in<T, F>(path: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let ns = File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
    let shown: PathBuf = path.to_path_buf();
    on_thread(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(Error::sys(format!("setns {}", shown.display())))?;
        f()
    })
    .await
}

/// Runs `f` on a dedicated OS thread and awaits its result without blocking
/// the runtime.
async fn on_thread<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netdrv-netns".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(Error::io("spawn namespace thread"))?;
    rx.await.map_err(|_| {
        Error::io("namespace thread")(std::io::Error::other("thread ended without an answer"))
    })?
}
