//! The leader-only control loops, started together and stopped by one token.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Spawns the leader-only loops that work on the store alone into `set`;
/// they stop when `cancel` fires.
pub fn spawn(store: &Arc<Store>, set: &mut JoinSet<()>, cancel: CancellationToken) {
    set.spawn(crate::allocator::run(store.clone(), cancel.clone()));
    crate::orchestrator::spawn_all(store.clone(), set, cancel.clone());
    set.spawn(crate::scheduler::run(store.clone(), cancel));
}
