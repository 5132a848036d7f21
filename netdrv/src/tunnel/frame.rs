//! The frame format (pure): how one plaintext packet is sealed into one UDP
//! datagram between tunnel ends, and opened again.
//!
//! ```text
//!  0               1               2               3
//!  +---------------+-----------------------------------------------+
//!  |    version    |              reserved (zero)                  |
//!  +---------------+-----------------------------------------------+
//!  |                            key ID                             |
//!  +---------------------------------------------------------------+
//!  |                             salt                              |
//!  +---------------------------------------------------------------+
//!  |                       counter (64 bits)                       |
//!  +---------------------------------------------------------------+
//!  |                 ciphertext of the inner packet                |
//!  +---------------------------------------------------------------+
//!  |                        tag (16 bytes)                         |
//!  +---------------------------------------------------------------+
//! ```
//!
//! All fields are big-endian. The whole 20-byte header is the AEAD's
//! associated data, so none of it can be changed without the tag failing;
//! the nonce is `salt || counter`. The salt is random per tunnel run and
//! the counter grows by one per frame from a start taken from the clock,
//! so a sender never repeats a nonce under its key (see `keys` for why the
//! key is per sender) and its counters keep growing across restarts, which
//! is what lets receivers keep one replay window per sender and key.

use ring::aead;

/// The format described above.
pub const VERSION: u8 = 1;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 20;
/// Bytes after it.
pub const TAG_LEN: usize = 16;
/// What sealing adds to a packet.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// The clear fields of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The ID of the keyring key the frame is sealed under.
    pub key_id: u32,
    /// The sender's random salt for this run.
    pub salt: u32,
    /// The sender's frame counter.
    pub counter: u64,
}

/// Why a datagram is not an acceptable frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than a header and a tag.
    Short,
    /// A version or reserved bits this code does not know.
    Unknown,
    /// The tag does not match: forged, damaged, or another key.
    Auth,
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = VERSION;
        h[4..8].copy_from_slice(&self.key_id.to_be_bytes());
        h[8..12].copy_from_slice(&self.salt.to_be_bytes());
        h[12..20].copy_from_slice(&self.counter.to_be_bytes());
        h
    }

    /// Reads the header of `frame` (nothing is authenticated yet).
    pub fn decode(frame: &[u8]) -> Result<Header, FrameError> {
        if frame.len() < OVERHEAD {
            return Err(FrameError::Short);
        }
        if frame[0] != VERSION || frame[1..4] != [0, 0, 0] {
            return Err(FrameError::Unknown);
        }
        let word = |at: usize| {
            u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&frame[12..20]);
        Ok(Header {
            key_id: word(4),
            salt: word(8),
            counter: u64::from_be_bytes(counter),
        })
    }

    fn nonce(&self) -> aead::Nonce {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..4].copy_from_slice(&self.salt.to_be_bytes());
        n[4..].copy_from_slice(&self.counter.to_be_bytes());
        aead::Nonce::assume_unique_for_key(n)
    }
}

/// Seals in place: `buf[HEADER_LEN..HEADER_LEN + len]` holds the packet;
/// the header goes in front and the tag after it. Returns the frame's
/// length. `buf` must have [`TAG_LEN`] bytes to spare after the packet.
///
/// The caller guarantees that `header` (salt and counter) is never used
/// twice with `key`.
pub fn seal(key: &aead::LessSafeKey, header: &Header, buf: &mut [u8], len: usize) -> usize {
    let h = header.encode();
    buf[..HEADER_LEN].copy_from_slice(&h);
    let end = HEADER_LEN + len;
    let tag = key
        .seal_in_place_separate_tag(
            header.nonce(),
            aead::Aad::from(h),
            &mut buf[HEADER_LEN..end],
        )
        // Proven invariant: ring refuses only inputs beyond 2^36 bytes,
        // far over any datagram.
        .expect("AEAD input within bounds");
    buf[end..end + TAG_LEN].copy_from_slice(tag.as_ref());
    end + TAG_LEN
}

/// Opens `frame` (whose header is `header`, from [`Header::decode`]) in
/// place; returns the packet.
pub fn open<'a>(
    key: &aead::LessSafeKey,
    header: &Header,
    frame: &'a mut [u8],
) -> Result<&'a [u8], FrameError> {
    let (h, body) = frame.split_at_mut(HEADER_LEN);
    let aad = aead::Aad::from(&*h);
    key.open_in_place(header.nonce(), aad, body)
        .map(|plain| &*plain)
        .map_err(|_| FrameError::Auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::keys::sender_key;
    use crate::tunnel::keys::Key;

    fn key(id: u32, fill: u8) -> aead::LessSafeKey {
        sender_key(
            &Key {
                id,
                secret: [fill; 32],
            },
            "192.168.77.1".parse().unwrap(),
        )
    }

    fn sealed(k: &aead::LessSafeKey, h: &Header, packet: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; packet.len() + OVERHEAD];
        buf[HEADER_LEN..HEADER_LEN + packet.len()].copy_from_slice(packet);
        let n = seal(k, h, &mut buf, packet.len());
        buf.truncate(n);
        buf
    }

    const H: Header = Header {
        key_id: 7,
        salt: 0xdead_beef,
        counter: 1 << 40,
    };

    #[test]
    fn header_round_trip() {
        let bytes = H.encode();
        let mut frame = bytes.to_vec();
        frame.extend_from_slice(&[0; TAG_LEN]);
        assert_eq!(Header::decode(&frame), Ok(H));
        assert_eq!(
            Header::decode(&frame[..OVERHEAD - 1]),
            Err(FrameError::Short)
        );
        frame[0] = 2;
        assert_eq!(Header::decode(&frame), Err(FrameError::Unknown));
        frame[0] = VERSION;
        frame[2] = 1;
        assert_eq!(Header::decode(&frame), Err(FrameError::Unknown));
    }

    #[test]
    fn seal_then_open() {
        let k = key(7, 1);
        let packet = b"an inner packet".to_vec();
        let mut frame = sealed(&k, &H, &packet);
        assert_eq!(frame.len(), packet.len() + OVERHEAD);
        assert!(!frame.windows(packet.len()).any(|w| w == packet));
        let h = Header::decode(&frame).unwrap();
        assert_eq!(open(&k, &h, &mut frame).unwrap(), &packet[..]);
    }

    #[test]
    fn empty_packet() {
        let k = key(7, 1);
        let mut frame = sealed(&k, &H, &[]);
        assert_eq!(open(&k, &H, &mut frame).unwrap(), &[] as &[u8]);
    }

    #[test]
    fn any_changed_byte_is_rejected() {
        let k = key(7, 1);
        let frame = sealed(&k, &H, b"0123456789abcdef");
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            // A changed header decodes to other fields (or not at all);
            // either way the tag covers it.
            let h = Header::decode(&bad).unwrap_or(H);
            assert_eq!(open(&k, &h, &mut bad), Err(FrameError::Auth), "byte {i}");
        }
    }

    #[test]
    fn truncated_frame_is_rejected() {
        let k = key(7, 1);
        let mut frame = sealed(&k, &H, b"0123456789abcdef");
        frame.pop();
        assert_eq!(open(&k, &H, &mut frame), Err(FrameError::Auth));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let mut frame = sealed(&key(7, 1), &H, b"payload");
        assert_eq!(open(&key(7, 2), &H, &mut frame), Err(FrameError::Auth));
        let mut frame = sealed(&key(7, 1), &H, b"payload");
        // Same secret, other ID: another derived key.
        assert_eq!(open(&key(8, 1), &H, &mut frame), Err(FrameError::Auth));
    }

    #[test]
    fn another_senders_key_is_rejected() {
        let secret = Key {
            id: 7,
            secret: [1; 32],
        };
        let a = sender_key(&secret, "192.168.77.1".parse().unwrap());
        let b = sender_key(&secret, "192.168.77.2".parse().unwrap());
        let mut frame = sealed(&a, &H, b"payload");
        assert_eq!(open(&b, &H, &mut frame), Err(FrameError::Auth));
    }
}

#[cfg(test)]
mod cost {
    use std::time::Instant;

    use ring::aead;

    /// Prints what sealing one full-size VXLAN datagram costs with each
    /// AEAD ring offers (the reason for `keys::ALGORITHM`).
    #[test]
    #[ignore = "measurement: prints ns per sealed frame for each AEAD"]
    fn seal_cost_per_algorithm() {
        for (name, alg) in [
            ("AES-256-GCM", &aead::AES_256_GCM),
            ("ChaCha20-Poly1305", &aead::CHACHA20_POLY1305),
        ] {
            let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &[7u8; 32]).unwrap());
            let mut buf = vec![0u8; 1500];
            let rounds = 200_000u64;
            let started = Instant::now();
            for i in 0..rounds {
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&i.to_be_bytes());
                let nonce = aead::Nonce::assume_unique_for_key(n);
                let tag = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from([0u8; 20]), &mut buf)
                    .unwrap();
                let _ = std::hint::black_box(tag);
            }
            let ns = started.elapsed().as_nanos() as f64 / rounds as f64;
            println!("{name}: {ns:.0} ns per 1500-byte frame");
        }
    }
}
