//! The fault model of the in-process network: which links are cut, which
//! messages are lost, how long the rest take. Pure bookkeeping: the
//! [`Router`](super::Router) asks it about every message it carries, one leg
//! (request or reply) at a time.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

use crate::raft::NodeId;

/// What becomes of one message from one node to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It arrives after this delay.
    Deliver(Duration),
    /// The link is cut: the sender learns at once that the peer is
    /// unreachable (a refused connection, a reset stream).
    Unreachable,
    /// It is lost on a working link: the sender sees a transient error.
    Lost,
}

/// The current faults. A new value has none: every message arrives at once.
#[derive(Debug)]
pub struct Faults {
    isolated: BTreeSet<NodeId>,
    // Empty: no partition. Otherwise a node reaches only the nodes of its
    // own group; a node named in no group reaches nobody.
    groups: Vec<BTreeSet<NodeId>>,
    loss: f64,
    rng: StdRng,
    latency: Duration,
    link_latency: BTreeMap<(NodeId, NodeId), Duration>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            isolated: BTreeSet::new(),
            groups: Vec::new(),
            loss: 0.0,
            rng: StdRng::seed_from_u64(0),
            latency: Duration::ZERO,
            link_latency: BTreeMap::new(),
        }
    }
}

impl Faults {
    /// Cuts every link of `node`, in both directions, until [`Faults::rejoin`]
    /// or [`Faults::heal`].
    pub fn isolate(&mut self, node: NodeId) {
        self.isolated.insert(node);
    }

    /// Restores the links of `node` that [`Faults::isolate`] cut (a partition
    /// still applies).
    pub fn rejoin(&mut self, node: NodeId) {
        self.isolated.remove(&node);
    }

    /// Splits the cluster: nodes talk only within their group. Replaces any
    /// earlier partition; isolation still applies on top.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.groups = groups.iter().map(|g| g.iter().copied().collect()).collect();
    }

    /// Ends every isolation and partition. Loss and latency stay.
    pub fn heal(&mut self) {
        self.isolated.clear();
        self.groups.clear();
    }

    /// Loses each message with probability `ratio` (0 to 1), drawn from an
    /// RNG seeded with `seed` so that a run can be replayed.
    pub fn set_loss(&mut self, ratio: f64, seed: u64) {
        self.loss = ratio.clamp(0.0, 1.0);
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Delays every message by `delay` (each leg of a call).
    pub fn set_latency(&mut self, delay: Duration) {
        self.latency = delay;
    }

    /// Delays the calls `from` makes to `to` (request and reply) by `delay`
    /// per leg instead of the cluster-wide latency; `None` removes the override.
    pub fn set_link_latency(&mut self, from: NodeId, to: NodeId, delay: Option<Duration>) {
        match delay {
            Some(d) => self.link_latency.insert((from, to), d),
            None => self.link_latency.remove(&(from, to)),
        };
    }

    /// Whether `a` and `b` can talk at all (ignoring loss).
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        if a == b {
            return true;
        }
        if self.isolated.contains(&a) || self.isolated.contains(&b) {
            return false;
        }
        self.groups.is_empty() || self.groups.iter().any(|g| g.contains(&a) && g.contains(&b))
    }

    /// Decides one leg of a call that `caller` makes to `callee`, travelling
    /// from `src` to `dst` (the request: caller to callee; the reply: back).
    /// Draws from the RNG only when loss is on, so a run without loss is
    /// not perturbed by the number of messages.
    pub fn leg(&mut self, caller: NodeId, callee: NodeId, src: NodeId, dst: NodeId) -> Verdict {
        if !self.connected(src, dst) {
            return Verdict::Unreachable;
        }
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return Verdict::Lost;
        }
        let delay = self
            .link_latency
            .get(&(caller, callee))
            .copied()
            .unwrap_or(self.latency);
        Verdict::Deliver(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_and_partitions_cut_links_both_ways_until_healed() {
        let mut f = Faults::default();
        assert!(f.connected(1, 2));
        f.isolate(2);
        assert!(!f.connected(1, 2) && !f.connected(2, 1) && f.connected(1, 3));
        assert!(f.connected(2, 2), "a node always reaches itself");
        f.rejoin(2);
        f.partition(&[&[1, 2], &[3]]);
        assert!(f.connected(1, 2) && !f.connected(1, 3) && !f.connected(3, 2));
        assert!(!f.connected(4, 1), "a node in no group reaches nobody");
        assert_eq!(f.leg(1, 3, 1, 3), Verdict::Unreachable);
        f.heal();
        assert_eq!(f.leg(1, 3, 1, 3), Verdict::Deliver(Duration::ZERO));
    }

    #[test]
    fn loss_is_seeded_and_latency_is_per_caller_link() {
        let run = |seed| {
            let mut f = Faults::default();
            f.set_loss(0.5, seed);
            (0..64).map(|_| f.leg(1, 2, 1, 2)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let lost = run(7).iter().filter(|v| **v == Verdict::Lost).count();
        assert!((16..=48).contains(&lost), "about half are lost: {lost}");

        let mut f = Faults::default();
        f.set_latency(Duration::from_millis(5));
        f.set_link_latency(2, 1, Some(Duration::from_secs(1)));
        // Both legs of 2's calls to 1 are slow; 1's calls to 2 are not.
        assert_eq!(f.leg(2, 1, 2, 1), Verdict::Deliver(Duration::from_secs(1)));
        assert_eq!(f.leg(2, 1, 1, 2), Verdict::Deliver(Duration::from_secs(1)));
        assert_eq!(
            f.leg(1, 2, 1, 2),
            Verdict::Deliver(Duration::from_millis(5))
        );
        f.set_link_latency(2, 1, None);
        assert_eq!(
            f.leg(2, 1, 2, 1),
            Verdict::Deliver(Duration::from_millis(5))
        );
    }
}
