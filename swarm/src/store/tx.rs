//! Read and write transactions over [`Tables`].

use std::collections::HashMap;

use super::tables::Table;
use super::StoreAction;
use super::Tables;
use crate::error::Error;
use crate::error::Result;
use crate::model;
use crate::model::Cluster;
use crate::model::Kind;
use crate::model::Object;
use crate::model::StoreObject;
use crate::model::Task;

/// A consistent read view of the applied state.
pub struct ReadTx<'a> {
    t: &'a Tables,
}

impl<'a> ReadTx<'a> {
    pub(crate) fn new(t: &'a Tables) -> Self {
        ReadTx { t }
    }

    /// The underlying tables (borrowing; no clones).
    pub fn tables(&self) -> &'a Tables {
        self.t
    }

    /// An object by exact ID.
    pub fn get<T: Table>(&self, id: &str) -> Option<T> {
        self.t.get::<T>(id).cloned()
    }

    /// All objects of a kind.
    pub fn list<T: Table>(&self) -> Vec<T> {
        self.t.iter::<T>().cloned().collect()
    }

    /// The tasks of a service.
    pub fn tasks_by_service(&self, service_id: &str) -> Vec<Task> {
        self.t
            .task_ids_by_service(service_id)
            .filter_map(|id| self.t.get::<Task>(id).cloned())
            .collect()
    }

    /// The tasks assigned to a node.
    pub fn tasks_by_node(&self, node_id: &str) -> Vec<Task> {
        self.t
            .task_ids_by_node(node_id)
            .filter_map(|id| self.t.get::<Task>(id).cloned())
            .collect()
    }

    /// The cluster object, once the swarm is initialized.
    pub fn cluster(&self) -> Option<Cluster> {
        self.t.iter::<Cluster>().next().cloned()
    }

    /// The raft index of the last applied change.
    pub fn last_index(&self) -> u64 {
        self.t.last_index
    }
}

/// A write transaction: reads see its own changes; writes become actions.
pub struct Tx<'a> {
    base: &'a Tables,
    overlay: HashMap<(Kind, String), Option<Object>>,
    actions: Vec<Option<StoreAction>>,
    // Where each object's live create/update sits in `actions`.
    positions: HashMap<(Kind, String), usize>,
    now: String,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(base: &'a Tables) -> Self {
        Tx {
            base,
            overlay: HashMap::new(),
            actions: Vec::new(),
            positions: HashMap::new(),
            now: model::now(),
        }
    }

    pub(crate) fn into_actions(self) -> Vec<StoreAction> {
        self.actions.into_iter().flatten().collect()
    }

    /// A read view of the state this transaction started from (without its
    /// own writes); for name resolution at the start of a transaction.
    pub fn base_view(&self) -> ReadTx<'a> {
        ReadTx::new(self.base)
    }

    /// The transaction's timestamp (used for CreatedAt/UpdatedAt).
    pub fn now(&self) -> &str {
        &self.now
    }

    /// An object by exact ID, as this transaction sees it.
    pub fn get<T: Table>(&self, id: &str) -> Option<T> {
        match self.overlay.get(&(T::KIND, id.to_string())) {
            Some(Some(o)) => T::from_object(o).cloned(),
            Some(None) => None,
            None => self.base.get::<T>(id).cloned(),
        }
    }

    /// All objects of a kind, as this transaction sees them.
    pub fn list<T: Table>(&self) -> Vec<T> {
        let mut out: Vec<T> = self
            .base
            .iter::<T>()
            .filter(|o| !self.overlay.contains_key(&(T::KIND, o.id().to_string())))
            .cloned()
            .collect();
        out.extend(
            self.overlay
                .iter()
                .filter(|((k, _), _)| *k == T::KIND)
                .filter_map(|(_, o)| o.as_ref().and_then(T::from_object).cloned()),
        );
        out
    }

    /// The tasks of a service, as this transaction sees them.
    pub fn tasks_by_service(&self, service_id: &str) -> Vec<Task> {
        self.tasks_where(self.base.task_ids_by_service(service_id), |t| {
            t.service_id() == service_id
        })
    }

    /// The tasks assigned to a node, as this transaction sees them.
    pub fn tasks_by_node(&self, node_id: &str) -> Vec<Task> {
        self.tasks_where(self.base.task_ids_by_node(node_id), |t| {
            t.node_id() == Some(node_id)
        })
    }

    fn tasks_where<'b>(
        &self,
        base_ids: impl Iterator<Item = &'b String>,
        pred: impl Fn(&Task) -> bool,
    ) -> Vec<Task> {
        let mut out: Vec<Task> = base_ids
            .filter(|id| !self.overlay.contains_key(&(Kind::Task, id.to_string())))
            .filter_map(|id| self.base.get::<Task>(id).cloned())
            .collect();
        out.extend(
            self.overlay
                .iter()
                .filter(|((k, _), _)| *k == Kind::Task)
                .filter_map(|(_, o)| o.as_ref().and_then(Task::from_object))
                .filter(|t| pred(t))
                .cloned(),
        );
        out
    }

    /// The cluster object, as this transaction sees it.
    pub fn cluster(&self) -> Option<Cluster> {
        self.list::<Cluster>().into_iter().next()
    }

    /// Creates an object. Its ID must be set and unused; for kinds with unique
    /// names the name must be free (else the caller's conflict error applies).
    pub fn create<T: Table>(&mut self, mut obj: T) -> Result<()> {
        let id = obj.id().to_string();
        if id.is_empty() {
            return Err(Error::internal("object without ID"));
        }
        if self.get::<T>(&id).is_some() {
            return Err(Error::already_exists(format!(
                "{} {} already exists",
                T::KIND.word(),
                id
            )));
        }
        if let Some(name) = obj.name() {
            if self.name_taken::<T>(name, &id) {
                return Err(Error::already_exists(format!(
                    "name conflicts with an existing object: {} {} already exists",
                    T::KIND.word(),
                    name
                )));
            }
        }
        obj.set_created(&self.now.clone());
        obj.set_version(0);
        self.put(StoreAction::Create(obj.clone().into_object()), obj);
        Ok(())
    }

    /// Replaces an object. Its `Version.Index` must equal the stored one.
    pub fn update<T: Table>(&mut self, mut obj: T) -> Result<()> {
        let id = obj.id().to_string();
        let Some(cur) = self.get::<T>(&id) else {
            return Err(Error::not_found(T::KIND, &id));
        };
        if cur.version() != obj.version() {
            return Err(Error::out_of_sequence());
        }
        obj.set_updated(&self.now.clone());
        self.put(StoreAction::Update(obj.clone().into_object()), obj);
        Ok(())
    }

    /// Removes an object by ID.
    pub fn delete<T: Table>(&mut self, id: &str) -> Result<()> {
        if self.get::<T>(id).is_none() {
            return Err(Error::not_found(T::KIND, id));
        }
        let key = (T::KIND, id.to_string());
        let created_here = match self.positions.remove(&key) {
            Some(pos) => matches!(self.actions[pos].take(), Some(StoreAction::Create(_))),
            None => false,
        };
        if !created_here {
            self.actions
                .push(Some(StoreAction::Remove(T::KIND, id.to_string())));
        }
        self.overlay.insert(key, None);
        Ok(())
    }

    /// Whether another object of kind `T` already has `name`.
    pub fn name_taken<T: Table>(&self, name: &str, except_id: &str) -> bool {
        let taken_in_base = self.base.iter::<T>().any(|o| {
            o.id() != except_id
                && o.name() == Some(name)
                && !self.overlay.contains_key(&(T::KIND, o.id().to_string()))
        });
        taken_in_base
            || self.overlay.iter().any(|((k, id), o)| {
                *k == T::KIND
                    && id != except_id
                    && o.as_ref()
                        .and_then(T::from_object)
                        .is_some_and(|o| o.name() == Some(name))
            })
    }

    fn put<T: Table>(&mut self, action: StoreAction, obj: T) {
        // Several writes of one object in one transaction collapse into the last;
        // a create followed by updates stays a create.
        let key = (T::KIND, obj.id().to_string());
        let mut action = action;
        if let Some(pos) = self.positions.remove(&key) {
            if let Some(StoreAction::Create(_)) = self.actions[pos].take() {
                if let StoreAction::Update(o) = action {
                    action = StoreAction::Create(o);
                }
            }
        }
        self.positions.insert(key.clone(), self.actions.len());
        self.actions.push(Some(action));
        self.overlay.insert(key, Some(obj.into_object()));
    }
}
