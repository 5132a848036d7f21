//! The network key manager (swarmkit's `keymanager`): the leader keeps the
//! cluster's data-path keys, the ones encrypted overlays seal with, and
//! rotates them.
//!
//! Every rotation period a new key is added and the oldest beyond three is
//! dropped. Nodes seal with the second newest key ([`primary`]) and accept
//! all three, so a new key reaches every node a whole period before anyone
//! seals with it, and an old one is still accepted a period after its last
//! use: a rotation drops no packet as long as the records reach every node
//! within a period.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ring::rand::SecureRandom;
use tokio_util::sync::CancellationToken;

use crate::model::NetworkKey;
use crate::store::Store;

/// swarmkit's rotation period.
pub const ROTATION: Duration = Duration::from_secs(12 * 60 * 60);
/// How many keys a node accepts.
pub const KEEP: usize = 3;
/// Overrides [`ROTATION`] (seconds), for tests that watch a rotation.
pub const ROTATION_ENV: &str = "SHOAL_NETWORK_KEY_ROTATION_SECS";

/// The rotation period in force.
pub fn rotation() -> Duration {
    std::env::var(ROTATION_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(ROTATION)
}

/// The keys after a check at `now` (Unix seconds): `None` when nothing is
/// due. The first key is made at once; later ones every `every`.
pub fn next_keys(
    keys: &[NetworkKey],
    now: u64,
    every: Duration,
    fresh: impl FnOnce(u32) -> NetworkKey,
) -> Option<Vec<NetworkKey>> {
    let newest = keys.iter().max_by_key(|k| k.id);
    let due = match newest {
        None => true,
        Some(k) => now >= k.created.saturating_add(every.as_secs()),
    };
    if !due {
        return None;
    }
    let id = newest.map_or(1, |k| k.id.wrapping_add(1).max(1));
    let mut out: Vec<NetworkKey> = keys.to_vec();
    out.sort_by_key(|k| k.id);
    out.push(fresh(id));
    let extra = out.len().saturating_sub(KEEP);
    out.drain(..extra);
    Some(out)
}

/// The key nodes seal with: the second newest (the newest is only
/// accepted until the next rotation), or the only one.
pub fn primary(keys: &[NetworkKey]) -> Option<u32> {
    let mut ids: Vec<u32> = keys.iter().map(|k| k.id).collect();
    ids.sort_unstable();
    match ids.len() {
        0 => None,
        1 => Some(ids[0]),
        n => Some(ids[n - 2]),
    }
}

/// A new random key.
pub fn generate(id: u32, now: u64) -> NetworkKey {
    let mut secret = [0u8; 32];
    // The system's generator does not fail on Linux; a zero key would only
    // be refused by the nodes' key check, never used silently.
    if ring::rand::SystemRandom::new().fill(&mut secret).is_err() {
        tracing::error!("no randomness for a network key");
    }
    NetworkKey {
        id,
        secret: base64::engine::general_purpose::STANDARD.encode(secret),
        created: now,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs on the leader until `cancel` fires: makes the first key, then
/// rotates every [`rotation`].
pub async fn run(store: Arc<Store>, cancel: CancellationToken) {
    let every = rotation();
    // Checked often enough that a short test period is kept to the second.
    let check = (every / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let now = unix_now();
        let done = store
            .update(|tx| {
                let Some(mut c) = tx.cluster() else {
                    return Ok(false);
                };
                match next_keys(&c.network_bootstrap_keys, now, every, |id| {
                    generate(id, now)
                }) {
                    Some(keys) => {
                        c.network_bootstrap_keys = keys;
                        tx.update(c)?;
                        Ok(true)
                    }
                    None => Ok(false),
                }
            })
            .await;
        match done {
            Ok(true) => tracing::info!("network keys rotated"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "network key rotation failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(check) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32, created: u64) -> NetworkKey {
        NetworkKey {
            id,
            secret: format!("s{id}"),
            created,
        }
    }

    #[test]
    fn the_first_key_is_made_at_once_and_the_next_after_a_period() {
        let every = Duration::from_secs(100);
        let first = next_keys(&[], 1000, every, |id| key(id, 1000)).unwrap();
        assert_eq!(first, vec![key(1, 1000)]);
        assert_eq!(next_keys(&first, 1099, every, |id| key(id, 1099)), None);
        let second = next_keys(&first, 1100, every, |id| key(id, 1100)).unwrap();
        assert_eq!(second, vec![key(1, 1000), key(2, 1100)]);
    }

    #[test]
    fn three_keys_are_kept_and_the_second_newest_seals() {
        let every = Duration::from_secs(10);
        let mut keys = Vec::new();
        let mut now = 0;
        let mut primaries = Vec::new();
        for _ in 0..5 {
            keys = next_keys(&keys, now, every, |id| key(id, now)).unwrap();
            primaries.push(primary(&keys).unwrap());
            now += 10;
        }
        assert_eq!(keys.iter().map(|k| k.id).collect::<Vec<_>>(), vec![3, 4, 5]);
        // A key seals only after a whole period of being accepted.
        assert_eq!(primaries, vec![1, 1, 2, 3, 4]);
        assert_eq!(primary(&[]), None);
    }

    #[test]
    fn generated_keys_are_32_random_bytes_and_hide_in_debug() {
        let a = generate(7, 1);
        let b = generate(7, 1);
        assert_ne!(a.secret, b.secret);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a.secret)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert!(!format!("{a:?}").contains(&a.secret));
    }
}
