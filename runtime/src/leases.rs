//! Leases that keep what container creations make (their writable
//! snapshots) from containerd's garbage collection until the container
//! records refer to it. Creations that overlap share one lease: a node
//! starting a service's replicas made and deleted a lease per container,
//! two metadata writes each behind containerd's single writer, and they
//! took as long as the rest of the create together.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::Duration;
use std::time::Instant;

use crate::error::Result;
use crate::Containerd;

/// How long a lease takes new creations. Far below the lease's own expiry
/// (an hour), so a joined lease outlives any creation.
const SHARE_FOR: Duration = Duration::from_secs(600);

/// The creation leases in use.
#[derive(Default)]
pub(crate) struct CreationLeases {
    book: Mutex<Book>,
    // One lease made at a time: creations that arrive meanwhile join it.
    making: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Book {
    /// The lease new creations join, and when it was made.
    current: Option<(String, Instant)>,
    /// Creations holding each lease.
    holders: HashMap<String, usize>,
}

impl Book {
    fn join(&mut self) -> Option<String> {
        let (id, made) = self.current.as_ref()?;
        if made.elapsed() > SHARE_FOR {
            self.current = None;
            return None;
        }
        *self.holders.get_mut(id)? += 1;
        Some(id.clone())
    }

    /// Whether `id`'s last holder left (the lease is to be deleted).
    fn leave(&mut self, id: &str) -> bool {
        let Some(n) = self.holders.get_mut(id) else {
            return false;
        };
        *n -= 1;
        if *n > 0 {
            return false;
        }
        self.holders.remove(id);
        if self.current.as_ref().is_some_and(|(c, _)| c == id) {
            self.current = None;
        }
        true
    }
}

/// One creation's hold on a shared lease; [`CreationLease::release`] it
/// once the container record exists (or the creation failed).
pub struct CreationLease {
    ctd: Containerd,
    id: String,
    released: bool,
}

impl CreationLease {
    /// The lease's ID, for the calls that make what it protects.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Leaves the lease; the last creation to leave deletes it.
    pub async fn release(mut self) {
        self.released = true;
        if self.ctd.lease_book().leave(&self.id) {
            self.ctd.delete_lease(&self.id).await;
        }
    }
}

impl Drop for CreationLease {
    fn drop(&mut self) {
        // A creation cancelled half-way: the lease goes in the background
        // (or expires by itself outside a runtime).
        if self.released || !self.ctd.lease_book().leave(&self.id) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (ctd, id) = (self.ctd.clone(), self.id.clone());
            rt.spawn(async move { ctd.delete_lease(&id).await });
        }
    }
}

impl Containerd {
    fn lease_book(&self) -> MutexGuard<'_, Book> {
        let leases = self.creation_leases();
        // The book stays consistent across a panic elsewhere.
        leases.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A lease protecting what a container creation makes until the
    /// container record exists, shared with the creations under way.
    pub async fn creation_lease(&self) -> Result<CreationLease> {
        let lease = |id: String| CreationLease {
            ctd: self.clone(),
            id,
            released: false,
        };
        if let Some(id) = self.lease_book().join() {
            return Ok(lease(id));
        }
        let _making = self.creation_leases().making.lock().await;
        if let Some(id) = self.lease_book().join() {
            return Ok(lease(id));
        }
        let id = format!("shoal-create-{}", random_suffix());
        self.create_lease(&id).await?;
        let mut book = self.lease_book();
        book.current = Some((id.clone(), Instant::now()));
        book.holders.insert(id.clone(), 1);
        drop(book);
        Ok(lease(id))
    }
}

fn random_suffix() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    // The system RNG does not fail on Linux.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_holder_deletes_and_no_one_joins_a_lease_being_deleted() {
        let mut book = Book::default();
        assert_eq!(book.join(), None);
        book.current = Some(("a".into(), Instant::now()));
        book.holders.insert("a".into(), 1);
        assert_eq!(book.join().as_deref(), Some("a"));
        assert!(!book.leave("a"));
        assert!(book.leave("a"));
        assert_eq!(book.join(), None);
        // Unknown or already gone: nothing to delete.
        assert!(!book.leave("a"));
    }

    #[test]
    fn an_old_lease_takes_no_one_new_but_its_holders_still_count() {
        let mut book = Book::default();
        let long_ago = Instant::now() - SHARE_FOR - Duration::from_secs(1);
        book.current = Some(("old".into(), long_ago));
        book.holders.insert("old".into(), 2);
        assert_eq!(book.join(), None);
        book.current = Some(("new".into(), Instant::now()));
        book.holders.insert("new".into(), 1);
        assert!(!book.leave("old"));
        assert!(book.leave("old"));
        assert_eq!(book.join().as_deref(), Some("new"));
    }
}
