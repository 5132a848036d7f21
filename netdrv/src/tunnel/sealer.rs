//! The sending end's state (pure): the key it seals with, its salt and
//! its counter.

use std::net::Ipv4Addr;

use ring::aead;

use super::frame;
use super::frame::Header;
use super::keys::sender_key;
use super::keys::Keyring;

/// Seals this node's packets under the keyring's primary key.
pub struct Sealer {
    local: Ipv4Addr,
    salt: u32,
    /// The last counter used.
    counter: u64,
    key_id: u32,
    key: aead::LessSafeKey,
}

impl Sealer {
    /// A sealer for the node at `local` (its data-path address) with
    /// `ring` (valid: see [`Keyring::validate`]). `salt` is random per run;
    /// `start` is the current time in nanoseconds since the epoch, so the
    /// counters of a run continue above those of runs before it (a node
    /// seals far fewer than one frame per nanosecond).
    pub fn new(local: Ipv4Addr, ring: &Keyring, salt: u32, start: u64) -> Sealer {
        let (key_id, key) = primary(local, ring);
        Sealer {
            local,
            salt,
            counter: start,
            key_id,
            key,
        }
    }

    /// Switches to `ring`'s primary key (the counter goes on).
    pub fn set_keys(&mut self, ring: &Keyring) {
        (self.key_id, self.key) = primary(self.local, ring);
    }

    /// Seals the packet at `buf[HEADER_LEN..HEADER_LEN + len]` in place
    /// (see [`frame::seal`]); returns the frame's length.
    pub fn seal(&mut self, buf: &mut [u8], len: usize) -> usize {
        self.counter += 1;
        let header = Header {
            key_id: self.key_id,
            salt: self.salt,
            counter: self.counter,
        };
        frame::seal(&self.key, &header, buf, len)
    }
}

fn primary(local: Ipv4Addr, ring: &Keyring) -> (u32, aead::LessSafeKey) {
    let key = ring
        .get(ring.primary)
        // Proven invariant: rings are validated before they get here.
        .expect("validated keyring has its primary key");
    (key.id, sender_key(key, local))
}
