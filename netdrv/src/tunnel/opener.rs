//! The receiving end's state (pure): the keys frames may be under, and a
//! replay window per sender and key.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ring::aead;

use super::frame;
use super::frame::FrameError;
use super::frame::Header;
use super::inner;
use super::keys::sender_key;
use super::keys::Keyring;
use super::replay::ReplayWindow;

/// Why a datagram was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a frame of a known version.
    Malformed,
    /// Under no key of the ring, or the tag does not match.
    Auth,
    /// A counter already accepted, or too old to tell.
    Replay,
    /// Authentic, but the packet inside is not a VXLAN datagram from the
    /// sender to this node.
    Inner,
}

/// What a receiver keeps per (sender address, key ID): created only for a
/// frame that authenticated, so unauthenticated traffic cannot grow it.
struct Peer {
    key: aead::LessSafeKey,
    window: ReplayWindow,
}

/// Opens the frames sent to this node.
pub struct Opener {
    local: Ipv4Addr,
    data_port: u16,
    ring: Arc<Keyring>,
    peers: HashMap<(Ipv4Addr, u32), Peer>,
}

impl Opener {
    /// An opener for the node at `local` whose VXLAN port is `data_port`,
    /// accepting the keys of `ring`.
    pub fn new(local: Ipv4Addr, data_port: u16, ring: Arc<Keyring>) -> Opener {
        Opener {
            local,
            data_port,
            ring,
            peers: HashMap::new(),
        }
    }

    /// Accepts the keys of `ring` from now on. Replay windows of keys that
    /// stay (same ID and secret) are kept: resetting them would let frames
    /// seen before the change be replayed.
    pub fn set_keys(&mut self, ring: Arc<Keyring>) {
        let old = std::mem::replace(&mut self.ring, ring);
        self.peers
            .retain(|(_, id), _| old.same_key(&self.ring, *id));
    }

    /// Opens `frame`, received from `sender`, in place; returns the ID of
    /// the key it was under and the VXLAN datagram inside, for the kernel.
    pub fn open<'a>(
        &mut self,
        sender: Ipv4Addr,
        frame: &'a mut [u8],
    ) -> Result<(u32, &'a [u8]), Refused> {
        let header = Header::decode(frame).map_err(|e| match e {
            FrameError::Short | FrameError::Unknown => Refused::Malformed,
            FrameError::Auth => Refused::Auth,
        })?;
        let slot = (sender, header.key_id);
        let derived = match self.peers.get(&slot) {
            // Cheap refusal of replays before any cryptography.
            Some(peer) if !peer.window.check(header.counter) => return Err(Refused::Replay),
            Some(_) => None,
            None => {
                let key = self.ring.get(header.key_id).ok_or(Refused::Auth)?;
                Some(sender_key(key, sender))
            }
        };
        let key = match &derived {
            Some(k) => k,
            None => &self.peers[&slot].key,
        };
        let packet = frame::open(key, &header, frame).map_err(|_| Refused::Auth)?;
        let peer = match derived {
            Some(key) => self.peers.entry(slot).or_insert(Peer {
                key,
                window: ReplayWindow::default(),
            }),
            None => self
                .peers
                .get_mut(&slot)
                // Proven invariant: looked up above, nothing removed since.
                .expect("known peer"),
        };
        // Authentic: the counter is used up whatever is inside.
        peer.window.accept(header.counter);
        if inner::inbound_ok(packet, sender, self.local, self.data_port) {
            Ok((header.key_id, packet))
        } else {
            Err(Refused::Inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::frame::HEADER_LEN;
    use crate::tunnel::frame::OVERHEAD;
    use crate::tunnel::inner::tests::udp;
    use crate::tunnel::keys::Key;
    use crate::tunnel::sealer::Sealer;

    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
    const C: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 3);
    const PORT: u16 = 4789;

    fn ring(ids: &[u32], primary: u32) -> Keyring {
        Keyring {
            keys: ids
                .iter()
                .map(|&id| Key {
                    id,
                    secret: [id as u8; 32],
                })
                .collect(),
            primary,
        }
    }

    fn seal(s: &mut Sealer, packet: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; packet.len() + OVERHEAD];
        buf[HEADER_LEN..HEADER_LEN + packet.len()].copy_from_slice(packet);
        let n = s.seal(&mut buf, packet.len());
        buf.truncate(n);
        buf
    }

    fn vxlan(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        udp(src, dst, PORT, b"vxlan header and frame")
    }

    #[test]
    fn opens_a_peer_frame_once() {
        let mut a = Sealer::new(A, &ring(&[1], 1), 42, 1000);
        let mut b = Opener::new(B, PORT, Arc::new(ring(&[1], 1)));
        let frame = seal(&mut a, &vxlan(A, B));
        assert_eq!(
            b.open(A, &mut frame.clone()).unwrap(),
            (1, &vxlan(A, B)[..])
        );
        assert_eq!(b.open(A, &mut frame.clone()), Err(Refused::Replay));
        let next = seal(&mut a, &vxlan(A, B));
        assert!(b.open(A, &mut next.clone()).is_ok());
    }

    #[test]
    fn reordering_within_the_window_is_fine() {
        let mut a = Sealer::new(A, &ring(&[1], 1), 42, 0);
        let mut b = Opener::new(B, PORT, Arc::new(ring(&[1], 1)));
        let frames: Vec<Vec<u8>> = (0..10).map(|_| seal(&mut a, &vxlan(A, B))).collect();
        for i in (0..10).rev() {
            assert!(b.open(A, &mut frames[i].clone()).is_ok(), "{i}");
        }
        for f in &frames {
            assert_eq!(b.open(A, &mut f.clone()), Err(Refused::Replay));
        }
    }

    #[test]
    fn a_restarted_sender_is_heard() {
        let keys = ring(&[1], 1);
        let mut b = Opener::new(B, PORT, Arc::new(keys.clone()));
        let mut first = Sealer::new(A, &keys, 1, 1_000_000);
        for _ in 0..5000 {
            assert!(b.open(A, &mut seal(&mut first, &vxlan(A, B))).is_ok());
        }
        // Later run: new salt, counters from a later clock reading.
        let mut second = Sealer::new(A, &keys, 2, 2_000_000);
        assert!(b.open(A, &mut seal(&mut second, &vxlan(A, B))).is_ok());
    }

    #[test]
    fn forged_frames_do_not_move_the_window() {
        let keys = ring(&[1], 1);
        let mut a = Sealer::new(A, &keys, 1, 0);
        let mut b = Opener::new(B, PORT, Arc::new(keys));
        let early = seal(&mut a, &vxlan(A, B));
        // A frame claiming a far-away counter, with a bad tag.
        let mut forged = seal(&mut a, &vxlan(A, B));
        forged[12..20].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(b.open(A, &mut forged), Err(Refused::Auth));
        assert!(b.open(A, &mut early.clone()).is_ok());
    }

    #[test]
    fn tampered_frame_is_refused() {
        let mut a = Sealer::new(A, &ring(&[1], 1), 1, 0);
        let mut b = Opener::new(B, PORT, Arc::new(ring(&[1], 1)));
        let mut frame = seal(&mut a, &vxlan(A, B));
        let last = frame.len() - 1;
        frame[last] ^= 0x80;
        assert_eq!(b.open(A, &mut frame), Err(Refused::Auth));
        let mut frame = seal(&mut a, &vxlan(A, B));
        frame[HEADER_LEN + 3] ^= 0x01;
        assert_eq!(b.open(A, &mut frame), Err(Refused::Auth));
        let mut frame = seal(&mut a, &vxlan(A, B));
        frame[0] = 9;
        assert_eq!(b.open(A, &mut frame), Err(Refused::Malformed));
        assert_eq!(b.open(A, &mut [0u8; 10]), Err(Refused::Malformed));
    }

    #[test]
    fn unknown_or_wrong_key_is_refused() {
        let mut a = Sealer::new(A, &ring(&[5], 5), 1, 0);
        let mut b = Opener::new(B, PORT, Arc::new(ring(&[1, 2], 1)));
        assert_eq!(
            b.open(A, &mut seal(&mut a, &vxlan(A, B))),
            Err(Refused::Auth)
        );
        // Same ID, another secret.
        let other = Keyring {
            keys: vec![Key {
                id: 1,
                secret: [0xee; 32],
            }],
            primary: 1,
        };
        let mut a = Sealer::new(A, &other, 1, 0);
        assert_eq!(
            b.open(A, &mut seal(&mut a, &vxlan(A, B))),
            Err(Refused::Auth)
        );
    }

    #[test]
    fn frames_are_bound_to_the_sender_address() {
        let keys = ring(&[1], 1);
        let mut a = Sealer::new(A, &keys, 1, 0);
        let mut b = Opener::new(B, PORT, Arc::new(keys));
        // A's frame arriving from C (spoofed outer source).
        assert_eq!(
            b.open(C, &mut seal(&mut a, &vxlan(A, B))),
            Err(Refused::Auth)
        );
    }

    #[test]
    fn inner_packet_must_match_the_sender() {
        let keys = ring(&[1], 1);
        let mut a = Sealer::new(A, &keys, 1, 0);
        let mut b = Opener::new(B, PORT, Arc::new(keys));
        // An insider sealing a packet that claims to come from C.
        assert_eq!(
            b.open(A, &mut seal(&mut a, &vxlan(C, B))),
            Err(Refused::Inner)
        );
        assert_eq!(
            b.open(A, &mut seal(&mut a, &vxlan(A, C))),
            Err(Refused::Inner)
        );
        let dns = udp(A, B, 53, b"query");
        assert_eq!(b.open(A, &mut seal(&mut a, &dns)), Err(Refused::Inner));
    }

    #[test]
    fn rotation_accepts_old_and_new_keys_and_keeps_windows() {
        let mut a = Sealer::new(A, &ring(&[1], 1), 1, 0);
        let mut b = Opener::new(B, PORT, Arc::new(ring(&[1], 1)));
        let old = seal(&mut a, &vxlan(A, B));
        assert!(b.open(A, &mut old.clone()).is_ok());
        // Step 1: the new key is added everywhere, the old one still sends.
        b.set_keys(Arc::new(ring(&[1, 2], 1)));
        let still_old = seal(&mut a, &vxlan(A, B));
        // Step 2: the sender switches first; the receiver takes both.
        a.set_keys(&ring(&[1, 2], 2));
        let new = seal(&mut a, &vxlan(A, B));
        assert_eq!(b.open(A, &mut new.clone()).unwrap().0, 2);
        assert_eq!(
            b.open(A, &mut still_old.clone()).unwrap().0,
            1,
            "old key in ring"
        );
        // The window of key 1 survived the change.
        assert_eq!(b.open(A, &mut old.clone()), Err(Refused::Replay));
        b.set_keys(Arc::new(ring(&[1, 2], 2)));
        assert_eq!(b.open(A, &mut still_old.clone()), Err(Refused::Replay));
        // Step 3: the old key goes; its frames are refused.
        b.set_keys(Arc::new(ring(&[2], 2)));
        let mut stale = Sealer::new(A, &ring(&[1], 1), 9, 1 << 50);
        assert_eq!(
            b.open(A, &mut seal(&mut stale, &vxlan(A, B))),
            Err(Refused::Auth)
        );
        assert!(b.open(A, &mut seal(&mut a, &vxlan(A, B))).is_ok());
    }
}
