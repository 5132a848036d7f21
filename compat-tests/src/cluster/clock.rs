//! One node's wall clock moved under its engine, with libfaketime preloaded
//! into the engine alone: its `CLOCK_REALTIME` is shifted by an offset read
//! from a file each second, while the monotonic clock (which never jumps on
//! a real machine) and every other process of the lab keep the real time.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use super::Node;

/// Debian's libfaketime (package `faketime`, which `scripts/deps.sh`
/// installs), the thread-safe build.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Why no node's clock can be moved on this machine, if none can.
pub fn missing() -> Option<String> {
    (!Path::new(LIBFAKETIME).exists())
        .then(|| format!("no {LIBFAKETIME} (bash scripts/deps.sh installs faketime)"))
}

/// The clock of one node's engine, shifted by an offset this handle sets.
#[derive(Debug)]
pub struct NodeClock {
    file: PathBuf,
}

impl NodeClock {
    /// Restarts `node`'s engine (on its data, before it joins anything or
    /// after) with libfaketime preloaded, at the real time (offset +0).
    pub fn install(node: &Node) -> anyhow::Result<NodeClock> {
        if let Some(why) = missing() {
            anyhow::bail!("cannot move a node's clock: {why}");
        }
        let file = node.dir().join("faketime");
        std::fs::write(&file, "+0\n")?;
        let f = file.display().to_string();
        for (k, v) in [
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", f.as_str()),
            // Read the file again every second.
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ] {
            node.set_engine_env(k, v);
        }
        node.restart_engine()
            .with_context(|| format!("restart node{} on a fake clock", node.n()))?;
        Ok(NodeClock { file })
    }

    /// Moves the engine's clock to `offset_s` seconds from the real time
    /// and returns once the engine reports a time within 5 s of that
    /// (`docker system info`'s `SystemTime`), bounded at 20 s.
    pub fn set(&self, node: &Node, offset_s: i64) -> anyhow::Result<()> {
        std::fs::write(&self.file, format!("{offset_s:+}\n"))?;
        super::procs::try_wait_for(std::time::Duration::from_secs(20), || {
            let shown = engine_time(node)?;
            ((shown - now_s() - offset_s).abs() <= 5).then_some(())
        })
        .with_context(|| format!("node{}'s clock never showed {offset_s:+}s", node.n()))
    }
}

/// The real time, in Unix seconds.
fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The time `node`'s engine reports, in Unix seconds.
fn engine_time(node: &Node) -> Option<i64> {
    let r = node.docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    if !r.success() {
        return None;
    }
    unix_seconds(r.stdout.trim())
}

/// A date as `date -d` reads it (RFC 3339, openssl's `notAfter=` form), in
/// Unix seconds.
pub fn unix_seconds(date: &str) -> Option<i64> {
    let out = Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
