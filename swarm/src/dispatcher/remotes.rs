//! The managers a node knows, and which of them leads, as sessions report
//! them; the order an agent tries them in.

use std::sync::Arc;
use std::sync::Mutex;

/// Manager addresses (`ip:port`), the leader first when known.
#[derive(Clone, Default)]
pub struct Remotes {
    inner: Arc<Mutex<Inner>>,
    sessions: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Called with the new manager list.
type OnChange = Arc<dyn Fn(&[String]) + Send + Sync>;

#[derive(Default)]
struct Inner {
    addrs: Vec<String>,
    leader: Option<String>,
    on_change: Option<OnChange>,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remotes")
            .field("addrs", &self.addrs())
            .finish_non_exhaustive()
    }
}

impl Remotes {
    /// Remotes starting from `addrs`.
    pub fn new(addrs: Vec<String>) -> Self {
        let r = Remotes::default();
        r.lock().addrs = addrs;
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a session opened with one of the managers.
    pub fn note_session(&self) {
        self.sessions.send_modify(|n| *n += 1);
    }

    /// How many sessions were opened so far, as they open.
    pub fn sessions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sessions.subscribe()
    }

    /// Calls `f` with the new list whenever it changes (to persist it).
    pub fn on_change(&self, f: impl Fn(&[String]) + Send + Sync + 'static) {
        self.lock().on_change = Some(Arc::new(f));
    }

    /// Every known manager.
    pub fn addrs(&self) -> Vec<String> {
        self.lock().addrs.clone()
    }

    /// The order to try managers in: the leader hint, then the rest.
    pub fn candidates(&self) -> Vec<String> {
        let g = self.lock();
        let mut out: Vec<String> = g.leader.iter().cloned().collect();
        out.extend(
            g.addrs
                .iter()
                .filter(|a| Some(*a) != g.leader.as_ref())
                .cloned(),
        );
        out
    }

    /// Notes who leads (from a redirect or a session message).
    pub fn set_leader(&self, addr: &str) {
        let mut g = self.lock();
        g.leader = Some(addr.to_string());
        if !g.addrs.iter().any(|a| a == addr) {
            g.addrs.push(addr.to_string());
        }
    }

    /// Replaces the list with what a session reported (leader first).
    pub fn replace(&self, addrs: Vec<String>) {
        if addrs.is_empty() {
            return;
        }
        let callback = {
            let mut g = self.lock();
            g.leader = addrs.first().cloned();
            if g.addrs == addrs {
                return;
            }
            g.addrs = addrs.clone();
            g.on_change.clone()
        };
        if let Some(f) = callback {
            f(&addrs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_tried_first() {
        let r = Remotes::new(vec!["a:1".into(), "b:1".into()]);
        assert_eq!(r.candidates(), vec!["a:1", "b:1"]);
        r.set_leader("b:1");
        assert_eq!(r.candidates(), vec!["b:1", "a:1"]);
        r.set_leader("c:1");
        assert_eq!(r.candidates(), vec!["c:1", "a:1", "b:1"]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        r.on_change(move |a| s.lock().unwrap().push(a.to_vec()));
        r.replace(vec!["b:1".into(), "a:1".into()]);
        assert_eq!(r.candidates(), vec!["b:1", "a:1"]);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
