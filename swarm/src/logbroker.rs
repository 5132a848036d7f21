//! The leader's log broker (swarmkit's `manager/logbroker`): it matches the
//! log subscriptions of API clients (`docker service logs` on any manager)
//! with the nodes that hold the logs.
//!
//! Every node's agent listens for subscriptions over its session; a new
//! subscription goes to every listening node, each reads its own task
//! containers' logs and publishes the lines back, and the broker forwards
//! them to the subscriber. A subscription without `follow` ends once every
//! node it went to said it is done (or went away); one with `follow` lasts
//! until its subscriber hangs up, and nodes that start listening later get
//! it too (tasks started on a new node are followed as well).

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Mutex;

use serde::Deserialize;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::exec::LogMessage;
use crate::exec::LogOptions;
use crate::exec::LogSelector;
use crate::model::new_id;

/// Lines buffered per subscriber.
const SUBSCRIBER_BUFFER: usize = 1024;
/// Subscriptions buffered per listening node.
const LISTENER_BUFFER: usize = 64;

/// A subscription as nodes receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its ID, for publishing lines back.
    pub id: String,
    /// Which task containers.
    pub selector: LogSelector,
    /// What to read.
    pub options: LogOptions,
}

struct Sub {
    subscription: Subscription,
    tx: mpsc::Sender<LogMessage>,
    /// Nodes that have not said they are done (only matters without follow).
    pending: HashSet<String>,
}

#[derive(Default)]
struct Inner {
    subs: HashMap<String, Sub>,
    listeners: HashMap<String, mpsc::Sender<Subscription>>,
}

/// The broker of one leadership term.
#[derive(Default)]
pub struct Broker {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new subscription: its lines arrive on the receiver, which closes
    /// when the subscription ends.
    pub fn subscribe(
        &self,
        selector: LogSelector,
        options: LogOptions,
    ) -> mpsc::Receiver<LogMessage> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let subscription = Subscription {
            id: new_id(),
            selector,
            options,
        };
        let mut g = self.lock();
        g.subs.retain(|_, s| !s.tx.is_closed());
        let mut pending = HashSet::new();
        let mut gone = Vec::new();
        for (node, l) in &g.listeners {
            if l.try_send(subscription.clone()).is_ok() {
                pending.insert(node.clone());
            } else if l.is_closed() {
                gone.push(node.clone());
            }
        }
        for n in gone {
            g.listeners.remove(&n);
        }
        if pending.is_empty() && !options.follow {
            return rx;
        }
        g.subs.insert(
            subscription.id.clone(),
            Sub {
                subscription,
                tx,
                pending,
            },
        );
        rx
    }

    /// `node` listens for subscriptions (a new session replaces the old
    /// one); it gets every live `follow` subscription at once.
    pub fn listen(&self, node: &str) -> mpsc::Receiver<Subscription> {
        let (tx, rx) = mpsc::channel(LISTENER_BUFFER);
        let mut g = self.lock();
        g.subs.retain(|_, s| !s.tx.is_closed());
        for s in g.subs.values_mut() {
            if s.subscription.options.follow && tx.try_send(s.subscription.clone()).is_ok() {
                s.pending.insert(node.to_string());
            }
        }
        g.listeners.insert(node.to_string(), tx);
        rx
    }

    /// `node`'s listener went away: if it has not listened again since, it
    /// has nothing more to say to any subscription.
    pub fn listener_gone(&self, node: &str) {
        let closed = self
            .lock()
            .listeners
            .get(node)
            .is_some_and(|l| l.is_closed());
        if closed {
            self.forget(node);
        }
    }

    /// `node` stopped listening (its session ended): it has nothing more to
    /// say to any subscription.
    pub fn forget(&self, node: &str) {
        let mut g = self.lock();
        g.listeners.remove(node);
        let ids: Vec<String> = g.subs.keys().cloned().collect();
        for id in ids {
            Self::done(&mut g, &id, node);
        }
    }

    fn done(g: &mut Inner, sub: &str, node: &str) {
        let finished = match g.subs.get_mut(sub) {
            Some(s) => {
                s.pending.remove(node);
                s.pending.is_empty() && !s.subscription.options.follow
            }
            None => false,
        };
        if finished {
            // Dropping the sender ends the subscriber's stream.
            g.subs.remove(sub);
        }
    }

    /// Lines from `node` for subscription `sub`, and whether it is done.
    /// Returns whether the subscription still wants lines from it.
    pub async fn publish(
        &self,
        node: &str,
        sub: &str,
        lines: Vec<LogMessage>,
        close: bool,
    ) -> bool {
        let tx = match self.lock().subs.get(sub) {
            Some(s) => s.tx.clone(),
            None => return false,
        };
        for l in lines {
            if tx.send(l).await.is_err() {
                self.lock().subs.remove(sub);
                return false;
            }
        }
        if close {
            Self::done(&mut self.lock(), sub, node);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(node: &str, text: &str) -> LogMessage {
        LogMessage {
            node_id: node.into(),
            service_id: "s".into(),
            task_id: "t".into(),
            stderr: false,
            time_nanos: 0,
            line: text.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn a_subscription_ends_when_every_node_is_done() {
        let b = Broker::default();
        let mut l1 = b.listen("n1");
        let mut l2 = b.listen("n2");
        let mut rx = b.subscribe(LogSelector::Service("s".into()), LogOptions::default());
        let s1 = l1.recv().await.unwrap();
        let s2 = l2.recv().await.unwrap();
        assert_eq!(s1, s2);
        assert!(b.publish("n1", &s1.id, vec![line("n1", "a")], true).await);
        assert_eq!(rx.recv().await.unwrap().line, b"a");
        assert!(b.publish("n2", &s2.id, vec![line("n2", "b")], false).await);
        assert_eq!(rx.recv().await.unwrap().line, b"b");
        // n2 goes away without closing: the subscription ends anyway.
        b.forget("n2");
        assert!(rx.recv().await.is_none());
        assert!(!b.publish("n1", &s1.id, vec![], true).await, "gone");
    }

    #[tokio::test]
    async fn follow_reaches_late_nodes_and_ends_with_its_subscriber() {
        let b = Broker::default();
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let rx = b.subscribe(LogSelector::Task("t".into()), opts);
        let mut late = b.listen("n3");
        let s = late.recv().await.unwrap();
        assert!(b.publish("n3", &s.id, vec![line("n3", "x")], false).await);
        drop(rx);
        assert!(!b.publish("n3", &s.id, vec![line("n3", "y")], false).await);
    }

    #[tokio::test]
    async fn nobody_listening_ends_at_once() {
        let b = Broker::default();
        let mut rx = b.subscribe(LogSelector::Task("t".into()), LogOptions::default());
        assert!(rx.recv().await.is_none());
    }
}
