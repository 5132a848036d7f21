//! `docker top`: dockerd runs the host's `ps` with the client's arguments
//! (`-ef` when none) narrowed to the container's processes, and keeps the
//! rows whose `PID` column is one of them, so the answer is the host's
//! `ps` table, titles and all.

use super::stats::CgroupDirs;
use super::ContainerInfo;
use super::Error;
use super::Result;
use crate::Containerd;

/// `GET /containers/{id}/top`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Top {
    /// The `ps` header's columns.
    pub titles: Vec<String>,
    /// One row per process, one cell per title (the last cell keeps the
    /// rest of the line: the command with its spaces).
    pub processes: Vec<Vec<String>>,
}

/// Refuses arguments that would rename another column `PID` (dockerd
/// only lets `pid=...` through, as its row filter looks for `PID`).
pub fn check_args(ps_args: &str) -> Result<()> {
    let tokens: Vec<&str> = ps_args.split_ascii_whitespace().collect();
    // A `key=` must follow whitespace: the first token never counts.
    for (i, t) in tokens.iter().enumerate().skip(1) {
        let Some((key, value)) = t.split_once('=') else {
            continue;
        };
        let value = if value.is_empty() {
            tokens.get(i + 1).copied().unwrap_or("")
        } else {
            value
        };
        if value.starts_with("PID") && key != "pid" {
            return Err(Error::Top(format!(
                "specifying \"{key}={value}\" is not allowed"
            )));
        }
    }
    Ok(())
}

/// The rows of `ps` output that belong to `pids`. A row whose PID is `-`
/// (a thread line of `ps m`) follows the process row before it.
pub fn parse_ps(output: &str, pids: &[u32]) -> Result<Top> {
    let mut lines = output.split('\n');
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::Top("Couldn't find PID field in ps output".into()))?;
    let mut top = Top {
        titles,
        processes: Vec::new(),
    };
    let mut follows_ours = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_col) else {
            continue;
        };
        if *pid == "-" {
            if follows_ours {
                top.processes.push(row(&fields, top.titles.len()));
            }
            continue;
        }
        let n: u32 = pid
            .parse()
            .map_err(|e| Error::Top(format!("Unexpected pid '{pid}': {e}")))?;
        follows_ours = pids.contains(&n);
        if follows_ours {
            top.processes.push(row(&fields, top.titles.len()));
        }
    }
    Ok(top)
}

/// A row's cells: one per title, the overhang joined into the last.
fn row(fields: &[&str], titles: usize) -> Vec<String> {
    let head = titles.saturating_sub(1).min(fields.len());
    let mut out: Vec<String> = fields[..head].iter().map(|s| s.to_string()).collect();
    out.push(fields[head..].join(" "));
    out
}

impl Containerd {
    /// `docker top`: `ps` with `ps_args` over the container's processes.
    pub async fn container_top(&self, c: &ContainerInfo, ps_args: &str) -> Result<Top> {
        let ps_args = if ps_args.is_empty() { "-ef" } else { ps_args };
        check_args(ps_args)?;
        if !c.state.status.is_running() || c.state.pid == 0 {
            return Err(Error::TopNotRunning(c.id.clone()));
        }
        let pids = CgroupDirs::of_pid(c.state.pid)
            .and_then(|d| d.procs())
            .map_err(|_| Error::TopNotRunning(c.id.clone()))?;
        let args: Vec<&str> = ps_args.split(' ').collect();
        let only: Vec<String> = pids.iter().map(u32::to_string).collect();
        let narrowed = format!("-q{}", only.join(","));
        let mut out = run_ps(&args, Some(&narrowed)).await;
        if out.is_err() {
            // Some selections (`f`, ...) do not mix with -q: all of ps, then.
            out = run_ps(&args, None).await;
        }
        parse_ps(&out?, &pids)
    }
}

async fn run_ps(args: &[&str], narrowed: Option<&str>) -> Result<String> {
    let mut cmd = tokio::process::Command::new("ps");
    cmd.args(args).args(narrowed);
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::Top(format!("ps: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").to_string();
        let why = if first.is_empty() {
            format!("{}", out.status)
        } else {
            first
        };
        return Err(Error::Top(format!("ps: {why}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root        4242    4200  0 10:00 ?        00:00:00 sleep 100000
root        4243    4242  0 10:00 ?        00:00:00 sh -c echo hi
root           1       0  0 09:00 ?        00:00:02 /sbin/init
";

    #[test]
    fn keeps_the_containers_rows_with_the_command_whole() {
        let top = parse_ps(PS, &[4242, 4243]).unwrap();
        assert_eq!(
            top.titles,
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        assert_eq!(top.processes.len(), 2);
        assert_eq!(top.processes[0][1], "4242");
        assert_eq!(top.processes[1][7], "sh -c echo hi");
    }

    #[test]
    fn thread_lines_follow_their_process() {
        let ps = "PID TTY TIME CMD\n10 ? 00:00:00 app\n- - 00:00:00 -\n11 ? 00:00:00 other\n- - 00:00:00 -\n";
        let top = parse_ps(ps, &[10]).unwrap();
        assert_eq!(top.processes.len(), 2);
        assert_eq!(top.processes[1][0], "-");
    }

    #[test]
    fn dockerds_refusals() {
        assert_eq!(
            parse_ps("USER TIME\nroot 0:00\n", &[1])
                .unwrap_err()
                .to_string(),
            "Couldn't find PID field in ps output"
        );
        assert!(check_args("-ef").is_ok());
        assert!(check_args("-o pid=PID").is_ok());
        assert_eq!(
            check_args("-o user=PID").unwrap_err().to_string(),
            "specifying \"user=PID\" is not allowed"
        );
    }
}
