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

/// `GET /tasks/{id}` (ID or unique prefix).
pub fn get(store: &Store, input: &str) -> Result<Task> {
    store.view(|tx| resolve::<Task>(tx, input))
}

/// `GET /tasks`.
pub fn list(store: &Store) -> Vec<Task> {
    store.view(|tx| tx.list::<Task>())
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
            let base = tx.base_view();
            let tables = base.tables();
            let mut book =
                AddressBook::build(&networks, tables.iter::<Service>(), tables.iter::<Task>());
            let address = book.allocate(network_id).ok_or_else(|| {
                Error::unknown(format!(
                    "could not allocate an address on network {network_id}"
                ))
            })?;
            task.networks.push(NetworkAttachment {
                network_id: network_id.to_string(),
                addresses: vec![address.clone()],
                aliases,
            });
            tx.update(task)?;
            Ok(address)
        })
        .await
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
