//! When a host process started, from `/proc`.
//!
//! containerd 1.6 reports a task's exit time but not its start time, so the
//! start of a running container's init process is read from the kernel:
//! `/proc/<pid>/stat` gives it in clock ticks since boot, `/proc/uptime`
//! gives the time since boot now (both on the boot-time clock, so suspend
//! does not skew them).

use time::Duration;
use time::OffsetDateTime;

/// Linux's `USER_HZ`: the unit of `/proc/<pid>/stat` times on every
/// architecture shoal runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// When process `pid` started, or `None` when it is gone or unreadable.
pub fn start_time(pid: u32) -> Option<OffsetDateTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let now = OffsetDateTime::now_utc();
    let ticks = start_ticks(&stat)?;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let age = up - ticks as f64 / TICKS_PER_SECOND;
    Some(now - Duration::seconds_f64(age.max(0.0)))
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after
/// its closing parenthesis.
fn start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state) onwards: starttime is the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_skip_odd_command_names() {
        let line =
            "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(start_ticks(line), Some(98765));
    }

    #[test]
    fn own_process_started_in_the_past() {
        let t = start_time(std::process::id()).unwrap();
        let now = OffsetDateTime::now_utc();
        assert!(t <= now + Duration::seconds(1), "{t} vs {now}");
        assert!(now - t < Duration::days(1));
    }
}
