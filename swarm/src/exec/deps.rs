//! What a task needs besides its spec: the data of the secrets and configs
//! it references. The agent fetches them from its manager per task, and the
//! manager answers only for tasks assigned to the asking node (swarmkit's
//! `DependencyGetter`, restricted the same way).

use async_trait::async_trait;

use super::ExecError;

/// Secret or config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DepKind {
    /// A secret.
    Secret,
    /// A config.
    Config,
    /// The encoded registry credentials the service was given
    /// (`--with-registry-auth`); the ID is ignored.
    RegistryAuth,
    /// A network the task is attached to, as a JSON
    /// [`NetworkSpec`](super::NetworkSpec).
    Network,
}

/// Gives a task's controller the payloads it references.
#[async_trait]
pub trait DependencyGetter: Send + Sync {
    /// The data of secret or config `id` referenced by task `task_id`;
    /// `None` when it does not exist or the task does not reference it.
    async fn get(
        &self,
        task_id: &str,
        kind: DepKind,
        id: &str,
    ) -> Result<Option<Vec<u8>>, ExecError>;
}
