//! The engine events of containers, as dockerd reports them: the actor is
//! the container with its labels, its image and its name.

use swarm::events::Actor;

use crate::exec::files::NAME_LABEL;
use crate::Containerd;

impl Containerd {
    /// The actor of an event about container `id`, read from its record
    /// (only the ID when the record is gone or containerd is away).
    pub async fn container_actor(&self, id: &str) -> Actor {
        let mut actor = Actor::new(id);
        let Ok(Some(c)) = self.container_get(id).await else {
            return actor;
        };
        let mut labels = c.labels;
        let name = labels.remove(NAME_LABEL).unwrap_or_else(|| id.to_string());
        // containerd drops empty label values; dockerd's task marker is one.
        if labels.contains_key("com.docker.swarm.task.id") {
            labels.entry("com.docker.swarm.task".into()).or_default();
        }
        actor.attributes.extend(labels);
        if !c.image.is_empty() {
            actor.attributes.insert("image".into(), c.image);
        }
        actor.attributes.insert("name".into(), name);
        actor
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
