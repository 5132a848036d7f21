//! The keyring and the AEAD keys derived from it (pure).
//!
//! Every node holds the same secrets (swarm's network bootstrap keys), so
//! a secret is never used as an AEAD key as it is: each sender gets its own
//! key, HKDF-SHA256 of the secret with a fixed label, the key ID and the
//! sender's data-path address. Two nodes therefore never seal under the
//! same key, and nonces (a per-run random salt plus a counter) only have to
//! be unique per node, not across the cluster. It also binds a frame to the
//! address it was sent from: a frame replayed from another source address
//! is opened under another key and fails.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

use ring::aead;
use ring::hkdf;

use crate::error::Error;
use crate::error::Result;

/// The AEAD every frame is sealed with. AES-256-GCM rather than
/// ChaCha20-Poly1305: ring runs it on the CPU's AES and carry-less
/// multiply instructions (VAES/VPCLMULQDQ where present), measured about
/// twice as fast per frame as ChaCha20-Poly1305 on these hosts; the kernel
/// lacking a GCM module does not matter in user space. A CPU without
/// AES-NI would favour ChaCha20; the frame version is where a switch
/// would be recorded.
pub static ALGORITHM: &aead::Algorithm = &aead::AES_256_GCM;

/// Salt of the HKDF extract step: fixed, so all nodes derive alike.
const HKDF_SALT: &[u8] = b"shoal overlay seal";
/// Label of the expand step, naming what the key is for and the version.
const HKDF_LABEL: &[u8] = b"shoal overlay seal v1 sender key";

/// How many keys a ring may hold: swarmkit keeps three network keys
/// (previous, current, next) during a rotation.
pub const MAX_KEYS: usize = 3;

/// One shared secret with its ID (the ID travels in every frame).
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// Names the key in frames; unique within a ring.
    pub id: u32,
    /// The shared secret, never used as an AEAD key directly.
    pub secret: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys a tunnel accepts, and the one it sends with.
///
/// A rotation that drops no frame goes in three steps, each applied on
/// every node before the next: add the new key; make it primary; remove
/// the old one. Frames under any key of the ring are accepted, so nodes
/// between two steps still understand each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    /// Between one and [`MAX_KEYS`] keys with distinct IDs.
    pub keys: Vec<Key>,
    /// The ID of the key frames are sealed with; one of `keys`.
    pub primary: u32,
}

impl Keyring {
    /// Checks the ring's shape: 1 to [`MAX_KEYS`] keys, distinct IDs, the
    /// primary among them.
    pub fn validate(&self) -> Result<()> {
        let invalid = |what: String| {
            Err(Error::io("check the tunnel keyring")(io::Error::new(
                io::ErrorKind::InvalidInput,
                what,
            )))
        };
        if self.keys.is_empty() || self.keys.len() > MAX_KEYS {
            return invalid(format!(
                "a keyring holds 1 to {MAX_KEYS} keys, not {}",
                self.keys.len()
            ));
        }
        for (i, k) in self.keys.iter().enumerate() {
            if self.keys[..i].iter().any(|o| o.id == k.id) {
                return invalid(format!("key ID {} appears twice", k.id));
            }
        }
        if self.get(self.primary).is_none() {
            return invalid(format!(
                "primary key {} is not in the keyring",
                self.primary
            ));
        }
        Ok(())
    }

    /// The key with ID `id`, if the ring has it.
    pub fn get(&self, id: u32) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Whether `other` holds key `id` with the same secret, so what was
    /// derived from it (and the replay windows under it) stays valid.
    pub fn same_key(&self, other: &Keyring, id: u32) -> bool {
        matches!((self.get(id), other.get(id)), (Some(a), Some(b)) if a == b)
    }
}

/// The AEAD key `sender` seals with under `key` (and its receivers open
/// with).
pub fn sender_key(key: &Key, sender: Ipv4Addr) -> aead::LessSafeKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&key.secret);
    let id = key.id.to_be_bytes();
    let addr = sender.octets();
    let info = [HKDF_LABEL, &id[..], &addr[..]];
    let okm = prk
        .expand(&info, ALGORITHM)
        // Proven invariant: an AEAD key length is far below HKDF-SHA256's
        // limit of 255 blocks.
        .expect("HKDF output length for an AEAD key");
    aead::LessSafeKey::new(aead::UnboundKey::from(okm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32, fill: u8) -> Key {
        Key {
            id,
            secret: [fill; 32],
        }
    }

    #[test]
    fn validation() {
        let ok = Keyring {
            keys: vec![key(1, 1), key(2, 2)],
            primary: 2,
        };
        assert!(ok.validate().is_ok());
        let empty = Keyring {
            keys: vec![],
            primary: 1,
        };
        assert!(empty.validate().is_err());
        let four = Keyring {
            keys: (1..=4).map(|i| key(i, 0)).collect(),
            primary: 1,
        };
        assert!(four.validate().is_err());
        let dup = Keyring {
            keys: vec![key(1, 1), key(1, 2)],
            primary: 1,
        };
        assert!(dup.validate().is_err());
        let stray = Keyring {
            keys: vec![key(1, 1)],
            primary: 9,
        };
        assert!(stray.validate().is_err());
    }

    #[test]
    fn same_key_compares_secrets() {
        let a = Keyring {
            keys: vec![key(1, 1), key(2, 2)],
            primary: 1,
        };
        let b = Keyring {
            keys: vec![key(1, 1), key(2, 3)],
            primary: 2,
        };
        assert!(a.same_key(&b, 1));
        assert!(!a.same_key(&b, 2));
        assert!(!a.same_key(&b, 3));
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", key(7, 0xab));
        assert!(shown.contains('7'));
        assert!(!shown.contains("171"), "{shown}");
    }
}
