//! The node's side of standalone containers on swarm networks: a manager
//! writes the attachment into the store itself.

use async_trait::async_trait;

use super::SwarmNode;
use crate::controlapi::attachment;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::exec::Attachment;
use crate::exec::AttachmentAllocator;

#[async_trait]
impl AttachmentAllocator for SwarmNode {
    async fn attach(
        &self,
        container_id: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<Attachment> {
        let m = match self.manager() {
            Ok(m) => m,
            Err(_) if self.membership().is_none() => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("network {network} not found"),
                ))
            }
            // A worker would ask a manager through its dispatcher session
            // (swarmkit's ResourceAllocator); not done yet.
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "could not attach to network {network}: this daemon attaches standalone containers to swarm networks on manager nodes only"
                    ),
                ))
            }
        };
        let req = attachment::AttachRequest {
            node_id: m.node_id().to_string(),
            container_id: container_id.to_string(),
            network: network.to_string(),
            aliases: aliases.to_vec(),
        };
        let (task, net) = attachment::attach(m.store(), &req).await?;
        let a = task.networks.first().cloned().unwrap_or_default();
        Ok(Attachment {
            network: crate::allocator::network::node_spec(&net),
            address: a.addresses.first().cloned().unwrap_or_default(),
            aliases: a.aliases,
        })
    }

    async fn detach(&self, container_id: &str) -> Result<()> {
        match self.manager() {
            Ok(m) => attachment::detach(m.store(), container_id).await,
            Err(_) => Ok(()),
        }
    }
}
