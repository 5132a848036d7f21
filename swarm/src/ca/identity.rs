//! STUB (replaced by the PKI branch).
use serde::Deserialize;
use serde::Serialize;

/// Role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Manager.
    Manager,
    /// Worker.
    Worker,
}
impl Role {
    /// OU.
    pub fn ou(self) -> &'static str {
        match self {
            Role::Manager => "swarm-manager",
            Role::Worker => "swarm-worker",
        }
    }
    /// API.
    pub fn api(self) -> crate::model::api::NodeSpecRoleEnum {
        match self {
            Role::Manager => crate::model::api::NodeSpecRoleEnum::MANAGER,
            Role::Worker => crate::model::api::NodeSpecRoleEnum::WORKER,
        }
    }
}
/// Identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// ID.
    pub node_id: String,
    /// Role.
    pub role: Role,
    /// Cluster.
    pub cluster_id: String,
    /// Expiry.
    pub not_after: time::OffsetDateTime,
}
/// Parse.
pub fn parse_cert_pem(_pem: &str) -> crate::Result<NodeIdentity> {
    Err(crate::Error::internal("stub"))
}
