//! The PID file: written at start, removed at exit; a start is refused
//! while the process it names still runs, as dockerd refuses.

use std::path::Path;
use std::path::PathBuf;

use anyhow::Context;

/// A written PID file, removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's PID to `path`, unless the file names another
    /// running process of the same program (a file left by a process that
    /// is gone, or whose PID another program has since, is taken over).
    pub fn create(path: &Path) -> anyhow::Result<PidFile> {
        if let Some(pid) = read_pid(path) {
            if pid != std::process::id() && running(pid) && same_program(pid) {
                anyhow::bail!(
                    "pid file found, ensure shoald is not running or delete {}",
                    path.display()
                );
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(path, format!("{}", std::process::id()))
            .with_context(|| format!("write {}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a daemon that took the file over keeps it.
        if read_pid(&self.path) == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `pid` is a live process (a zombie is a daemon that is gone but
/// not yet reaped by its parent).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesized command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

/// Whether `pid` runs the program this process runs (by command name).
fn same_program(pid: u32) -> bool {
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    matches!((comm(&pid.to_string()), comm("self")), (Some(a), Some(b)) if a == b)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_pid_refuses_and_a_stale_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/shoald.pid");
        {
            let _p = PidFile::create(&path).unwrap();
            assert_eq!(read_pid(&path), Some(std::process::id()));
        }
        assert!(!path.exists(), "removed when dropped");

        // PID 1 runs, but another program: its PID was reused.
        std::fs::write(&path, "1").unwrap();
        drop(PidFile::create(&path).unwrap());

        // A running process of this very program holds the file.
        let mut twin = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "pidfile::tests::twin", "--ignored"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(&path, twin.id().to_string()).unwrap();
        let held = PidFile::create(&path);
        let _ = twin.kill();
        let _ = twin.wait();
        let e = held.unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "pid file found, ensure shoald is not running or delete {}",
                path.display()
            )
        );

        // No process has a PID this large (pid_max is at most 2^22).
        std::fs::write(&path, "99999999").unwrap();
        let _p = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id()));
    }

    /// The process the test above runs as a twin of itself.
    #[test]
    #[ignore = "run by a_running_pid_refuses_and_a_stale_one_is_taken_over"]
    fn twin() {
        std::thread::sleep(std::time::Duration::from_secs(20));
    }
}
