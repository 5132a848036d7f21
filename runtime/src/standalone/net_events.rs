//! dockerd's network events on this node: `create` and `destroy` of a
//! local network, and `connect` and `disconnect` of a standalone container
//! as the networks it runs on change (at a start, a `docker network
//! connect/disconnect` of a running container, when it stops or is
//! removed).

use swarm::events::Actor;

use crate::networks::Network;
use crate::networks::BRIDGE_DRIVER;
use crate::Containerd;

/// The driver of every swarm network a standalone container joins.
pub(super) const OVERLAY_DRIVER: &str = "overlay";

/// One network a container's endpoint is on, as its events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Joined {
    /// The network's ID (the event's actor).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its driver (`bridge`, `overlay`).
    pub driver: String,
}

impl Joined {
    /// A network `id` named `name` with driver `driver`.
    pub fn new(id: &str, name: &str, driver: &str) -> Joined {
        Joined {
            id: id.to_string(),
            name: name.to_string(),
            driver: driver.to_string(),
        }
    }
}

/// Publishes network event `action` about container `container` on `n`.
pub(super) fn network_event(ctd: &Containerd, action: &str, container: &str, n: &Joined) {
    let actor = Actor::new(&n.id)
        .with("container", container)
        .with("name", &n.name)
        .with("type", &n.driver);
    ctd.events().log("network", action, actor);
}

/// Publishes network event `action` (`create`, `destroy`) about local
/// network `n`.
pub(super) fn local_network_event(ctd: &Containerd, action: &str, n: &Network) {
    let actor = Actor::new(&n.id)
        .with("name", &n.name)
        .with("type", BRIDGE_DRIVER);
    ctd.events().log("network", action, actor);
}

/// What changes from `old` to `new`: the networks left, then the ones
/// joined.
pub(super) fn changes<'a>(
    old: &'a [Joined],
    new: &'a [Joined],
) -> (Vec<&'a Joined>, Vec<&'a Joined>) {
    let left = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.id == o.id))
        .collect();
    let joined = new
        .iter()
        .filter(|n| !old.iter().any(|o| o.id == n.id))
        .collect();
    (left, joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_the_networks_left_and_joined() {
        let a = Joined::new("a", "one", "bridge");
        let b = Joined::new("b", "two", "bridge");
        let c = Joined::new("c", "three", "overlay");
        let (old, new) = ([a.clone(), b.clone()], [b.clone(), c.clone()]);
        let (left, joined) = changes(&old, &new);
        assert_eq!(left, vec![&a]);
        assert_eq!(joined, vec![&c]);
        let same = [b.clone()];
        let (left, joined) = changes(&same, &same);
        assert!(left.is_empty() && joined.is_empty());
    }
}
