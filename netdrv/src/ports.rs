//! Host-mode published ports (`--publish mode=host`): the node running the
//! task forwards the port, on all its addresses, to the task's gateway
//! bridge address and target port (one DNAT in the `ip shoal` table, see
//! [`crate::nft`]), as dockerd's bridge driver does for `docker_gwbridge`.
//!
//! dockerd refuses a port it cannot have, with the texts of the layer that
//! finds out: its port allocator for a port another container on the node
//! already maps (`Bind for 0.0.0.0:P failed: port is already allocated`),
//! its userland proxy for a port something else listens on (`Error starting
//! userland proxy: listen tcp4 0.0.0.0:P: bind: address already in use`;
//! the routing mesh holds its ports the same way). [`check`] and [`probe`]
//! give the same answers for the same cases.

use std::net::Ipv4Addr;
use std::net::TcpListener;
use std::net::UdpSocket;

use swarm::exec::HostPort;
use swarm::exec::PortProtocol;

use crate::error::Error;
use crate::error::Result;
use crate::state::NodeState;

fn same(a: &HostPort, b: &HostPort) -> bool {
    a.protocol == b.protocol && a.published == b.published
}

/// Checks `task`'s `ports` against what the node already forwards: another
/// task's host-mode ports (and a port twice in `ports`) are allocated, the
/// routing mesh's are in use. The task's own earlier ports are no conflict.
pub fn check(state: &NodeState, task: &str, ports: &[HostPort]) -> Result<()> {
    for (i, p) in ports.iter().enumerate() {
        let others = state
            .host_ports
            .iter()
            .filter(|(t, _)| t.as_str() != task)
            .flat_map(|(_, ps)| ps);
        if ports[..i].iter().chain(others).any(|q| same(p, q)) {
            return Err(Error::PortAllocated { port: p.published });
        }
        let mesh = state.ingress.iter().flat_map(|i| &i.ports);
        if mesh
            .clone()
            .any(|r| r.protocol == p.protocol && r.published == p.published)
        {
            return Err(in_use(p));
        }
    }
    Ok(())
}

/// Tries to bind each of `ports` that `task` does not publish yet on
/// 0.0.0.0 in the calling thread's namespace (the driver's): a listening
/// process makes it fail as dockerd's userland proxy does. SCTP is not
/// probed (no SCTP sockets in std); failures other than "in use" are only
/// logged, the DNAT works regardless.
pub fn probe(state: &NodeState, task: &str, ports: &[HostPort]) -> Result<()> {
    let mine = state.host_ports.get(task);
    for p in ports {
        if mine.is_some_and(|m| m.iter().any(|q| same(p, q))) {
            continue;
        }
        let addr = (Ipv4Addr::UNSPECIFIED, p.published);
        let bound = match p.protocol {
            PortProtocol::Tcp => TcpListener::bind(addr).map(drop),
            PortProtocol::Udp => UdpSocket::bind(addr).map(drop),
            PortProtocol::Sctp => Ok(()),
        };
        match bound {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(in_use(p)),
            Err(e) => tracing::warn!(port = p.published, error = %e, "cannot probe a host port"),
        }
    }
    Ok(())
}

fn in_use(p: &HostPort) -> Error {
    Error::PortInUse {
        protocol: match p.protocol {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
            PortProtocol::Sctp => "sctp",
        },
        port: p.published,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::ingress::IngressRecord;
    use crate::ingress::IngressRule;
    use crate::state::Interface;
    use crate::state::Link;

    fn hp(protocol: PortProtocol, published: u16) -> HostPort {
        HostPort {
            protocol,
            published,
            target: 80,
        }
    }

    fn state() -> NodeState {
        let mut s = NodeState::default();
        s.host_ports
            .insert("a".into(), vec![hp(PortProtocol::Tcp, 8081)]);
        s.ingress = Some(IngressRecord {
            network: "ing".into(),
            iface: Interface {
                name: "gw0".into(),
                address: "172.18.0.2/16".parse().unwrap(),
                mtu: 1500,
                mac: [0; 6],
                peer: "vg-ingress-sbox".into(),
                link: Link::Egress {
                    gateway: Ipv4Addr::new(172, 18, 0, 1),
                },
            },
            ports: vec![IngressRule {
                protocol: PortProtocol::Udp,
                published: 8080,
                target: 80,
                backends: vec![],
            }],
            lb_address: None,
        });
        s
    }

    #[test]
    fn another_tasks_port_is_allocated() {
        let err = check(&state(), "b", &[hp(PortProtocol::Tcp, 8081)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 0.0.0.0:8081 failed: port is already allocated"
        );
        // Another protocol on the same number is free; so is the task's own.
        check(&state(), "b", &[hp(PortProtocol::Udp, 8081)]).unwrap();
        check(&state(), "a", &[hp(PortProtocol::Tcp, 8081)]).unwrap();
    }

    #[test]
    fn twice_in_one_request_is_allocated() {
        let twice = [hp(PortProtocol::Tcp, 9000), hp(PortProtocol::Tcp, 9000)];
        assert!(matches!(
            check(&NodeState::default(), "b", &twice),
            Err(Error::PortAllocated { port: 9000 })
        ));
    }

    #[test]
    fn a_routing_mesh_port_is_in_use() {
        let err = check(&state(), "b", &[hp(PortProtocol::Udp, 8080)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error starting userland proxy: listen udp4 0.0.0.0:8080: bind: address already in use"
        );
        check(&state(), "b", &[hp(PortProtocol::Tcp, 8080)]).unwrap();
    }
}
