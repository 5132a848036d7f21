//! Which nodes hold a live session with this leader, and until when: the
//! pure bookkeeping behind marking nodes down (swarmkit's heartbeat
//! expiry). The dispatcher feeds it sessions, heartbeats and closed
//! streams; its monitor asks it which nodes ran out of time.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// How many heartbeat periods a node may miss before it is down (swarmkit's
/// grace multiplier).
pub const GRACE_PERIODS: u32 = 3;
/// How long a node whose session stream broke has to open another before it
/// is down: a restarted agent reconnects well within it, a dead node never.
pub const CLOSED_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Entry {
    session_id: Option<String>,
    deadline: Instant,
}

/// Session IDs and deadlines per node.
#[derive(Debug, Default)]
pub struct Sessions {
    nodes: HashMap<String, Entry>,
}

impl Sessions {
    /// Records a new session of `node`, alive until `deadline`; an older
    /// session of the node is replaced.
    pub fn open(&mut self, node: &str, session_id: &str, deadline: Instant) {
        self.nodes.insert(
            node.to_string(),
            Entry {
                session_id: Some(session_id.to_string()),
                deadline,
            },
        );
    }

    /// Expects `node` to open a session before `deadline` (a new leader gives
    /// every ready node this long to find it). An existing entry is kept.
    pub fn expect(&mut self, node: &str, deadline: Instant) {
        self.nodes.entry(node.to_string()).or_insert(Entry {
            session_id: None,
            deadline,
        });
    }

    /// A heartbeat of `session_id` from `node`: pushes its deadline out.
    /// False when that is not the node's current session.
    pub fn heartbeat(&mut self, node: &str, session_id: &str, deadline: Instant) -> bool {
        match self.nodes.get_mut(node) {
            Some(e) if e.session_id.as_deref() == Some(session_id) => {
                e.deadline = e.deadline.max(deadline);
                true
            }
            _ => false,
        }
    }

    /// Whether `node` has a session open now.
    pub fn has_session(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|e| e.session_id.is_some())
    }

    /// Whether `session_id` is the current session of `node`.
    pub fn is_current(&self, node: &str, session_id: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|e| e.session_id.as_deref() == Some(session_id))
    }

    /// The stream of `session_id` ended: unless the node already opened a
    /// newer session, it has until `deadline` to open one.
    pub fn closed(&mut self, node: &str, session_id: &str, deadline: Instant) {
        if let Some(e) = self.nodes.get_mut(node) {
            if e.session_id.as_deref() == Some(session_id) {
                e.session_id = None;
                e.deadline = e.deadline.min(deadline);
            }
        }
    }

    /// Forgets `node` (it left the cluster).
    pub fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
    }

    /// Removes and returns the nodes whose deadline is past `now`.
    pub fn take_expired(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &expired {
            self.nodes.remove(n);
        }
        expired
    }

    /// The earliest deadline, for the monitor's next wake-up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.nodes.values().map(|e| e.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_extend_and_closed_streams_shorten() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut x = Sessions::default();
        x.open("a", "s1", s(15));
        x.open("b", "s2", s(15));
        assert!(x.heartbeat("a", "s1", s(20)));
        assert!(
            !x.heartbeat("a", "old", s(40)),
            "a stale session is refused"
        );
        x.closed("b", "s2", s(1));
        assert_eq!(x.take_expired(s(1)), vec!["b".to_string()]);
        assert!(x.take_expired(s(19)).is_empty());
        assert_eq!(x.take_expired(s(20)), vec!["a".to_string()]);
    }

    #[test]
    fn a_new_session_outlives_the_close_of_the_old_one() {
        let t0 = Instant::now();
        let mut x = Sessions::default();
        x.open("a", "s1", t0 + Duration::from_secs(15));
        x.open("a", "s2", t0 + Duration::from_secs(15));
        x.closed("a", "s1", t0 + Duration::from_secs(1));
        assert!(x.take_expired(t0 + Duration::from_secs(2)).is_empty());
        assert!(x.is_current("a", "s2"));
    }

    #[test]
    fn expected_nodes_expire_unless_they_open_a_session() {
        let t0 = Instant::now();
        let mut x = Sessions::default();
        x.expect("a", t0 + Duration::from_secs(5));
        x.expect("b", t0 + Duration::from_secs(5));
        x.open("b", "s", t0 + Duration::from_secs(15));
        assert_eq!(
            x.take_expired(t0 + Duration::from_secs(5)),
            vec!["a".to_string()]
        );
        assert_eq!(x.next_deadline(), Some(t0 + Duration::from_secs(15)));
    }
}
