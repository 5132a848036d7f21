//! An in-process cluster of managers for deterministic distributed tests.
//!
//! [`TestCluster::new(n)`](TestCluster::new) starts `n` real raft nodes
//! (`raft::start`: the redb log with fsync and sealed snapshots in a temp
//! directory, the store as state machine), each with its own [`Store`]
//! whose writes go through `raft::RaftProposer`, exactly as a manager's do.
//! Node 1 bootstraps the cluster and the others join as voters through
//! `raft::membership::add_voter`. Nodes talk through one [`Router`]: raft
//! RPCs are calls on the target's `Raft` handle, and a follower's writes
//! reach the leader's `Store::propose_checked` through [`SimForwarder`],
//! both subject to the same [`Faults`]: [`isolate`](TestCluster::isolate)
//! a node, [`partition`](TestCluster::partition) the cluster,
//! [`heal`](TestCluster::heal), lose a seeded fraction of messages or add
//! latency ([`Router::faults`]). [`stop`](TestCluster::stop) and
//! [`restart`](TestCluster::restart) keep a node's directory, so a restart
//! shows what was durable.
//!
//! # Writing a distributed test
//!
//! Run it on tokio's paused clock, `#[tokio::test(start_paused = true)]`:
//! openraft's timers, the store's timeouts and the harness's waits all use
//! tokio time, which jumps ahead whenever every task is idle, so an
//! election that takes a second of cluster time takes milliseconds, and the
//! outcome does not depend on the machine's load. Then:
//!
//! 1. Build the cluster: `let mut c = TestCluster::new(3).await?;` (or
//!    [`TestCluster::with_settings`] for a small snapshot interval). It
//!    returns with a leader established and every node in sync.
//! 2. Act as a user would, through a node's store: `c.node(2).store()` and
//!    the `controlapi` functions, or `Store::update` directly.
//! 3. Inject a fault and wait for its consequence with a bound, never a
//!    fixed sleep: [`wait_leader`](TestCluster::wait_leader),
//!    [`wait_new_leader`](TestCluster::wait_new_leader),
//!    [`wait_synced`](TestCluster::wait_synced), or your own condition with
//!    [`wait_for`](TestCluster::wait_for), which looks again on every
//!    raft metrics change. A loop that retries a failing write must wait
//!    between attempts (as a client would): on a paused clock, time only
//!    moves while every task waits, so a busy loop would starve the
//!    election it waits for.
//! 4. Heal, wait until synced, and assert on every node's store what a user
//!    would check (which objects exist, which errors the calls returned).
//!
//! A paused clock needs tokio's single-threaded runtime, where a spawned
//! task runs only when the others wait. A race that needs two threads
//! really running at once (t51) uses `flavor = "multi_thread"` and real
//! time instead: the harness is the same, its waits are bounded the same
//! way, the run is slower and less repeatable.
//!
//! A test that shows a bug in the code under test stays in the suite with
//! `#[ignore = "bug: ..."]` until the fix lands; `cargo nextest run -p swarm
//! --run-ignored only` runs exactly those.
//!
//! ```ignore
//! #[tokio::test(start_paused = true)]
//! async fn t99_example() -> swarm::Result<()> {
//!     let c = TestCluster::new(3).await?;
//!     let leader = c.wait_leader(Duration::from_secs(10)).await?;
//!     c.isolate(leader);
//!     let next = c.wait_new_leader(leader, Duration::from_secs(10)).await?;
//!     create_secret(&c.node(next).store(), "s1").await?;
//!     c.heal();
//!     c.wait_synced(Duration::from_secs(10)).await?;
//!     for id in c.ids() {
//!         assert!(secret_names(&c.node(id).store()).contains("s1"));
//!     }
//!     c.shutdown().await
//! }
//! ```

mod cluster;
pub mod faults;
mod fixtures;
mod forwarder;
pub mod router;
mod tempdir;

pub use cluster::TestCluster;
pub use cluster::TestNode;
pub use faults::Faults;
pub use fixtures::create_secret;
pub use fixtures::secret_names;
pub use fixtures::secret_spec;
pub use forwarder::SimForwarder;
pub use router::Router;
pub use tempdir::TempRoot;

#[cfg(doc)]
use crate::store::Store;

#[cfg(test)]
mod t10_writes_test;
#[cfg(test)]
mod t20_leader_loss_test;
#[cfg(test)]
mod t30_partition_test;
#[cfg(test)]
mod t40_conditional_test;
#[cfg(test)]
mod t43_read_dependencies_test;
#[cfg(test)]
mod t50_snapshot_test;
#[cfg(test)]
mod t51_snapshot_consistency_test;
#[cfg(test)]
mod t60_restart_test;
#[cfg(test)]
mod t70_dispatcher_test;
#[cfg(test)]
mod t80_latency_test;
