//! A container's run state as dockerd reports it: the `State.Status` word,
//! and the `Status` text of `docker ps` ("Up 5 seconds", "Exited (137) 3
//! seconds ago"). Pure: the clock comes in as an argument.

use time::OffsetDateTime;

/// `State.Status` of a task container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The container exists but its process never started (or is gone).
    Created,
    /// The process runs.
    Running,
    /// The process is paused.
    Paused,
    /// The process ended.
    Exited,
}

impl Status {
    /// dockerd's word for the state (`running`, `exited`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited => "exited",
        }
    }

    /// Whether dockerd counts the container as running (a paused one is).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// What a container's process is doing, with the times dockerd reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// The state word.
    pub status: Status,
    /// Host PID of the init process while it runs, else 0.
    pub pid: u32,
    /// Exit code once exited, else 0.
    pub exit_code: i64,
    /// When the process started, if it ever did.
    pub started_at: Option<OffsetDateTime>,
    /// When the process ended, if it did.
    pub finished_at: Option<OffsetDateTime>,
}

/// Go's `units.HumanDuration`: the coarse, human reading of an age.
pub fn human_duration(d: time::Duration) -> String {
    let seconds = d.whole_seconds();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = d.whole_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_seconds_f64() / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.whole_hours() / 24 / 365)
}

impl RunState {
    /// The `Status` column of `docker ps` at time `now`.
    pub fn status_text(&self, now: OffsetDateTime) -> String {
        let since = |t: Option<OffsetDateTime>| human_duration(now - t.unwrap_or(now));
        match self.status {
            Status::Running => format!("Up {}", since(self.started_at)),
            Status::Paused => format!("Up {} (Paused)", since(self.started_at)),
            Status::Created => "Created".into(),
            Status::Exited if self.finished_at.is_none() => String::new(),
            Status::Exited => format!(
                "Exited ({}) {} ago",
                self.exit_code,
                since(self.finished_at)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    #[test]
    fn durations_read_like_go_units() {
        assert_eq!(
            human_duration(Duration::milliseconds(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::seconds(1)), "1 second");
        assert_eq!(human_duration(Duration::seconds(59)), "59 seconds");
        assert_eq!(human_duration(Duration::seconds(60)), "About a minute");
        assert_eq!(human_duration(Duration::minutes(59)), "59 minutes");
        assert_eq!(human_duration(Duration::minutes(89)), "About an hour");
        assert_eq!(human_duration(Duration::minutes(91)), "2 hours");
        assert_eq!(human_duration(Duration::hours(47)), "47 hours");
        assert_eq!(human_duration(Duration::days(3)), "3 days");
        assert_eq!(human_duration(Duration::days(20)), "2 weeks");
        assert_eq!(human_duration(Duration::days(90)), "3 months");
        assert_eq!(human_duration(Duration::days(800)), "2 years");
    }

    #[test]
    fn status_texts() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let up = RunState {
            status: Status::Running,
            pid: 42,
            exit_code: 0,
            started_at: Some(now - Duration::seconds(5)),
            finished_at: None,
        };
        assert_eq!(up.status_text(now), "Up 5 seconds");
        let exited = RunState {
            status: Status::Exited,
            pid: 0,
            exit_code: 137,
            started_at: Some(now - Duration::seconds(10)),
            finished_at: Some(now - Duration::seconds(3)),
        };
        assert_eq!(exited.status_text(now), "Exited (137) 3 seconds ago");
        let created = RunState {
            status: Status::Created,
            ..exited
        };
        assert_eq!(created.status_text(now), "Created");
    }
}
