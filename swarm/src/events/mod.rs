//! The daemon's event log, what `GET /events` serves: one bus per daemon
//! that the runtime (containers, images, volumes), the network driver and,
//! on managers, the store watcher ([`cluster`]) publish to.
//!
//! The bus keeps the last [`BACKLOG`] events so `--since` can look back
//! (dockerd keeps the same number) and fans new ones out to followers.
//! Publishing never blocks: a follower that falls more than [`FOLLOW_BUFFER`]
//! events behind misses some, as dockerd drops events a slow reader does
//! not take in time.

pub mod cluster;

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use serde::Deserialize;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How many past events the bus keeps for `--since`.
pub const BACKLOG: usize = 256;
/// How far a follower may fall behind before it misses events.
pub const FOLLOW_BUFFER: usize = 1024;

/// Who an event is about: an object's ID and facts about it (its name,
/// labels, what changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The object's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name, labels and per-action details.
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Actor {
    /// An actor with only an ID.
    pub fn new(id: impl Into<String>) -> Self {
        Actor {
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds one attribute.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// One event, in the API's JSON shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Pre-1.22 field, kept for containers and images as dockerd does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Pre-1.22 field, kept for containers and images.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Pre-1.22 field: a container's image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `container`, `image`, `service`...
    #[serde(rename = "Type")]
    pub kind: String,
    /// `create`, `start`, `die`...
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// `local` for this engine's objects, `swarm` for cluster objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Seconds since the epoch.
    #[serde(default)]
    pub time: i64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano", default)]
    pub time_nano: i64,
}

fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Message {
    /// An event of this engine, stamped now. Containers and images also
    /// carry the old `status`/`id`/`from` fields, as dockerd's do.
    pub fn local(kind: &str, action: &str, actor: Actor) -> Self {
        let mut m = Message {
            kind: kind.into(),
            action: action.into(),
            scope: "local".into(),
            ..Default::default()
        };
        if kind == "container" || kind == "image" {
            m.status = action.into();
            m.id = actor.id.clone();
        }
        if kind == "container" {
            m.from = actor.attributes.get("image").cloned().unwrap_or_default();
        }
        m.actor = actor;
        m.at(now_nanos())
    }

    /// A cluster event at `time_nano` (the object's own timestamp).
    pub fn swarm(kind: &str, action: &str, actor: Actor, time_nano: i64) -> Self {
        Message {
            kind: kind.into(),
            action: action.into(),
            actor,
            scope: "swarm".into(),
            ..Default::default()
        }
        .at(time_nano)
    }

    fn at(mut self, time_nano: i64) -> Self {
        self.time_nano = time_nano;
        self.time = time_nano.div_euclid(1_000_000_000);
        self
    }
}

struct Inner {
    backlog: Mutex<VecDeque<Message>>,
    tx: broadcast::Sender<Message>,
    closed: CancellationToken,
}

/// The daemon's event bus. Cheap to clone; every clone is the same bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

/// What a new subscriber gets: the backlog as it was and, with no gap or
/// overlap, every event published after.
#[derive(Debug)]
pub struct Subscription {
    /// The kept past events, oldest first.
    pub backlog: Vec<Message>,
    /// Events published from now on.
    pub rx: broadcast::Receiver<Message>,
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(FOLLOW_BUFFER);
        EventBus {
            inner: Arc::new(Inner {
                backlog: Mutex::new(VecDeque::with_capacity(BACKLOG)),
                tx,
                closed: CancellationToken::new(),
            }),
        }
    }

    /// Records `m` in the backlog and sends it to followers. Never blocks
    /// on a follower; may be called from any thread.
    pub fn publish(&self, m: Message) {
        let mut backlog = self.inner.backlog.lock().unwrap_or_else(|e| e.into_inner());
        if backlog.len() == BACKLOG {
            backlog.pop_front();
        }
        backlog.push_back(m.clone());
        // Sent under the lock, so a subscriber sees each event exactly once:
        // in its backlog copy or on its receiver. No follower is no error.
        let _ = self.inner.tx.send(m);
    }

    /// Publishes an event of this engine stamped now.
    pub fn log(&self, kind: &str, action: &str, actor: Actor) {
        self.publish(Message::local(kind, action, actor));
    }

    /// Takes the backlog and starts following.
    pub fn subscribe(&self) -> Subscription {
        let backlog = self.inner.backlog.lock().unwrap_or_else(|e| e.into_inner());
        Subscription {
            backlog: backlog.iter().cloned().collect(),
            rx: self.inner.tx.subscribe(),
        }
    }

    /// How many subscriptions are open (`docker info`'s `NEventsListener`).
    pub fn listeners(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    /// Tells every follower the daemon is stopping; their streams end.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Fires once [`EventBus::close`] was called.
    pub fn closed(&self) -> CancellationToken {
        self.inner.closed.clone()
    }
}

/// The backlog events a `since`/`until` request replays, both bounds in
/// nanoseconds since the epoch (`None`: unbounded). Like dockerd, a request
/// with neither bound replays nothing: it only follows.
pub fn replay(backlog: &[Message], since: Option<i64>, until: Option<i64>) -> Vec<&Message> {
    if since.is_none() && until.is_none() {
        return Vec::new();
    }
    backlog
        .iter()
        .filter(|m| since.is_none_or(|s| m.time_nano >= s))
        .filter(|m| until.is_none_or(|u| m.time_nano <= u))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i64) -> Message {
        Message::swarm("service", "create", Actor::new(n.to_string()), n)
    }

    #[test]
    fn backlog_keeps_the_last_ones() {
        let bus = EventBus::new();
        for n in 0..(BACKLOG as i64 + 10) {
            bus.publish(ev(n));
        }
        let s = bus.subscribe();
        assert_eq!(s.backlog.len(), BACKLOG);
        assert_eq!(s.backlog[0].time_nano, 10);
        assert_eq!(s.backlog[BACKLOG - 1].time_nano, BACKLOG as i64 + 9);
    }

    #[tokio::test]
    async fn followers_see_what_comes_after_their_backlog() {
        let bus = EventBus::new();
        bus.publish(ev(1));
        let mut s = bus.subscribe();
        bus.publish(ev(2));
        assert_eq!(s.backlog, vec![ev(1)]);
        assert_eq!(s.rx.recv().await.unwrap(), ev(2));
        bus.close();
        assert!(bus.closed().is_cancelled());
    }

    #[test]
    fn replay_bounds_are_inclusive_and_none_means_follow_only() {
        let log: Vec<Message> = (1..=5).map(ev).collect();
        assert!(replay(&log, None, None).is_empty());
        let got: Vec<i64> = replay(&log, Some(2), Some(4))
            .iter()
            .map(|m| m.time_nano)
            .collect();
        assert_eq!(got, vec![2, 3, 4]);
        assert_eq!(replay(&log, None, Some(1)).len(), 1);
        assert_eq!(replay(&log, Some(5), None).len(), 1);
    }

    #[test]
    fn json_shape_is_dockerds() {
        let actor = Actor::new("abc")
            .with("image", "busybox")
            .with("name", "web.1");
        let mut m = Message::local("container", "start", actor);
        m = m.at(1_700_000_000_123_456_789);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["status"], "start");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "start");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["Actor"]["Attributes"]["name"], "web.1");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["timeNano"], 1_700_000_000_123_456_789i64);
        let s = serde_json::to_value(ev(7)).unwrap();
        assert!(s.get("status").is_none() && s.get("from").is_none());
        assert_eq!(s["scope"], "swarm");
    }
}
