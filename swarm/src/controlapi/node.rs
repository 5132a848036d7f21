//! Nodes: inspect, list, update (labels, role, availability) and remove.

use crate::error::Error;
use crate::error::Result;
use crate::model::api;
use crate::model::Kind;
use crate::model::Node;
use crate::model::StoreObject;
use crate::store::ReadTx;
use crate::store::Store;

/// A node's hostname.
pub fn hostname(n: &Node) -> &str {
    n.api
        .description
        .as_ref()
        .and_then(|d| d.hostname.as_deref())
        .unwrap_or("")
}

/// Whether the node is a manager (by its spec role).
pub fn is_manager(n: &Node) -> bool {
    n.api.spec.as_ref().and_then(|s| s.role) == Some(api::NodeSpecRoleEnum::MANAGER)
}

/// Resolves a node by full ID, hostname, or unique ID prefix (dockerd's order).
pub fn resolve(tx: &ReadTx<'_>, input: &str) -> Result<Node> {
    let t = tx.tables();
    if let Some(n) = t.get::<Node>(input) {
        return Ok(n.clone());
    }
    if input.is_empty() {
        return Err(Error::not_found(Kind::Node, input));
    }
    let by_name: Vec<&Node> = t.iter::<Node>().filter(|n| hostname(n) == input).collect();
    if by_name.len() == 1 {
        return Ok(by_name[0].clone());
    }
    let by_prefix: Vec<&Node> = t
        .iter::<Node>()
        .filter(|n| n.id().starts_with(input))
        .collect();
    match (by_name.len(), by_prefix.len()) {
        (0, 1) => Ok(by_prefix[0].clone()),
        (0, 0) => Err(Error::not_found(Kind::Node, input)),
        (a, b) => Err(Error::new(
            crate::ErrorKind::InvalidArgument,
            format!("node {input} is ambiguous ({} matches found)", a.max(b)),
        )),
    }
}

/// `GET /nodes/{id}`.
pub fn get(store: &Store, input: &str) -> Result<Node> {
    store.view(|tx| resolve(tx, input))
}

/// `GET /nodes`.
pub fn list(store: &Store) -> Vec<Node> {
    store.view(|tx| tx.list::<Node>())
}

/// `POST /nodes/{id}/update?version=N`: replaces the node spec.
pub async fn update(store: &Store, input: &str, version: u64, spec: api::NodeSpec) -> Result<()> {
    store
        .update(|tx| {
            let mut n = resolve(&tx.base_view(), input)?;
            let demoting = is_manager(&n) && spec.role == Some(api::NodeSpecRoleEnum::WORKER);
            if demoting {
                let managers = tx.list::<Node>().iter().filter(|m| is_manager(m)).count();
                if managers <= 1 {
                    return Err(Error::precondition(
                        "attempting to demote the last manager of the swarm",
                    ));
                }
            }
            let mut spec = spec.clone();
            spec.labels.get_or_insert_with(Default::default);
            n.api.spec = Some(spec);
            // As swarmkit: the version is met only at the write, after every
            // check of the request.
            if n.version() != version {
                return Err(Error::out_of_sequence());
            }
            tx.update(n)
        })
        .await
}

/// `DELETE /nodes/{id}[?force=1]`.
pub async fn remove(store: &Store, input: &str, force: bool) -> Result<()> {
    store
        .update(|tx| {
            let n = resolve(&tx.base_view(), input)?;
            let id = n.id().to_string();
            // A raft member (the leader shows its managers' status); a manager
            // left out by `--force-new-cluster` is not one any more.
            if n.api.manager_status.is_some() {
                return Err(Error::precondition(format!(
                    "node {id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"
                )));
            }
            let down = n.api.status.as_ref().and_then(|s| s.state) == Some(api::NodeState::DOWN);
            if !force && !down {
                return Err(Error::precondition(format!(
                    "node {id} is not down and can't be removed"
                )));
            }
            tx.delete::<Node>(&id)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_manager() -> (std::sync::Arc<Store>, String) {
        let store = Store::in_memory();
        let mut n = Node::default();
        let id = crate::model::new_id();
        n.api.id = Some(id.clone());
        n.api.spec = Some(api::NodeSpec {
            role: Some(api::NodeSpecRoleEnum::MANAGER),
            ..Default::default()
        });
        n.api.description = Some(api::NodeDescription {
            hostname: Some("host-a".into()),
            ..Default::default()
        });
        n.api.manager_status = Some(Default::default());
        store.update(|tx| tx.create(n.clone())).await.unwrap();
        (store, id)
    }

    #[tokio::test]
    async fn resolves_by_hostname_and_prefix() {
        let (store, id) = store_with_manager().await;
        assert_eq!(get(&store, "host-a").unwrap().id(), id);
        assert_eq!(get(&store, &id[..5]).unwrap().id(), id);
        assert_eq!(
            get(&store, "nosuch").unwrap_err().message(),
            "node nosuch not found"
        );
    }

    #[tokio::test]
    async fn last_manager_cannot_be_demoted_or_removed() {
        let (store, id) = store_with_manager().await;
        let v = get(&store, &id).unwrap().version();
        let e = update(
            &store,
            &id,
            v,
            api::NodeSpec {
                role: Some(api::NodeSpecRoleEnum::WORKER),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message(),
            "rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm"
        );
        let e = remove(&store, &id, true).await.unwrap_err();
        assert!(e
            .message()
            .contains("is a cluster manager and is a member of the raft cluster"));
    }
}
