//! The leader-only control loops, started together and stopped by one token.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::node::NodeState;
use crate::store::Store;

/// Spawns every leader-only loop into `set`; they stop when `cancel` fires.
pub fn spawn(
    store: &Arc<Store>,
    _node: &NodeState,
    set: &mut JoinSet<()>,
    cancel: CancellationToken,
) {
    set.spawn(crate::allocator::run(store.clone(), cancel.clone()));
    crate::orchestrator::spawn_all(store.clone(), set, cancel.clone());
    set.spawn(crate::scheduler::run(store.clone(), cancel));
}
