//! A proposer that applies at once: deterministic, for tests and benchmarks.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;

use super::Proposed;
use super::Proposer;
use super::SharedState;
use super::StoreAction;
use crate::error::Result;

/// Applies every proposal immediately with consecutive indices.
pub struct LocalProposer {
    state: Arc<SharedState>,
    next: AtomicU64,
}

impl LocalProposer {
    /// A proposer applying to `state`, starting at index 1.
    pub fn new(state: Arc<SharedState>) -> Self {
        LocalProposer {
            state,
            next: AtomicU64::new(1),
        }
    }
}

#[async_trait]
impl Proposer for LocalProposer {
    async fn propose(&self, _base: u64, actions: Vec<StoreAction>) -> Result<Proposed> {
        let index = self.next.fetch_add(1, Ordering::SeqCst);
        self.state.apply(index, &actions);
        Ok(Proposed::Committed(index))
    }
}
