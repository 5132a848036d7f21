//! Task dependencies fetched from the manager over the agent's session.

use std::sync::Arc;

use async_trait::async_trait;

use crate::dispatcher::DispatcherApi;
use crate::exec::DepKind;
use crate::exec::DependencyGetter;
use crate::exec::ExecError;

/// A [`DependencyGetter`] that asks the dispatcher of this session.
pub struct SessionDeps {
    /// This node.
    pub node_id: String,
    /// The open session.
    pub session_id: String,
    /// The manager.
    pub dispatcher: Arc<dyn DispatcherApi>,
}

#[async_trait]
impl DependencyGetter for SessionDeps {
    async fn get(
        &self,
        task_id: &str,
        kind: DepKind,
        id: &str,
    ) -> Result<Option<Vec<u8>>, ExecError> {
        self.dispatcher
            .task_dependency(&self.node_id, &self.session_id, task_id, kind, id)
            .await
            .map_err(|e| ExecError::Temporary(e.to_string()))
    }
}
