//! One lock per task. The driver's state lock is released while a new
//! task's own namespace and interfaces are made (those steps touch nothing
//! another task uses, and holding the state lock through them made a node's
//! task starts wait on each other); this lock keeps an attach and a detach of
//! the same task from overlapping meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::Mutex as AsyncMutex;
use tokio::sync::OwnedMutexGuard;

/// The per-task locks now held or waited for.
#[derive(Default)]
pub(crate) struct TaskLocks {
    map: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Holds one task's lock; the entry goes when nobody else wants it.
pub(crate) struct TaskGuard<'a> {
    locks: &'a TaskLocks,
    task: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl TaskLocks {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AsyncMutex<()>>>> {
        // A panic elsewhere while the map was held leaves it usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `task`'s lock.
    pub(crate) async fn lock(&self, task: &str) -> TaskGuard<'_> {
        let lock = self.entries().entry(task.to_string()).or_default().clone();
        TaskGuard {
            locks: self,
            task: task.to_string(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.entries();
        // Only the map's own handle left: nobody holds or waits for it.
        if map
            .get(&self.task)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_lock_is_exclusive_and_its_entry_goes_with_the_last_holder() {
        let locks = TaskLocks::default();
        let first = locks.lock("a").await;
        // Another task is not held up.
        let other = locks.lock("b").await;
        drop(other);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("a"));
        assert!(
            waiting.await.is_err(),
            "a second holder of the same task got in"
        );
        drop(first);
        assert!(locks.entries().is_empty());
        let again = locks.lock("a").await;
        drop(again);
        assert!(locks.entries().is_empty());
    }
}
