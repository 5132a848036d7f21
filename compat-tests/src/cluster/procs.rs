//! Processes the harness starts and ends: by PID only, each wait bounded.

use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::time::Duration;
use std::time::Instant;

use nix::sys::signal::kill;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs`
/// seconds; panics naming `what` when time runs out.
#[track_caller]
pub fn wait_for<T>(secs: u64, what: &str, f: impl FnMut() -> Option<T>) -> T {
    match try_wait_for(Duration::from_secs(secs), f) {
        Some(v) => v,
        None => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`;
/// `None` when time runs out.
pub fn try_wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `sig` to `pid`; a process already gone is not an error.
pub fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// Whether `pid` still exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_field(&stat, 0).is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// The kernel's unit of `/proc/PID/stat` times (`USER_HZ`, 100 on Linux
/// whatever the kernel's own tick).
pub const USER_HZ: u64 = 100;

/// User plus system CPU time of `pid` in [`USER_HZ`] ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let user: u64 = stat_field(&stat, 11)?.parse().ok()?;
    let system: u64 = stat_field(&stat, 12)?.parse().ok()?;
    Some(user + system)
}

/// Field `n` after the command name of a `/proc/PID/stat` line (0 = state,
/// 1 = parent PID): the name may hold spaces and parentheses, so fields are
/// counted from its last `)`.
fn stat_field(stat: &str, n: usize) -> Option<String> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n).map(str::to_string)
}

/// The PIDs whose parent is `parent` (this kernel has no
/// `/proc/PID/task/TID/children`, so all of `/proc` is read).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_field(&s, 1))
                .and_then(|p| p.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// The PIDs (as the host sees them) of every process in the PID namespace
/// that `member` belongs to, `member` included.
pub fn pids_in_pid_ns_of(member: u32) -> Vec<u32> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{member}/ns/pid")) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == ns))
        .collect()
}

/// The command name of `pid` (`/proc/PID/comm`), if it exists.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Resident memory of `pid` in bytes (`VmRSS`), if it exists.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Kills a child this process started with SIGKILL and reaps it (bounded:
/// a SIGKILLed process ends at once unless stuck in the kernel).
pub fn kill_child(c: &mut Child) {
    signal(c.id(), Signal::SIGKILL);
    reap(c, Duration::from_secs(10));
}

/// Waits up to `limit` for a child this process started to end; true when
/// it did.
pub fn reap(c: &mut Child, limit: Duration) -> bool {
    try_wait_for(limit, || match c.try_wait() {
        Ok(Some(_)) | Err(_) => Some(()),
        Ok(None) => None,
    })
    .is_some()
}

/// Stops a child this process started: SIGTERM, then SIGKILL after
/// `grace`.
pub fn terminate(mut c: Child, grace: Duration) {
    signal(c.id(), Signal::SIGTERM);
    if !reap(&mut c, grace) {
        kill_child(&mut c);
    }
}

/// Whether `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| is_executable(&d.join(program))))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs a short command to its end and returns whether it succeeded plus
/// its combined output, for setup steps whose failure is reported.
pub fn run_quiet(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let stat = "42 (a (b) c) S 7 42 42 0";
        assert_eq!(stat_field(stat, 0).as_deref(), Some("S"));
        assert_eq!(stat_field(stat, 1).as_deref(), Some("7"));
    }

    #[test]
    fn this_process_is_alive_and_has_rss() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(rss_bytes(me).unwrap() > 0);
    }
}
