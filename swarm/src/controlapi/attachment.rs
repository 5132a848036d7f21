//! Network attachments of standalone containers: `docker run --network
//! NET` on a swarm node puts the container on an attachable swarm network.
//!
//! As in swarmkit, the container is represented in the store by a task of
//! its own: no service, on the container's node, carrying the container's
//! ID in `Spec.NetworkAttachmentSpec`, its address on the network and its
//! names as aliases. The task is written running with its address already
//! taken from the allocator's book, so the allocator and the scheduler
//! never see it, the dispatcher never sends it to an agent (the node's own
//! engine runs the container), and the names and overlay peers it gives
//! follow from its address as any task's do.

use super::resolve::resolve;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api;
use crate::model::new_id;
use crate::model::Network;
use crate::model::NetworkAttachment;
use crate::model::StoreObject;
use crate::model::Task;
use crate::store::Store;

/// What a container asks to be attached with.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// The node the container runs on.
    pub node_id: String,
    /// The container's ID.
    pub container_id: String,
    /// The network's name, ID or ID prefix.
    pub network: String,
    /// The container's names on the network (its name, short ID, aliases).
    pub aliases: Vec<String>,
}

/// Whether `t` stands for a standalone container's attachment.
pub fn is_attachment(t: &Task) -> bool {
    t.api
        .spec
        .as_ref()
        .is_some_and(|s| s.network_attachment_spec.is_some())
}

fn container_of(t: &Task) -> &str {
    t.api
        .spec
        .as_ref()
        .and_then(|s| s.network_attachment_spec.as_ref())
        .and_then(|a| a.container_id.as_deref())
        .unwrap_or("")
}

/// Attaches the container: its task on the network (made, or found when
/// it exists, as after a restart of the container), and the network.
pub async fn attach(store: &Store, req: &AttachRequest) -> Result<(Task, Network)> {
    store
        .update(|tx| {
            let net = resolve::<Network>(&tx.base_view(), &req.network)?;
            let name = net.api.name.clone().unwrap_or_default();
            if crate::allocator::network::is_ingress(&net) || !net.api.attachable.unwrap_or(false)
            {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "Could not attach to network {}: rpc error: code = PermissionDenied desc = network {name} not manually attachable",
                        req.network
                    ),
                ));
            }
            let net_id = net.id().to_string();
            if let Some(mut t) = tx.list::<Task>().into_iter().find(|t| {
                is_attachment(t)
                    && container_of(t) == req.container_id
                    && t.networks.iter().any(|a| a.network_id == net_id)
            }) {
                // Asked again with other names (the container was
                // renamed): the names change, the address stays.
                if t.networks.iter().any(|a| a.aliases != req.aliases) {
                    for a in &mut t.networks {
                        a.aliases.clone_from(&req.aliases);
                    }
                    if let Some(n) = t
                        .api
                        .spec
                        .as_mut()
                        .and_then(|s| s.networks.as_mut())
                        .and_then(|n| n.first_mut())
                    {
                        n.aliases = Some(req.aliases.clone());
                    }
                    t.api.updated_at = Some(tx.now().to_string());
                    tx.update(t.clone())?;
                }
                return Ok((t, net.clone()));
            }
            let networks = tx.list::<Network>();
            let address = super::task::take_address(tx, &networks, &net_id, &name)?;
            let now = tx.now().to_string();
            let mut t = Task::default();
            t.api.id = Some(new_id());
            t.api.node_id = Some(req.node_id.clone());
            t.api.created_at = Some(now.clone());
            t.api.updated_at = Some(now.clone());
            t.api.desired_state = Some(api::TaskState::RUNNING);
            t.api.status = Some(api::TaskStatus {
                timestamp: Some(now),
                state: Some(api::TaskState::RUNNING),
                message: Some("started".into()),
                ..Default::default()
            });
            t.api.spec = Some(api::TaskSpec {
                network_attachment_spec: Some(api::TaskSpecNetworkAttachmentSpec {
                    container_id: Some(req.container_id.clone()),
                }),
                networks: Some(vec![api::NetworkAttachmentConfig {
                    target: Some(net_id.clone()),
                    aliases: Some(req.aliases.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            t.networks = vec![NetworkAttachment {
                network_id: net_id,
                addresses: vec![address],
                aliases: req.aliases.clone(),
            }];
            tx.create(t.clone())?;
            Ok((t, net.clone()))
        })
        .await
}

/// What the node's network driver needs of an attachment made by
/// [`attach`]: the network as nodes see it, the address and the names.
pub fn node_attachment(task: &Task, net: &Network) -> crate::exec::Attachment {
    let a = task.networks.first().cloned().unwrap_or_default();
    crate::exec::Attachment {
        network: crate::allocator::network::node_spec(net),
        address: a.addresses.first().cloned().unwrap_or_default(),
        aliases: a.aliases,
    }
}

/// Detaches the container from every swarm network: its tasks go, and
/// their addresses with them.
pub async fn detach(store: &Store, container_id: &str) -> Result<()> {
    detach_where(store, container_id, None).await
}

/// [`detach`] for a call from node `node_id`, which may give back only its
/// own containers' addresses.
pub async fn detach_on(store: &Store, node_id: &str, container_id: &str) -> Result<()> {
    detach_where(store, container_id, Some(node_id)).await
}

async fn detach_where(store: &Store, container_id: &str, node_id: Option<&str>) -> Result<()> {
    store
        .update(|tx| {
            let ids: Vec<String> = tx
                .list::<Task>()
                .into_iter()
                .filter(|t| is_attachment(t) && container_of(t) == container_id)
                .filter(|t| node_id.is_none_or(|n| t.node_id() == Some(n)))
                .filter_map(|t| t.api.id)
                .collect();
            for id in ids {
                tx.delete::<Task>(&id)?;
            }
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(id: &str, attachable: bool) -> Network {
        let mut n = Network::default();
        n.api.id = Some(id.into());
        n.api.name = Some(format!("{id}-name"));
        n.api.attachable = Some(attachable);
        n.api.ipam = Some(api::Ipam {
            config: Some(vec![api::IpamConfig {
                subnet: Some("10.0.7.0/24".into()),
                gateway: Some("10.0.7.1".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        n
    }

    fn req(container: &str, network: &str) -> AttachRequest {
        AttachRequest {
            node_id: "node1".into(),
            container_id: container.into(),
            network: network.into(),
            aliases: vec!["web".into()],
        }
    }

    #[tokio::test]
    async fn attachments_take_addresses_and_give_them_back() {
        let store = Store::in_memory();
        store
            .update(|tx| {
                tx.create(network("att", true))?;
                tx.create(network("closed", false))
            })
            .await
            .unwrap();
        let (t, n) = attach(&store, &req("c1", "att-name")).await.unwrap();
        assert_eq!(n.id(), "att");
        assert!(is_attachment(&t));
        assert_eq!(t.networks[0].addresses, vec!["10.0.7.2/24".to_string()]);
        assert_eq!(t.state(), api::TaskState::RUNNING);
        // Asking again finds the same task; another container gets the next
        // address.
        let (again, _) = attach(&store, &req("c1", "att")).await.unwrap();
        assert_eq!(again.api.id, t.api.id);
        // Renamed: same task and address, the new names.
        let mut renamed = req("c1", "att");
        renamed.aliases = vec!["web2".into()];
        let (r, _) = attach(&store, &renamed).await.unwrap();
        assert_eq!(r.api.id, t.api.id);
        assert_eq!(r.networks[0].addresses, t.networks[0].addresses);
        assert_eq!(r.networks[0].aliases, vec!["web2".to_string()]);
        let stored: Task = store.view(|tx| tx.get::<Task>(t.id()).unwrap());
        assert_eq!(stored.networks[0].aliases, vec!["web2".to_string()]);
        let (other, _) = attach(&store, &req("c2", "att")).await.unwrap();
        assert_eq!(other.networks[0].addresses, vec!["10.0.7.3/24".to_string()]);
        let err = attach(&store, &req("c3", "closed")).await.unwrap_err();
        assert!(err.message().contains("not manually attachable"), "{err}");
        let err = attach(&store, &req("c3", "nope")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        detach(&store, "c1").await.unwrap();
        let left: Vec<Task> = store.view(|tx| tx.list::<Task>());
        assert_eq!(left.len(), 1);
        let (back, _) = attach(&store, &req("c4", "att")).await.unwrap();
        assert_eq!(back.networks[0].addresses, vec!["10.0.7.2/24".to_string()]);
    }
}
