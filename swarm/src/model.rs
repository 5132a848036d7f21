//! The objects the store holds.
//!
//! The Docker Engine API's own types (from `bollard-stubs`) are the model: each
//! stored kind wraps the API type in `api` and adds only the fields swarmkit keeps
//! that the generated types lack (a service's previous spec, a task's spec version
//! and network attachments, the cluster's CA key and token secrets). The HTTP edge
//! serializes `api` and adds those API-visible extras.

use std::collections::HashMap;
use std::fmt::Debug;

pub use bollard_stubs::models as api;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

/// Creates a new object ID: 25 characters of lowercase base36, like swarmkit's
/// `identity.NewID` (128 random bits).
pub fn new_id() -> String {
    let mut n: u128 = rand::random();
    let mut out = [b'0'; 25];
    for slot in out.iter_mut().rev() {
        let d = (n % 36) as u8;
        *slot = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Formats a timestamp as Go's `time.RFC3339Nano` does (trailing zeros trimmed).
pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let nanos = t.nanosecond();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// The current time in the API's timestamp format.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// The kinds of objects in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// The one cluster object.
    Cluster,
    /// Nodes.
    Node,
    /// Services.
    Service,
    /// Tasks.
    Task,
    /// Secrets.
    Secret,
    /// Configs.
    Config,
    /// Swarm-scoped networks.
    Network,
}

impl Kind {
    /// The lowercase word dockerd uses in messages ("service x not found").
    pub fn word(self) -> &'static str {
        match self {
            Kind::Cluster => "swarm",
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Secret => "secret",
            Kind::Config => "config",
            Kind::Network => "network",
        }
    }
}

/// The cluster object: the API's `Swarm` plus the secrets behind tokens and the CA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// What `GET /swarm` shows (JoinTokens included).
    pub api: api::Swarm,
    /// Root CA certificate (PEM).
    pub root_ca_cert: String,
    /// Root CA private key (PEM). Lives only in the encrypted store.
    pub root_ca_key: String,
    /// The current manager unlock key (`SWMKEY-1-...`), when autolock is on.
    pub unlock_key: Option<String>,
    /// Keys of the encrypted overlays' data path, oldest first, rotated
    /// by the leader's key manager (see `manager::keymanager`).
    #[serde(default)]
    pub network_bootstrap_keys: Vec<NetworkKey>,
    /// The root being rotated to (`docker swarm ca --rotate`), until every
    /// node holds a certificate it signed.
    #[serde(default)]
    pub root_rotation: Option<RootRotation>,
    /// Bumped when a root rotation starts and when it ends: a node whose
    /// certificate was issued at another generation renews it at once.
    #[serde(default)]
    pub ca_generation: u64,
}

/// One key of the encrypted overlays' data path.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkKey {
    /// Names the key on the wire; grows by one per key.
    pub id: u32,
    /// 32 random bytes, base64. Lives only in the encrypted store and in
    /// the memory of nodes with a task on an encrypted network.
    pub secret: String,
    /// When it was made (Unix seconds).
    pub created: u64,
}

impl std::fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkKey")
            .field("id", &self.id)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A root CA rotation in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootRotation {
    /// The new root certificate (PEM).
    pub cert_pem: String,
    /// Its key (PEM; only in the encrypted store).
    pub key_pem: String,
    /// The new root signed by the current one (see `Issuer::cross_sign`).
    pub cross_signed_pem: String,
}

/// A node of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// What `GET /nodes/{id}` shows.
    pub api: api::Node,
    /// The role the node's certificate was issued for (the observed role).
    pub role: Option<api::NodeSpecRoleEnum>,
    /// Where other nodes send this node's overlay traffic (its data-path
    /// address), as it reported it in its last session.
    #[serde(default)]
    pub data_addr: Option<String>,
    /// This node's own address on the ingress network (swarmkit's node
    /// load-balancer attachment): the routing mesh's source address towards
    /// tasks on other nodes, so their replies come back here.
    #[serde(default)]
    pub ingress_address: Option<String>,
}

/// A service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// What `GET /services/{id}` shows (without `PreviousSpec`).
    pub api: api::Service,
    /// The spec before the last update, for rollback.
    pub previous_spec: Option<api::ServiceSpec>,
    /// Bumped when the spec changes; tasks built from it carry it (`_up-to-date`).
    pub spec_version: u64,
    /// Set while a `service rm` waits for its tasks to go away.
    pub pending_delete: bool,
    /// The encoded `X-Registry-Auth` given with `--with-registry-auth`
    /// (swarmkit keeps it in the spec's pull options; never shown).
    #[serde(default)]
    pub registry_auth: Option<String>,
    /// The previous spec's registry auth, for rollback.
    #[serde(default)]
    pub previous_registry_auth: Option<String>,
}

/// A task's address on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network's ID.
    pub network_id: String,
    /// Addresses in CIDR form (`10.0.1.5/24`).
    pub addresses: Vec<String>,
    /// Aliases on this network.
    pub aliases: Vec<String>,
}

/// A task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// What `GET /tasks/{id}` shows (without `NetworksAttachments`).
    pub api: api::Task,
    /// The service's `spec_version` this task was built from.
    pub spec_version: u64,
    /// Network attachments filled in by the allocator.
    pub networks: Vec<NetworkAttachment>,
    /// The service's name when the task was made (swarmkit's
    /// `ServiceAnnotations`): the node names containers and expands
    /// templates with it without reading the service.
    #[serde(default)]
    pub service_name: String,
    /// The service's host-mode published ports when the task was made
    /// (swarmkit keeps the whole endpoint on the task): the scheduler keeps
    /// them apart per node and the node forwards them to the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<crate::exec::HostPort>,
    /// A replacement made during its predecessor's restart delay waits in
    /// desired state `ready` until this time (RFC 3339), as swarmkit lists
    /// it at once and starts it after the delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
}

/// A secret (its data never leaves the store through the API).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// The API object; `Spec.Data` is kept here and stripped at the edge.
    pub api: api::Secret,
}

/// A config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The API object, data included.
    pub api: api::Config,
}

/// A swarm-scoped network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// What `GET /networks/{id}` shows.
    pub api: api::Network,
    /// The create request as the user sent it (driver options, IPAM, labels).
    pub spec: api::NetworkCreateRequest,
    /// Object version (the API's network type has none).
    pub version: u64,
    /// Last update time.
    pub updated_at: String,
    /// Set while `rm` waits for attachments to be released.
    pub pending_delete: bool,
}

/// Any stored object; the payload of store actions and watch events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Object {
    /// The cluster.
    Cluster(Box<Cluster>),
    /// A node.
    Node(Box<Node>),
    /// A service.
    Service(Box<Service>),
    /// A task.
    Task(Box<Task>),
    /// A secret.
    Secret(Box<Secret>),
    /// A config.
    Config(Box<Config>),
    /// A network.
    Network(Box<Network>),
}

impl Object {
    /// The kind of the object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Cluster(_) => Kind::Cluster,
            Object::Node(_) => Kind::Node,
            Object::Service(_) => Kind::Service,
            Object::Task(_) => Kind::Task,
            Object::Secret(_) => Kind::Secret,
            Object::Config(_) => Kind::Config,
            Object::Network(_) => Kind::Network,
        }
    }

    /// The object's ID.
    pub fn id(&self) -> &str {
        match self {
            Object::Cluster(o) => o.id(),
            Object::Node(o) => o.id(),
            Object::Service(o) => o.id(),
            Object::Task(o) => o.id(),
            Object::Secret(o) => o.id(),
            Object::Config(o) => o.id(),
            Object::Network(o) => o.id(),
        }
    }
}

/// What the store needs of every object kind.
pub trait StoreObject:
    Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The kind.
    const KIND: Kind;
    /// The object's ID.
    fn id(&self) -> &str;
    /// `Version.Index`: the raft index that last wrote the object.
    fn version(&self) -> u64;
    /// Sets `Version.Index`; only the store calls this, at apply time.
    fn set_version(&mut self, index: u64);
    /// Sets CreatedAt (and UpdatedAt) for a new object.
    fn set_created(&mut self, ts: &str);
    /// Sets UpdatedAt.
    fn set_updated(&mut self, ts: &str);
    /// The unique name, for kinds whose names are unique.
    fn name(&self) -> Option<&str>;
    /// Wraps into [`Object`].
    fn into_object(self) -> Object;
    /// Unwraps from [`Object`] when the kind matches.
    fn from_object(o: &Object) -> Option<&Self>;
}

fn ver(v: &Option<api::ObjectVersion>) -> u64 {
    v.as_ref().and_then(|v| v.index).unwrap_or(0)
}

macro_rules! api_object {
    ($ty:ident, $kind:ident, $name:expr) => {
        impl StoreObject for $ty {
            const KIND: Kind = Kind::$kind;
            fn id(&self) -> &str {
                self.api.id.as_deref().unwrap_or("")
            }
            fn version(&self) -> u64 {
                ver(&self.api.version)
            }
            fn set_version(&mut self, index: u64) {
                self.api.version = Some(api::ObjectVersion { index: Some(index) });
            }
            fn set_created(&mut self, ts: &str) {
                self.api.created_at = Some(ts.to_string());
                self.api.updated_at = Some(ts.to_string());
            }
            fn set_updated(&mut self, ts: &str) {
                self.api.updated_at = Some(ts.to_string());
            }
            fn name(&self) -> Option<&str> {
                let f: fn(&$ty) -> Option<&str> = $name;
                f(self)
            }
            fn into_object(self) -> Object {
                Object::$kind(Box::new(self))
            }
            fn from_object(o: &Object) -> Option<&Self> {
                match o {
                    Object::$kind(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}

api_object!(Cluster, Cluster, |c| c
    .api
    .spec
    .as_ref()
    .and_then(|s| s.name.as_deref()));
api_object!(Node, Node, |_| None);
api_object!(Service, Service, |s| s
    .api
    .spec
    .as_ref()
    .and_then(|s| s.name.as_deref()));
api_object!(Task, Task, |_| None);
api_object!(Secret, Secret, |s| s
    .api
    .spec
    .as_ref()
    .and_then(|s| s.name.as_deref()));
api_object!(Config, Config, |s| s
    .api
    .spec
    .as_ref()
    .and_then(|s| s.name.as_deref()));

impl StoreObject for Network {
    const KIND: Kind = Kind::Network;
    fn id(&self) -> &str {
        self.api.id.as_deref().unwrap_or("")
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, index: u64) {
        self.version = index;
    }
    fn set_created(&mut self, ts: &str) {
        self.api.created = Some(ts.to_string());
        self.updated_at = ts.to_string();
    }
    fn set_updated(&mut self, ts: &str) {
        self.updated_at = ts.to_string();
    }
    fn name(&self) -> Option<&str> {
        self.api.name.as_deref()
    }
    fn into_object(self) -> Object {
        Object::Network(Box::new(self))
    }
    fn from_object(o: &Object) -> Option<&Self> {
        match o {
            Object::Network(x) => Some(x),
            _ => None,
        }
    }
}

impl Service {
    /// The spec; every stored service has one.
    pub fn spec(&self) -> &api::ServiceSpec {
        static EMPTY: std::sync::OnceLock<api::ServiceSpec> = std::sync::OnceLock::new();
        self.api
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    /// The service name.
    pub fn name(&self) -> &str {
        self.spec().name.as_deref().unwrap_or("")
    }

    /// The service labels.
    pub fn labels(&self) -> Option<&HashMap<String, String>> {
        self.spec().labels.as_ref()
    }
}

impl Task {
    /// The task's service ID.
    pub fn service_id(&self) -> &str {
        self.api.service_id.as_deref().unwrap_or("")
    }

    /// The node the task is assigned to, if any.
    pub fn node_id(&self) -> Option<&str> {
        self.api.node_id.as_deref().filter(|s| !s.is_empty())
    }

    /// The observed state.
    pub fn state(&self) -> api::TaskState {
        self.api
            .status
            .as_ref()
            .and_then(|s| s.state)
            .unwrap_or(api::TaskState::NEW)
    }

    /// The desired state.
    pub fn desired_state(&self) -> api::TaskState {
        self.api.desired_state.unwrap_or(api::TaskState::NEW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_25_base36() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 25);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn time_format_trims_like_go() {
        let t = time::macros::datetime!(2024-01-02 03:04:05.120 UTC);
        assert_eq!(format_time(t), "2024-01-02T03:04:05.12Z");
        let t = time::macros::datetime!(2024-01-02 03:04:05 UTC);
        assert_eq!(format_time(t), "2024-01-02T03:04:05Z");
    }
}
