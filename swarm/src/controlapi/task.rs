//! Tasks: inspect and list (tasks are written by the orchestrators, the
//! scheduler, the allocator and the dispatcher, never by users), and the
//! networks a task's container is connected to by hand.

use super::resolve::resolve;
use crate::allocator::vip::AddressBook;
use crate::error::Error;
use crate::error::Result;
use crate::model::Kind;
use crate::model::Network;
use crate::model::NetworkAttachment;
use crate::model::Service;
use crate::model::StoreObject;
use crate::model::Task;
use crate::store::Store;

/// `GET /tasks/{id}` (ID or unique prefix). A standalone container's
/// network attachment is no task of the API, as under dockerd.
pub fn get(store: &Store, input: &str) -> Result<Task> {
    let t = store.view(|tx| resolve::<Task>(tx, input))?;
    if super::attachment::is_attachment(&t) {
        return Err(Error::not_found(Kind::Task, input));
    }
    Ok(t)
}

/// `GET /tasks` (without standalone containers' network attachments).
pub fn list(store: &Store) -> Vec<Task> {
    store.view(|tx| {
        tx.list::<Task>()
            .into_iter()
            .filter(|t| !super::attachment::is_attachment(t))
            .collect()
    })
}

/// `docker network connect` of task `task_id`'s container to `network_id`
/// (a swarm network): the task gets an address on it from the allocator's
/// book, so no other task anywhere takes it, and `aliases` there; its node
/// then plumbs the interface in. The engine edge checks what dockerd checks
/// first; here a task already on the network is a conflict.
pub async fn connect_network(
    store: &Store,
    task_id: &str,
    network_id: &str,
    aliases: Vec<String>,
) -> Result<String> {
    store
        .update(|tx| {
            let mut task = tx
                .get::<Task>(task_id)
                .ok_or_else(|| Error::not_found(Kind::Task, task_id))?;
            if task.networks.iter().any(|a| a.network_id == network_id) {
                return Err(Error::already_exists(format!(
                    "task {task_id} is already attached to network {network_id}"
                )));
            }
            let networks = tx.list::<Network>();
            if !networks.iter().any(|n| n.id() == network_id) {
                return Err(Error::not_found(Kind::Network, network_id));
            }
            let address = take_address(tx, &networks, network_id, network_id)?;
            task.networks.push(NetworkAttachment {
                network_id: network_id.to_string(),
                addresses: vec![address.clone()],
                aliases: aliases.clone(),
            });
            tx.update(task)?;
            Ok(address)
        })
        .await
}

/// A free address on `network_id` from the allocator's book of what every
/// service, task and node holds (`name` words the refusal).
pub(super) fn take_address(
    tx: &crate::store::Tx<'_>,
    networks: &[Network],
    network_id: &str,
    name: &str,
) -> Result<String> {
    let base = tx.base_view();
    let tables = base.tables();
    let mut book = AddressBook::build(
        networks,
        tables.iter::<Service>(),
        tables.iter::<Task>(),
        tables.iter::<crate::model::Node>(),
    );
    book.allocate(network_id)
        .ok_or_else(|| Error::unknown(format!("could not allocate an address on network {name}")))
}

/// `docker network disconnect`: task `task_id` leaves `network_id`; its
/// address goes back to the network and its node unplugs the interface.
pub async fn disconnect_network(store: &Store, task_id: &str, network_id: &str) -> Result<()> {
    store
        .update(|tx| {
            let mut task = tx
                .get::<Task>(task_id)
                .ok_or_else(|| Error::not_found(Kind::Task, task_id))?;
            let before = task.networks.len();
            task.networks.retain(|a| a.network_id != network_id);
            if task.networks.len() == before {
                return Err(Error::unknown(format!(
                    "task {task_id} is not attached to network {network_id}"
                )));
            }
            tx.update(task)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::api;

    fn network(id: &str, subnet: &str, gateway: &str) -> Network {
        let mut n = Network::default();
        n.api.id = Some(id.into());
        n.api.name = Some(id.into());
        n.api.ipam = Some(api::Ipam {
            config: Some(vec![api::IpamConfig {
                subnet: Some(subnet.into()),
                gateway: Some(gateway.into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        n
    }

    fn task(id: &str, network: &str, address: &str) -> Task {
        let mut t = Task::default();
        t.api.id = Some(id.into());
        t.api.status = Some(api::TaskStatus {
            state: Some(api::TaskState::RUNNING),
            ..Default::default()
        });
        t.networks = vec![NetworkAttachment {
            network_id: network.into(),
            addresses: vec![address.into()],
            aliases: vec![],
        }];
        t
    }

    /// A connected task takes the lowest address nobody holds, its aliases
    /// ride along, a second connect conflicts, and a disconnect gives the
    /// address back.
    #[tokio::test]
    async fn connect_allocates_and_disconnect_releases() {
        let store = Store::in_memory();
        store
            .update(|tx| {
                tx.create(network("front", "10.0.1.0/24", "10.0.1.1"))?;
                tx.create(network("shared", "10.0.9.0/24", "10.0.9.1"))?;
                tx.create(task("t1", "front", "10.0.1.2/24"))?;
                tx.create(task("t2", "shared", "10.0.9.2/24"))
            })
            .await
            .unwrap();
        let addr = connect_network(&store, "t1", "shared", vec!["alias".into()])
            .await
            .unwrap();
        assert_eq!(addr, "10.0.9.3/24");
        let t1 = get(&store, "t1").unwrap();
        assert_eq!(t1.networks.len(), 2);
        assert_eq!(t1.networks[1].network_id, "shared");
        assert_eq!(t1.networks[1].aliases, ["alias"]);

        let e = connect_network(&store, "t1", "shared", vec![])
            .await
            .unwrap_err();
        assert!(e.message().contains("already attached"), "{e}");
        let e = connect_network(&store, "t1", "nope", vec![])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::NotFound);

        disconnect_network(&store, "t1", "shared").await.unwrap();
        assert_eq!(get(&store, "t1").unwrap().networks.len(), 1);
        let e = disconnect_network(&store, "t1", "shared")
            .await
            .unwrap_err();
        assert!(e.message().contains("not attached"), "{e}");
        // The address is free again.
        assert_eq!(
            connect_network(&store, "t1", "shared", vec![])
                .await
                .unwrap(),
            "10.0.9.3/24"
        );
    }
}
