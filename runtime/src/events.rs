//! The engine events of containers, as dockerd reports them: the actor is
//! the container with its labels, its image and its name.

use swarm::events::Actor;

use crate::exec::files::NAME_LABEL;
use crate::Containerd;

/// The actor of an event about container `id` with record `labels` and
/// `image` (a container this daemon just made needs no read of its record).
pub fn actor_of(
    id: &str,
    mut labels: std::collections::HashMap<String, String>,
    image: String,
) -> Actor {
    let mut actor = Actor::new(id);
    let name = labels.remove(NAME_LABEL).unwrap_or_else(|| id.to_string());
    // As the record holds them: containerd drops empty label values...
    labels.retain(|_, v| !v.is_empty());
    // ...and dockerd's task marker is one. empty label values; dockerd's task marker is one.
    if labels.contains_key("com.docker.swarm.task.id") {
        labels.entry("com.docker.swarm.task".into()).or_default();
    }
    actor.attributes.extend(labels);
    if !image.is_empty() {
        actor.attributes.insert("image".into(), image);
    }
    actor.attributes.insert("name".into(), name);
    actor
}

impl Containerd {
    /// The actor of an event about container `id`, read from its record
    /// (only the ID when the record is gone or containerd is away).
    pub async fn container_actor(&self, id: &str) -> Actor {
        match self.container_get(id).await {
            Ok(Some(c)) => actor_of(id, c.labels, c.image),
            _ => Actor::new(id),
        }
    }

    /// Publishes container event `action` for `actor` with `extra`
    /// attributes (`exitCode`, `signal`...).
    pub fn container_event(&self, action: &str, actor: &Actor, extra: &[(&str, String)]) {
        let mut actor = actor.clone();
        for (k, v) in extra {
            actor.attributes.insert((*k).to_string(), v.clone());
        }
        self.events().log("container", action, actor);
    }
}
