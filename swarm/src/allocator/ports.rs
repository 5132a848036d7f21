//! Published ports: the cluster-wide uniqueness check of ingress ports and
//! the assignment of ports left unset (30000-32767), as swarmkit's port
//! allocator does them.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::error::Result;
use crate::model::api;
use crate::model::Service;

/// The first port handed out when a published port is left unset.
pub const DYNAMIC_MIN: i64 = 30000;
/// The last port handed out when a published port is left unset.
pub const DYNAMIC_MAX: i64 = 32767;

type Protocol = api::EndpointPortConfigProtocolEnum;
type Mode = api::EndpointPortConfigPublishModeEnum;

fn protocol(p: &api::EndpointPortConfig) -> Protocol {
    match p.protocol {
        None | Some(Protocol::EMPTY) => Protocol::TCP,
        Some(x) => x,
    }
}

/// The port's protocol as nodes get it (TCP when unset).
pub fn port_protocol(p: &api::EndpointPortConfig) -> crate::exec::PortProtocol {
    match protocol(p) {
        Protocol::UDP => crate::exec::PortProtocol::Udp,
        Protocol::SCTP => crate::exec::PortProtocol::Sctp,
        _ => crate::exec::PortProtocol::Tcp,
    }
}

/// Whether the port is published through the routing mesh (the default).
pub fn is_ingress(p: &api::EndpointPortConfig) -> bool {
    matches!(
        p.publish_mode,
        None | Some(Mode::EMPTY) | Some(Mode::INGRESS)
    )
}

fn published(p: &api::EndpointPortConfig) -> i64 {
    p.published_port.unwrap_or(0)
}

/// The ports a service spec asks for.
pub fn spec_ports(spec: &api::ServiceSpec) -> Vec<api::EndpointPortConfig> {
    spec.endpoint_spec
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default()
}

/// The host-mode ports a spec publishes (`--publish mode=host`); ports
/// left unset there are the node's choice and are not forwarded.
pub fn host_ports(spec: &api::ServiceSpec) -> Vec<crate::exec::HostPort> {
    spec_ports(spec)
        .iter()
        .filter(|p| !is_ingress(p))
        .filter_map(|p| {
            Some(crate::exec::HostPort {
                protocol: port_protocol(p),
                published: u16::try_from(published(p)).ok().filter(|p| *p > 0)?,
                target: u16::try_from(p.target_port?).ok()?,
            })
        })
        .collect()
}

/// The ingress ports a stored service holds: allocated ones, else its spec's.
fn held_ports(svc: &Service) -> Vec<api::EndpointPortConfig> {
    let allocated = svc
        .api
        .endpoint
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default();
    let mut out = allocated;
    out.extend(spec_ports(svc.spec()));
    out.retain(|p| is_ingress(p) && published(p) > 0);
    out
}

/// Whether a service publishes anything through the routing mesh.
pub fn uses_ingress(ports: &[api::EndpointPortConfig]) -> bool {
    ports.iter().any(is_ingress)
}

/// Refuses a spec whose ingress published ports another service already
/// holds, with swarmkit's text. `self_id` is the service being updated
/// ("" on create). Call it from service create and update, inside the write
/// transaction, with every stored service.
pub fn check_published_ports<'x>(
    services: impl IntoIterator<Item = &'x Service> + Clone,
    self_id: &str,
    spec: &api::ServiceSpec,
) -> Result<()> {
    for want in spec_ports(spec)
        .iter()
        .filter(|p| is_ingress(p) && published(p) > 0)
    {
        for other in services
            .clone()
            .into_iter()
            .filter(|s| s.api.id.as_deref() != Some(self_id))
        {
            let clash = held_ports(other)
                .iter()
                .any(|h| published(h) == published(want) && protocol(h) == protocol(want));
            if clash {
                return Err(Error::invalid(format!(
                    "port '{}' is already in use by service '{}' ({}) as an ingress port",
                    published(want),
                    other.name(),
                    other.api.id.as_deref().unwrap_or("")
                )));
            }
        }
    }
    Ok(())
}

/// The endpoint ports of a service: the spec's ports with protocol and
/// publish mode filled in, and unset ingress published ports assigned (kept
/// from `previous` when the same target was already assigned, else the lowest
/// free one in 30000-32767 among every other service's ports).
pub fn assign_ports<'x>(
    services: impl IntoIterator<Item = &'x Service>,
    self_id: &str,
    spec: &api::ServiceSpec,
    previous: &[api::EndpointPortConfig],
) -> Result<Vec<api::EndpointPortConfig>> {
    let mut taken: BTreeSet<(i64, Protocol)> = services
        .into_iter()
        .filter(|s| s.api.id.as_deref() != Some(self_id))
        .flat_map(held_ports)
        .map(|p| (published(&p), protocol(&p)))
        .collect();
    let wanted = spec_ports(spec);
    for p in wanted.iter().filter(|p| is_ingress(p) && published(p) > 0) {
        taken.insert((published(p), protocol(p)));
    }
    let mut out = Vec::new();
    for p in &wanted {
        let mut port = p.clone();
        port.protocol = Some(protocol(p));
        port.publish_mode = Some(if is_ingress(p) {
            Mode::INGRESS
        } else {
            Mode::HOST
        });
        if is_ingress(p) && published(p) == 0 {
            port.published_port = Some(pick(p, previous, &mut taken)?);
        }
        out.push(port);
    }
    Ok(out)
}

fn pick(
    p: &api::EndpointPortConfig,
    previous: &[api::EndpointPortConfig],
    taken: &mut BTreeSet<(i64, Protocol)>,
) -> Result<i64> {
    let proto = protocol(p);
    let kept = previous.iter().find(|q| {
        q.target_port == p.target_port
            && protocol(q) == proto
            && is_ingress(q)
            && (DYNAMIC_MIN..=DYNAMIC_MAX).contains(&published(q))
            && !taken.contains(&(published(q), proto))
    });
    let port = match kept {
        Some(q) => published(q),
        None => (DYNAMIC_MIN..=DYNAMIC_MAX)
            .find(|n| !taken.contains(&(*n, proto)))
            .ok_or_else(|| Error::invalid("no more dynamic ports are available"))?,
    };
    taken.insert((port, proto));
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(target: i64, published: Option<i64>) -> api::EndpointPortConfig {
        api::EndpointPortConfig {
            target_port: Some(target),
            published_port: published,
            ..Default::default()
        }
    }

    fn spec(name: &str, ports: Vec<api::EndpointPortConfig>) -> api::ServiceSpec {
        api::ServiceSpec {
            name: Some(name.into()),
            endpoint_spec: Some(api::EndpointSpec {
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn service(id: &str, spec: api::ServiceSpec) -> Service {
        let mut s = Service::default();
        s.api.id = Some(id.into());
        s.api.spec = Some(spec);
        s
    }

    #[test]
    fn duplicate_ingress_port_is_refused_with_swarmkit_text() {
        let p1 = service("id1", spec("p1", vec![port(80, Some(8080))]));
        let e = check_published_ports(
            std::slice::from_ref(&p1),
            "",
            &spec("p2", vec![port(80, Some(8080))]),
        )
        .unwrap_err();
        assert_eq!(
            e.message(),
            "rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'p1' (id1) as an ingress port"
        );
        // The service itself, other ports and host-mode ports are fine.
        check_published_ports(
            std::slice::from_ref(&p1),
            "id1",
            &spec("p1", vec![port(80, Some(8080))]),
        )
        .unwrap();
        check_published_ports(
            std::slice::from_ref(&p1),
            "",
            &spec("p2", vec![port(80, Some(8081))]),
        )
        .unwrap();
        let mut host = port(80, Some(8080));
        host.publish_mode = Some(Mode::HOST);
        check_published_ports(&[p1], "", &spec("p2", vec![host])).unwrap();
    }

    #[test]
    fn unset_ports_get_the_lowest_free_dynamic_port_and_keep_it() {
        let mut a = service("a", spec("a", vec![port(80, None)]));
        let ports = assign_ports(&[], "a", a.spec(), &[]).unwrap();
        assert_eq!(ports[0].published_port, Some(30000));
        assert_eq!(ports[0].protocol, Some(Protocol::TCP));
        assert_eq!(ports[0].publish_mode, Some(Mode::INGRESS));
        a.api.endpoint = Some(api::ServiceEndpoint {
            ports: Some(ports.clone()),
            ..Default::default()
        });
        let b = service("b", spec("b", vec![port(80, None)]));
        let got = assign_ports(&[a.clone()], "b", b.spec(), &[]).unwrap();
        assert_eq!(got[0].published_port, Some(30001));
        let again = assign_ports(&[a.clone(), b], "a", a.spec(), &ports).unwrap();
        assert_eq!(again[0].published_port, Some(30000));
    }
}
