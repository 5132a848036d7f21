//! Checks on the plaintext packets the tunnel carries (pure): only the
//! node's own VXLAN datagrams go in, and only a peer's VXLAN datagrams to
//! this node, from that peer's own address, come out.

use std::net::Ipv4Addr;

const IPV4_MIN_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const PROTO_UDP: u8 = 17;
/// The "more fragments" flag and the fragment offset.
const FRAGMENT_BITS: u16 = 0x3fff;

/// The addresses of a whole (unfragmented) IPv4 UDP datagram to `port`.
fn udp_to(packet: &[u8], port: u16) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if packet.len() < IPV4_MIN_HEADER || packet[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let flags = u16::from_be_bytes([packet[6], packet[7]]);
    if ihl < IPV4_MIN_HEADER
        || total != packet.len()
        || total < ihl + UDP_HEADER
        || packet[9] != PROTO_UDP
        || flags & FRAGMENT_BITS != 0
    {
        return None;
    }
    let dport = u16::from_be_bytes([packet[ihl + 2], packet[ihl + 3]]);
    if dport != port {
        return None;
    }
    let addr =
        |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    Some((addr(12), addr(16)))
}

/// Where a packet read from the TUN goes: its destination, if it is a
/// VXLAN datagram this node (`local`) sends to `data_port`. Anything else
/// that was routed into the TUN is not the tunnel's to carry.
pub fn outbound(packet: &[u8], local: Ipv4Addr, data_port: u16) -> Option<Ipv4Addr> {
    match udp_to(packet, data_port) {
        Some((src, dst)) if src == local => Some(dst),
        _ => None,
    }
}

/// Whether an opened packet may be handed to the kernel: a VXLAN datagram
/// to this node (`local`) on `data_port` whose source is `sender`, the
/// address the frame came from. Without this a node holding the key could
/// pass its frames off as another node's, or have this node forward
/// packets elsewhere.
pub fn inbound_ok(packet: &[u8], sender: Ipv4Addr, local: Ipv4Addr, data_port: u16) -> bool {
    udp_to(packet, data_port) == Some((sender, local))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4 UDP datagram `src` -> `dst`:`dport` with `payload` (no
    /// checksums: nothing here reads them).
    pub(crate) fn udp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = PROTO_UDP;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
    const C: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 3);

    #[test]
    fn outbound_takes_own_vxlan_datagrams() {
        let p = udp(A, B, 4789, b"vxlan");
        assert_eq!(outbound(&p, A, 4789), Some(B));
        assert_eq!(outbound(&p, C, 4789), None, "not from this node");
        assert_eq!(outbound(&p, A, 4790), None, "another port");
    }

    #[test]
    fn inbound_needs_the_sender_and_this_node() {
        let p = udp(A, B, 4789, b"vxlan");
        assert!(inbound_ok(&p, A, B, 4789));
        assert!(!inbound_ok(&p, C, B, 4789), "spoofed inner source");
        assert!(!inbound_ok(&p, A, C, 4789), "not for this node");
        assert!(!inbound_ok(&p, A, B, 53), "another port");
    }

    #[test]
    fn malformed_packets_are_refused() {
        let good = udp(A, B, 4789, b"vxlan");
        let mut tcp = good.clone();
        tcp[9] = 6;
        let mut v6 = good.clone();
        v6[0] = 0x65;
        let mut short_ihl = good.clone();
        short_ihl[0] = 0x44;
        let mut long_total = good.clone();
        long_total[3] += 1;
        let mut fragment = good.clone();
        fragment[6] = 0x20;
        let mut offset = good.clone();
        offset[7] = 0x01;
        for (what, p) in [
            ("tcp", &tcp[..]),
            ("ipv6", &v6[..]),
            ("ihl", &short_ihl[..]),
            ("total length", &long_total[..]),
            ("more fragments", &fragment[..]),
            ("fragment offset", &offset[..]),
            ("truncated", &good[..25]),
            ("empty", &[][..]),
        ] {
            assert!(!inbound_ok(p, A, B, 4789), "{what}");
            assert_eq!(outbound(p, A, 4789), None, "{what}");
        }
    }

    #[test]
    fn options_are_skipped() {
        let mut p = udp(A, B, 4789, b"vxlan");
        // Four bytes of options (NOPs) between the IP and UDP headers.
        p.splice(20..20, [1, 1, 1, 1]);
        p[0] = 0x46;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        assert!(inbound_ok(&p, A, B, 4789));
    }
}
