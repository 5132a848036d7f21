//! Forgetting the connection-tracking entries of a task that is gone.
//!
//! A VIP or a published port picks a backend once per flow: conntrack keeps
//! the choice. For TCP the flow ends with the task, but a UDP client that
//! keeps one socket (a metrics or log shipper) would keep sending to the
//! removed address for as long as it sends, the entry never timing out.
//! When a task's network is released its entries are deleted in every
//! namespace that balances to it, so the flow's next packet picks a
//! serving task, as IPVS does with `expire_nodest_conn`.
//!
//! The `conntrack` tool (conntrack-tools) does the deleting: `conntrack -D
//! --reply-src ADDR` removes the entries whose replies come from `ADDR`,
//! that is every flow translated to it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;

use crate::error::Result;
use crate::netns;

/// Deletes, in the namespace at `netns` (the caller's with `None`), the
/// entries of flows translated to any of `addrs`. A missing `conntrack`
/// tool or a failed run is logged, not returned: the entries then age out
/// as they would without this.
pub async fn forget_flows_to(netns: Option<PathBuf>, addrs: Vec<Ipv4Addr>) {
    if addrs.is_empty() {
        return;
    }
    let run = move || -> Result<()> {
        for a in &addrs {
            delete_by_reply_source(*a);
        }
        Ok(())
    };
    let done = match &netns {
        Some(path) => netns::run_in(path, run).await,
        // Forked from a thread of its own: never from a runtime worker.
        None => tokio::task::spawn_blocking(run).await.unwrap_or(Ok(())),
    };
    if let Err(e) = done {
        tracing::debug!(error = %e, netns = ?netns, "forgetting flows of a removed task");
    }
}

fn delete_by_reply_source(addr: Ipv4Addr) {
    let out = Command::new("conntrack")
        .args(["-D", "--reply-src", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output();
    match out {
        // It exits 1 when nothing matched ("0 flow entries have been deleted").
        Ok(o) if o.status.success() || o.status.code() == Some(1) => {}
        Ok(o) => tracing::warn!(
            %addr,
            error = %String::from_utf8_lossy(&o.stderr).trim(),
            "conntrack -D failed"
        ),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "conntrack not run (is conntrack-tools installed?)")
        }
    }
}
