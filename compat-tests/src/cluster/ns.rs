//! Commands run inside namespaces that a process of the lab holds, and the
//! holders themselves.
//!
//! Every namespace of a lab is anonymous: it lives as long as a process of
//! the lab is in it, so nothing is named in the host's `/run/netns` and a
//! lab whose owner is killed leaves no namespace behind.

use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use super::cli::Run;
use super::procs;

/// A command that runs `program` in the namespaces of `pid` named by
/// `which` (nsenter flags such as `--net`, `--mount`).
pub fn command_in(pid: u32, which: &[&str], program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("nsenter");
    c.arg("-t")
        .arg(pid.to_string())
        .args(which)
        .arg("--")
        .arg(program);
    c
}

/// Runs `args` in the namespaces of `pid` under `timeout` (killed after
/// `limit`) and returns its result.
pub fn run_in(pid: u32, which: &[&str], limit: Duration, args: &[&str]) -> Run {
    let secs = limit.as_secs().max(1).to_string();
    let out = command_in(pid, which, "timeout")
        .args(["-k", "2", &secs])
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => Run::from_output(o),
        Err(e) => Run {
            code: -1,
            stdout: String::new(),
            stderr: format!("nsenter: {e}"),
        },
    }
}

/// Like [`run_in`] but an error, naming the command and its output, when
/// it fails.
pub fn must_in(pid: u32, which: &[&str], args: &[&str]) -> anyhow::Result<String> {
    run_in(pid, which, Duration::from_secs(20), args).into_result(&args.join(" "))
}

/// Starts a process holding a new network namespace: `cat` on the lab's
/// lifeline, so it ends when the lab's owner does. Returns once the
/// namespace exists (bounded: 10 s).
pub fn spawn_net_holder(lifeline: &Path) -> anyhow::Result<Child> {
    let mut child = Command::new("unshare")
        .args(["--net", "--", "cat"])
        .arg(lifeline)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let ours = std::fs::read_link("/proc/self/ns/net")?;
    let up = procs::try_wait_for(Duration::from_secs(10), || {
        // unshare execs cat once the namespace exists.
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
        (procs::comm(pid)? == "cat" && theirs != ours).then_some(())
    });
    if up.is_none() {
        procs::kill_child(&mut child);
        anyhow::bail!("a network namespace holder did not start within 10s");
    }
    Ok(child)
}
