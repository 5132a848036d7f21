//! The applied state: one ordered map per kind, plus task indexes.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;

use serde::Deserialize;
use serde::Serialize;

use crate::model::Cluster;
use crate::model::Config;
use crate::model::Kind;
use crate::model::Network;
use crate::model::Node;
use crate::model::Object;
use crate::model::Secret;
use crate::model::Service;
use crate::model::StoreObject;
use crate::model::Task;

/// Every object of the cluster, as of `last_index`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tables {
    /// The raft index of the last applied entry.
    pub last_index: u64,
    clusters: BTreeMap<String, Cluster>,
    nodes: BTreeMap<String, Node>,
    services: BTreeMap<String, Service>,
    tasks: BTreeMap<String, Task>,
    secrets: BTreeMap<String, Secret>,
    configs: BTreeMap<String, Config>,
    networks: BTreeMap<String, Network>,
    #[serde(skip)]
    by_service: HashMap<String, BTreeSet<String>>,
    #[serde(skip)]
    by_node: HashMap<String, BTreeSet<String>>,
    /// The last index that changed an object of each kind (for checking a
    /// transaction another manager built; not kept in snapshots: a restored
    /// state counts every kind as changed at its index).
    #[serde(skip)]
    changed_at: HashMap<Kind, u64>,
}

/// Typed access to one table.
pub trait Table: StoreObject {
    /// The map holding this kind.
    fn map(t: &Tables) -> &BTreeMap<String, Self>;
}

macro_rules! table {
    ($ty:ty, $field:ident) => {
        impl Table for $ty {
            fn map(t: &Tables) -> &BTreeMap<String, Self> {
                &t.$field
            }
        }
    };
}
table!(Cluster, clusters);
table!(Node, nodes);
table!(Service, services);
table!(Task, tasks);
table!(Secret, secrets);
table!(Config, configs);
table!(Network, networks);

impl Tables {
    /// Gets an object by exact ID.
    pub fn get<T: Table>(&self, id: &str) -> Option<&T> {
        T::map(self).get(id)
    }

    /// All objects of a kind, in ID order.
    pub fn iter<T: Table>(&self) -> impl Iterator<Item = &T> {
        T::map(self).values()
    }

    /// Number of objects of a kind.
    pub fn count<T: Table>(&self) -> usize {
        T::map(self).len()
    }

    /// IDs of the tasks of a service.
    pub fn task_ids_by_service(&self, service_id: &str) -> impl Iterator<Item = &String> {
        self.by_service.get(service_id).into_iter().flatten()
    }

    /// IDs of the tasks assigned to a node.
    pub fn task_ids_by_node(&self, node_id: &str) -> impl Iterator<Item = &String> {
        self.by_node.get(node_id).into_iter().flatten()
    }

    /// Inserts or replaces an object, keeping indexes right.
    pub fn put(&mut self, o: Object) {
        match o {
            Object::Cluster(x) => {
                self.clusters.insert(x.id().to_string(), *x);
            }
            Object::Node(x) => {
                self.nodes.insert(x.id().to_string(), *x);
            }
            Object::Service(x) => {
                self.services.insert(x.id().to_string(), *x);
            }
            Object::Task(x) => {
                let id = x.id().to_string();
                if let Some(old) = self.tasks.remove(&id) {
                    self.unindex(&old);
                }
                self.index(&x);
                self.tasks.insert(id, *x);
            }
            Object::Secret(x) => {
                self.secrets.insert(x.id().to_string(), *x);
            }
            Object::Config(x) => {
                self.configs.insert(x.id().to_string(), *x);
            }
            Object::Network(x) => {
                self.networks.insert(x.id().to_string(), *x);
            }
        }
    }

    /// Removes an object; returns it if it existed.
    pub fn remove(&mut self, kind: Kind, id: &str) -> Option<Object> {
        let boxed = |o: Option<Object>| o;
        match kind {
            Kind::Cluster => boxed(self.clusters.remove(id).map(StoreObject::into_object)),
            Kind::Node => boxed(self.nodes.remove(id).map(StoreObject::into_object)),
            Kind::Service => boxed(self.services.remove(id).map(StoreObject::into_object)),
            Kind::Task => {
                let t = self.tasks.remove(id)?;
                self.unindex(&t);
                Some(t.into_object())
            }
            Kind::Secret => boxed(self.secrets.remove(id).map(StoreObject::into_object)),
            Kind::Config => boxed(self.configs.remove(id).map(StoreObject::into_object)),
            Kind::Network => boxed(self.networks.remove(id).map(StoreObject::into_object)),
        }
    }

    /// Records that an object of `kind` changed at `index`.
    pub fn mark_changed(&mut self, kind: Kind, index: u64) {
        self.changed_at.insert(kind, index);
    }

    /// The last index that changed an object of `kind` (as far as this
    /// state knows: its restore index when it was restored since).
    pub fn changed_at(&self, kind: Kind) -> u64 {
        self.changed_at.get(&kind).copied().unwrap_or(0)
    }

    /// Rebuilds the indexes (after deserializing a snapshot).
    pub fn reindex(&mut self) {
        for kind in [
            Kind::Cluster,
            Kind::Node,
            Kind::Service,
            Kind::Task,
            Kind::Secret,
            Kind::Config,
            Kind::Network,
        ] {
            self.changed_at.insert(kind, self.last_index);
        }
        self.by_service.clear();
        self.by_node.clear();
        let tasks = std::mem::take(&mut self.tasks);
        for t in tasks.values() {
            self.index(t);
        }
        self.tasks = tasks;
    }

    fn index(&mut self, t: &Task) {
        let id = t.id().to_string();
        self.by_service
            .entry(t.service_id().to_string())
            .or_default()
            .insert(id.clone());
        if let Some(n) = t.node_id() {
            self.by_node.entry(n.to_string()).or_default().insert(id);
        }
    }

    fn unindex(&mut self, t: &Task) {
        if let Some(s) = self.by_service.get_mut(t.service_id()) {
            s.remove(t.id());
            if s.is_empty() {
                self.by_service.remove(t.service_id());
            }
        }
        if let Some(n) = t.node_id() {
            if let Some(s) = self.by_node.get_mut(n) {
                s.remove(t.id());
                if s.is_empty() {
                    self.by_node.remove(n);
                }
            }
        }
    }
}
