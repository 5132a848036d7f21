//! Tasks: inspect and list (tasks are written by the orchestrators, the
//! scheduler, the allocator and the dispatcher, never by users).

use super::resolve::resolve;
use crate::error::Result;
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
