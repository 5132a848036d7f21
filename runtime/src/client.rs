//! The containerd channel and the namespace every call carries.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;

use crate::error::Error;
use crate::error::Result;

/// The containerd namespace shoal keeps all of its objects in.
pub const NAMESPACE: &str = "shoal";

/// How long a first connection attempt may take before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on one containerd. Cheap to clone.
///
/// Creating it never touches the socket: the connection is made on first use
/// and retried on every call until it succeeds, so shoald starts (and answers
/// other routes) while containerd is down; calls then fail with
/// [`Error::Unavailable`].
#[derive(Clone)]
pub struct Containerd {
    inner: Arc<Inner>,
    events: swarm::events::EventBus,
}

struct Inner {
    socket: PathBuf,
    work_dir: PathBuf,
    channel: tokio::sync::Mutex<Option<Channel>>,
    // One image unpack at a time: tasks of one service start together and
    // would otherwise race to extract the same layers.
    unpack: tokio::sync::Mutex<()>,
    // Resolved image content and unpacked tops, read once per image
    // instead of once per task.
    images: crate::images::cache::ImageCache,
    // Task ID -> container ID: a task's container is found without a
    // labelled listing of every container per task.
    tasks: crate::containers::TaskIndex,
    // The leases container creations under way share.
    leases: crate::leases::CreationLeases,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.inner.socket)
            .finish()
    }
}

impl Containerd {
    /// A handle for the containerd at `socket`. `work_dir` is where uploads
    /// (such as `docker load` archives) are spooled; it is created on demand.
    pub fn new(socket: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> Containerd {
        Containerd {
            inner: Arc::new(Inner {
                socket: socket.into(),
                work_dir: work_dir.into(),
                channel: tokio::sync::Mutex::new(None),
                unpack: tokio::sync::Mutex::new(()),
                images: Default::default(),
                tasks: Default::default(),
                leases: Default::default(),
            }),
            events: swarm::events::EventBus::new(),
        }
    }

    /// The same client publishing its container, image and volume events
    /// on `bus` (the daemon's); call before cloning it around.
    pub fn with_events(self, bus: swarm::events::EventBus) -> Containerd {
        Containerd {
            events: bus,
            ..self
        }
    }

    /// The bus this client's events go to.
    pub fn events(&self) -> &swarm::events::EventBus {
        &self.events
    }

    /// The containerd socket path.
    pub fn socket(&self) -> &Path {
        &self.inner.socket
    }

    pub(crate) fn work_dir(&self) -> &Path {
        &self.inner.work_dir
    }

    pub(crate) fn unpack_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.unpack
    }

    pub(crate) fn image_cache(&self) -> &crate::images::cache::ImageCache {
        &self.inner.images
    }

    pub(crate) fn task_index(&self) -> &crate::containers::TaskIndex {
        &self.inner.tasks
    }

    pub(crate) fn creation_leases(&self) -> &crate::leases::CreationLeases {
        &self.inner.leases
    }

    /// The gRPC channel, connecting first if needed.
    pub(crate) async fn channel(&self) -> Result<Channel> {
        let mut slot = self.inner.channel.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let socket = self.inner.socket.clone();
        let connect = containerd_client::connect(&socket);
        let channel = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.unavailable(error_chain(&e))),
            Err(_) => return Err(self.unavailable("timed out connecting".into())),
        };
        *slot = Some(channel.clone());
        Ok(channel)
    }

    fn unavailable(&self, reason: String) -> Error {
        Error::Unavailable {
            socket: self.inner.socket.display().to_string(),
            reason,
        }
    }

    /// Wraps `msg` in a request carrying the `shoal` namespace and, when
    /// given, a lease that protects written content from garbage collection.
    pub(crate) fn request<T>(&self, msg: T, lease: Option<&str>) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        let md = req.metadata_mut();
        md.insert(
            "containerd-namespace",
            tonic::metadata::MetadataValue::from_static(NAMESPACE),
        );
        if let Some(lease) = lease {
            if let Ok(v) = lease.parse() {
                md.insert("containerd-lease", v);
            }
        }
        req
    }

    /// Maps a failed call's status to an [`Error`].
    pub(crate) fn status(&self, op: &'static str, s: tonic::Status) -> Error {
        if s.code() == tonic::Code::Unavailable {
            return self.unavailable(s.message().to_string());
        }
        Error::Containerd {
            op,
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// An error and its sources as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}
