//! Which containerd shim process a task's container runs under.
//!
//! containerd's runc v2 shim serves every container whose OCI spec carries
//! the same `io.containerd.runc.v2.group` annotation from one process (the
//! CRI plugin groups a pod this way). A shim costs about 2.6 MB of
//! proportional memory whatever it holds, so one per container dominates a
//! node's overhead per task; but a shim that dies takes all its containers
//! with it. Tasks are grouped per service in buckets of consecutive slots:
//! a crash takes down at most one bucket of one service, which the
//! orchestrator replaces, and never another service's tasks. The figures
//! behind the default size are in the README ("Density").

use swarm::model::Task;

/// The OCI annotation the runc v2 shim groups containers by.
pub const GROUP_ANNOTATION: &str = "io.containerd.runc.v2.group";

/// Tasks of one service per shim unless configured otherwise.
pub const DEFAULT_GROUP_SIZE: u64 = 8;

/// The environment variable that sets the group size (0 or 1: a shim per
/// container, as dockerd runs them).
pub const GROUP_SIZE_ENV: &str = "SHOAL_SHIM_GROUP_SIZE";

/// The group size from the environment, else the default.
pub fn size_from_env() -> u64 {
    std::env::var(GROUP_SIZE_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_GROUP_SIZE)
}

/// The shim group of `task` with groups of `size` slots, or `None` for a
/// shim of its own. A replicated task's bucket follows its slot, so a
/// replacement joins its predecessor's group; a global service has one
/// task per node, so its tasks on a node share one group.
pub fn shim_group(task: &Task, size: u64) -> Option<String> {
    if size <= 1 {
        return None;
    }
    let service = task.api.service_id.as_deref().filter(|s| !s.is_empty())?;
    let slot = task.api.slot.unwrap_or(0).max(1) as u64;
    Some(format!("shoal-{service}-{}", (slot - 1) / size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(service: &str, slot: i64) -> Task {
        let mut t = Task::default();
        t.api.service_id = Some(service.into());
        t.api.slot = Some(slot);
        t
    }

    #[test]
    fn consecutive_slots_of_a_service_share_a_group() {
        assert_eq!(shim_group(&task("s1", 1), 4).as_deref(), Some("shoal-s1-0"));
        assert_eq!(shim_group(&task("s1", 4), 4).as_deref(), Some("shoal-s1-0"));
        assert_eq!(shim_group(&task("s1", 5), 4).as_deref(), Some("shoal-s1-1"));
        assert_eq!(shim_group(&task("s2", 1), 4).as_deref(), Some("shoal-s2-0"));
    }

    #[test]
    fn global_tasks_group_per_service_and_size_one_does_not_group() {
        assert_eq!(shim_group(&task("g", 0), 4).as_deref(), Some("shoal-g-0"));
        assert_eq!(shim_group(&task("s1", 3), 1), None);
        assert_eq!(shim_group(&task("s1", 3), 0), None);
        assert_eq!(shim_group(&task("", 3), 4), None);
    }
}
