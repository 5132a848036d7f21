//! The engine events of containers, as dockerd reports them: the actor is
//! the container with its labels, its image and its name.

use swarm::events::Actor;

use crate::exec::files::NAME_LABEL;
use crate::exec::NodeEnv;
use crate::view::spec::MountView;
use crate::view::spec::SpecView;
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
    // containerd drops empty label values, and dockerd's task marker is
    // one: put it back.
    labels.retain(|_, v| !v.is_empty());
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
    /// Publishes image event `action` about `id` as dockerd does: the
    /// image's labels (when it still exists) and `name`.
    pub async fn image_event(&self, action: &str, id: &str, name: &str) {
        let mut actor = Actor::new(id);
        if let Ok((info, _)) = self.image_find(id).await {
            actor
                .attributes
                .extend(crate::exec::spec::image_labels(&info.config));
        }
        if !name.is_empty() {
            actor.attributes.insert("name".into(), name.to_string());
        }
        self.events().log("image", action, actor);
    }

    /// The actor of an event about container `id`, read from its record
    /// (only the ID when the record is gone or containerd is away).
    pub async fn container_actor(&self, id: &str) -> Actor {
        match self.container_get(id).await {
            Ok(Some(c)) => actor_of(id, c.labels, c.image),
            _ => Actor::new(id),
        }
    }

    /// Publishes container event `action` about exec `exec_id` in container
    /// `container_id` (`exec_create: CMD`, `exec_start: CMD`, `exec_die`),
    /// with the `execID` attribute and `extra` ones, as dockerd does.
    pub async fn exec_event(
        &self,
        container_id: &str,
        action: &str,
        exec_id: &str,
        extra: &[(&str, String)],
    ) {
        let actor = self.container_actor(container_id).await;
        let mut all = vec![("execID", exec_id.to_string())];
        all.extend(extra.iter().cloned());
        self.container_event(action, &actor, &all);
    }

    /// The volume mounts of container `id`, read from its spec in
    /// containerd (none when it cannot be read).
    pub async fn container_volumes(&self, env: &NodeEnv, id: &str) -> Vec<MountView> {
        let Ok(Some(json)) = self.container_spec(id).await else {
            return Vec::new();
        };
        volume_mounts(&json, &env.containers_root.join(id), &env.volumes_root)
    }

    /// Publishes dockerd's `volume mount` events (before a container's
    /// `start`) or `volume unmount` ones (after its `die`) for `mounts`,
    /// the volume mounts of container `id`.
    pub fn volume_events(&self, id: &str, mounts: &[MountView], mount: bool) {
        for m in mounts {
            let Some(name) = &m.name else { continue };
            let mut actor = Actor::new(name)
                .with("driver", crate::volumes::LOCAL_DRIVER)
                .with("container", id);
            let action = if mount {
                actor = actor
                    .with("destination", &m.destination)
                    .with("read/write", if m.rw { "true" } else { "false" })
                    .with("propagation", &m.propagation);
                "mount"
            } else {
                "unmount"
            };
            self.events().log("volume", action, actor);
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

/// The volume mounts of the OCI spec `json` of the container in `dir`.
pub fn volume_mounts(
    json: &[u8],
    dir: &std::path::Path,
    volumes_root: &std::path::Path,
) -> Vec<MountView> {
    SpecView::parse(json, dir, volumes_root)
        .mounts
        .into_iter()
        .filter(|m| m.name.is_some())
        .collect()
}
