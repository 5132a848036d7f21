//! Encryption at rest: an AEAD data key (DEK) seals every raft log entry, vote
//! and snapshot; with autolock the DEK is itself sealed by a key-encrypting key
//! (KEK) derived from the manager unlock key (swarmkit `walwrap`/`snapwrap`).

use std::path::Path;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::general_purpose::STANDARD_NO_PAD as RAW_B64;
use base64::Engine;
use ring::aead;
use ring::rand::SecureRandom;
use ring::rand::SystemRandom;
use serde::Deserialize;
use serde::Serialize;

/// Errors of sealing and key handling.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Data did not authenticate: wrong key or corrupted file.
    #[error("decryption failed: wrong key or corrupted data")]
    Open,
    /// The unlock key is malformed.
    #[error("invalid unlock key")]
    BadUnlockKey,
    /// The key file could not be read or written.
    #[error("key file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The key file is malformed.
    #[error("key file is corrupt")]
    Corrupt,
}

const NONCE_LEN: usize = 12;
/// Prefix of manager unlock keys, as swarmkit prints them.
pub const UNLOCK_KEY_PREFIX: &str = "SWMKEY-1-";

/// Seals and opens byte strings with one AES-256-GCM key.
pub struct Sealer {
    key: aead::LessSafeKey,
    raw: [u8; 32],
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer for a 32-byte key.
    pub fn new(raw: [u8; 32]) -> Self {
        let unbound =
            aead::UnboundKey::new(&aead::AES_256_GCM, &raw).unwrap_or_else(|_| unreachable!());
        Sealer {
            key: aead::LessSafeKey::new(unbound),
            raw,
            rng: SystemRandom::new(),
        }
    }

    /// A sealer with a fresh random key.
    pub fn generate() -> Self {
        Sealer::new(random32())
    }

    /// The raw key (to be wrapped or stored).
    pub fn raw(&self) -> &[u8; 32] {
        &self.raw
    }

    /// Encrypts `plain`; the output is nonce || ciphertext || tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .unwrap_or_else(|_| unreachable!("the system RNG does not fail"));
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::empty(),
                &mut buf,
            )
            .unwrap_or_else(|_| unreachable!("sealing a buffer in memory does not fail"));
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out
    }

    /// Decrypts what [`Sealer::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::empty(), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

fn random32() -> [u8; 32] {
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .unwrap_or_else(|_| unreachable!("the system RNG does not fail"));
    k
}

/// Makes a new manager unlock key (`SWMKEY-1-...`).
pub fn new_unlock_key() -> String {
    // swarmkit writes the key body without base64 padding.
    format!("{UNLOCK_KEY_PREFIX}{}", RAW_B64.encode(random32()))
}

pub(crate) fn kek_from_unlock_key(key: &str) -> Result<Sealer, SealError> {
    let body = key
        .trim()
        .strip_prefix(UNLOCK_KEY_PREFIX)
        .ok_or(SealError::BadUnlockKey)?;
    // Keys made before the switch to unpadded bodies still unlock.
    let raw = RAW_B64
        .decode(body.trim_end_matches('='))
        .map_err(|_| SealError::BadUnlockKey)?;
    let raw: [u8; 32] = raw.try_into().map_err(|_| SealError::BadUnlockKey)?;
    Ok(Sealer::new(raw))
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    /// Base64 of the DEK, sealed by the KEK when `locked`.
    dek: String,
    locked: bool,
}

/// The DEK file under the data root.
#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
}

/// What [`KeyStore::load`] found.
#[derive(Debug)]
pub enum LoadedKey {
    /// No key yet (a node that never joined a swarm).
    Missing,
    /// The DEK is usable.
    Ready(Box<Sealer>),
    /// The DEK is wrapped: the manager unlock key is needed.
    Locked,
}

impl KeyStore {
    /// The key file `dir/raft-dek.json`.
    pub fn new(dir: &Path) -> Self {
        KeyStore {
            path: dir.join("raft-dek.json"),
        }
    }

    /// Reads the key file.
    pub fn load(&self) -> Result<LoadedKey, SealError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LoadedKey::Missing),
            Err(e) => return Err(SealError::Io(self.path.clone(), e)),
        };
        let f: KeyFile = serde_json::from_slice(&bytes).map_err(|_| SealError::Corrupt)?;
        if f.locked {
            return Ok(LoadedKey::Locked);
        }
        Ok(LoadedKey::Ready(Box::new(Sealer::new(decode32(&f.dek)?))))
    }

    /// Opens a locked key file with the unlock key.
    pub fn unlock(&self, unlock_key: &str) -> Result<Sealer, SealError> {
        let bytes = std::fs::read(&self.path).map_err(|e| SealError::Io(self.path.clone(), e))?;
        let f: KeyFile = serde_json::from_slice(&bytes).map_err(|_| SealError::Corrupt)?;
        let kek = kek_from_unlock_key(unlock_key)?;
        let sealed = B64.decode(&f.dek).map_err(|_| SealError::Corrupt)?;
        let raw = kek.open(&sealed)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| SealError::Corrupt)?;
        Ok(Sealer::new(raw))
    }

    /// Writes the DEK, wrapped by `unlock_key` when given; durable on return.
    pub fn save(&self, dek: &Sealer, unlock_key: Option<&str>) -> Result<(), SealError> {
        let f = match unlock_key {
            Some(k) => KeyFile {
                dek: B64.encode(kek_from_unlock_key(k)?.seal(dek.raw())),
                locked: true,
            },
            None => KeyFile {
                dek: B64.encode(dek.raw()),
                locked: false,
            },
        };
        let bytes = serde_json::to_vec(&f).map_err(|_| SealError::Corrupt)?;
        write_durable(&self.path, &bytes).map_err(|e| SealError::Io(self.path.clone(), e))
    }
}

fn decode32(s: &str) -> Result<[u8; 32], SealError> {
    B64.decode(s)
        .map_err(|_| SealError::Corrupt)?
        .try_into()
        .map_err(|_| SealError::Corrupt)
}

/// Writes a file atomically and durably: temp file, fsync, rename, fsync dir.
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering;
    // A temp name of its own per write: two writers of one file must not
    // rename each other's temp file away.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let s = Sealer::generate();
        let sealed = s.seal(b"top secret");
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        assert_eq!(s.open(&sealed).unwrap(), b"top secret");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(s.open(&bad).is_err());
        assert!(Sealer::generate().open(&sealed).is_err());
    }

    #[test]
    fn keystore_locks_with_unlock_key() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::new(dir.path());
        assert!(matches!(ks.load().unwrap(), LoadedKey::Missing));
        let dek = Sealer::generate();
        ks.save(&dek, None).unwrap();
        assert!(matches!(ks.load().unwrap(), LoadedKey::Ready(_)));
        let key = new_unlock_key();
        ks.save(&dek, Some(&key)).unwrap();
        assert!(matches!(ks.load().unwrap(), LoadedKey::Locked));
        assert!(ks.unlock(&new_unlock_key()).is_err());
        assert!(ks.unlock("garbage").is_err());
        let back = ks.unlock(&key).unwrap();
        assert_eq!(back.raw(), dek.raw());
    }
}
