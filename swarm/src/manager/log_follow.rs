//! `docker service logs -f` across a change of leader.
//!
//! Log subscriptions live in the leader's broker, which ends with its term:
//! a follower's stream would end (or, through the CLI, look hung) whenever
//! leadership moves: the hang dockerd's users report (moby issues 38640 and
//! 41733). Here a
//! following subscription is opened again on whichever manager leads next,
//! from just after the last line it passed on, until its client hangs up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::error::Error;
use crate::error::Result;
use crate::exec::LogMessage;
use crate::exec::LogOptions;
use crate::exec::LogSelector;
use crate::transport::client::Channels;

use super::services;
use crate::dispatcher::Local;

/// Lines buffered towards the client.
const BUFFER: usize = 1024;
/// The wait between tries while no manager leads.
const RETRY: Duration = Duration::from_millis(500);

/// Where subscriptions are opened: this manager's own broker while it
/// leads, the leader's otherwise.
#[derive(Clone)]
pub(super) struct LogSource {
    pub(super) slot: watch::Receiver<Option<Arc<Local>>>,
    pub(super) raft: crate::raft::ShoalRaft,
    pub(super) channels: Channels,
}

impl LogSource {
    /// One subscription on the current leader's broker.
    pub(super) async fn open(
        &self,
        selector: LogSelector,
        options: LogOptions,
    ) -> Result<mpsc::Receiver<LogMessage>> {
        let local = self.slot.borrow().clone().filter(|l| l.is_serving());
        if let Some(local) = local {
            return Ok(local.broker().subscribe(selector, options));
        }
        let addr = crate::raft::membership::leader_addr(&self.raft).ok_or_else(Error::no_leader)?;
        services::subscribe_logs(&self.channels, &addr, selector, options).await
    }

    /// A subscription that, with `follow`, outlives the leader's term.
    pub(super) async fn follow(
        self,
        selector: LogSelector,
        options: LogOptions,
    ) -> Result<mpsc::Receiver<LogMessage>> {
        let started = now_nanos();
        let first = self.open(selector.clone(), options).await?;
        if !options.follow {
            return Ok(first);
        }
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(async move {
            let mut lines = first;
            let mut last: Option<i128> = None;
            loop {
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        l = lines.recv() => match l {
                            Some(l) => {
                                last = Some(last.map_or(l.time_nanos, |t| t.max(l.time_nanos)));
                                if tx.send(l).await.is_err() {
                                    return;
                                }
                            }
                            None => break,
                        },
                    }
                }
                // Everything up to the last line passed on (or, without
                // one, up to the first subscription) was that
                // subscription's to send.
                tokio::time::sleep(RETRY).await;
                let again = LogOptions {
                    tail: None,
                    since_nanos: Some(last.map_or(started, |t| t + 1)),
                    follow: true,
                };
                lines = loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        r = self.open(selector.clone(), again) => match r {
                            Ok(r) => break r,
                            Err(_) => tokio::time::sleep(RETRY).await,
                        },
                    }
                };
                tracing::debug!("a log follower's subscription moved to the new leader");
            }
        });
        Ok(rx)
    }
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
