//! Addresses on overlay networks: service virtual IPs and task attachments.
//!
//! The [`AddressBook`] is rebuilt from the store on every pass (gateways,
//! VIPs of live services, addresses of tasks that are not finished), so an
//! address is free again as soon as its owner is gone; no release bookkeeping.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::ipam;
use super::ipam::Subnet;
use super::network;
use super::ports;
use crate::error::Result;
use crate::model::api;
use crate::model::Network;
use crate::model::NetworkAttachment;
use crate::model::Node;
use crate::model::Service;
use crate::model::Task;

/// Used addresses per allocated network.
#[derive(Debug, Default, Clone)]
pub struct AddressBook {
    nets: BTreeMap<String, (Subnet, BTreeSet<u32>)>,
}

/// Whether a task still holds its addresses (not yet finished).
pub fn holds_addresses(t: &Task) -> bool {
    t.state() <= api::TaskState::RUNNING
}

impl AddressBook {
    /// The book for the given store contents.
    pub fn build<'x>(
        networks: &[Network],
        services: impl IntoIterator<Item = &'x Service>,
        tasks: impl IntoIterator<Item = &'x Task>,
        nodes: impl IntoIterator<Item = &'x Node>,
    ) -> Self {
        let mut book = AddressBook::default();
        for n in networks {
            if let Some(subnet) = network::subnet_of(n) {
                let mut used = BTreeSet::new();
                used.extend(network::gateway_of(n));
                book.nets
                    .insert(n.api.id.clone().unwrap_or_default(), (subnet, used));
            }
        }
        for s in services {
            for v in vips(s) {
                book.reserve(
                    v.network_id.as_deref().unwrap_or(""),
                    v.addr.as_deref().unwrap_or(""),
                );
            }
        }
        if let Some(ing) = networks.iter().find(|n| network::is_ingress(n)) {
            let ing = ing.api.id.as_deref().unwrap_or("");
            for n in nodes {
                if let Some(a) = &n.ingress_address {
                    book.reserve(ing, a);
                }
            }
        }
        for t in tasks.into_iter().filter(|t| holds_addresses(t)) {
            for a in &t.networks {
                for addr in &a.addresses {
                    book.reserve(&a.network_id, addr);
                }
            }
        }
        book
    }

    /// Marks `cidr` (`ip/prefix`) on `network_id` as used.
    pub fn reserve(&mut self, network_id: &str, cidr: &str) {
        if let (Some((_, used)), Some(ip)) = (self.nets.get_mut(network_id), ipam::addr_of(cidr)) {
            used.insert(ip);
        }
    }

    /// Takes the lowest free address on `network_id`, as `ip/prefix`.
    pub fn allocate(&mut self, network_id: &str) -> Option<String> {
        let (subnet, used) = self.nets.get_mut(network_id)?;
        let ip = ipam::next_addr(subnet, used)?;
        used.insert(ip);
        Some(subnet.with_prefix(ip))
    }
}

/// A service's allocated virtual IPs.
pub fn vips(s: &Service) -> Vec<api::ServiceEndpointVirtualIps> {
    s.api
        .endpoint
        .as_ref()
        .and_then(|e| e.virtual_ips.clone())
        .unwrap_or_default()
}

/// Finds a network by ID or name (stacks attach by name, the CLI by ID).
pub fn resolve_network<'a>(networks: &'a [Network], target: &str) -> Option<&'a Network> {
    networks
        .iter()
        .find(|n| n.api.id.as_deref() == Some(target))
        .or_else(|| {
            networks
                .iter()
                .find(|n| n.api.name.as_deref() == Some(target))
        })
}

/// The network IDs a service's tasks attach to, with their aliases; the
/// ingress network first when the service publishes ingress ports.
pub fn service_networks(
    networks: &[Network],
    spec: &api::ServiceSpec,
    ingress_ports: bool,
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    if ingress_ports {
        if let Some(ing) = networks.iter().find(|n| network::is_ingress(n)) {
            out.push((ing.api.id.clone().unwrap_or_default(), Vec::new()));
        }
    }
    let attached = spec
        .task_template
        .as_ref()
        .and_then(|t| t.networks.clone())
        .or_else(|| spec.networks.clone())
        .unwrap_or_default();
    for a in attached {
        let target = a.target.as_deref().unwrap_or("");
        if let Some(n) = resolve_network(networks, target) {
            let id = n.api.id.clone().unwrap_or_default();
            if !out.iter().any(|(x, _)| *x == id) {
                out.push((id, a.aliases.clone().unwrap_or_default()));
            }
        }
    }
    out
}

/// The endpoint a service should have: its endpoint spec, its ports with
/// published ports assigned, and one VIP per attached network (kept from the
/// current endpoint where possible). `services` are all stored services.
pub fn desired_endpoint<'x>(
    book: &mut AddressBook,
    networks: &[Network],
    services: impl IntoIterator<Item = &'x Service>,
    svc: &Service,
) -> Result<api::ServiceEndpoint> {
    let spec = svc.spec();
    let id = svc.api.id.as_deref().unwrap_or("");
    let endpoint_spec = spec.endpoint_spec.clone().unwrap_or(api::EndpointSpec {
        mode: Some(api::EndpointSpecModeEnum::VIP),
        ports: None,
    });
    let previous = svc
        .api
        .endpoint
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default();
    let ports = ports::assign_ports(services, id, spec, &previous)?;
    let dnsrr = endpoint_spec.mode == Some(api::EndpointSpecModeEnum::DNSRR);
    let current = vips(svc);
    let mut virtual_ips = Vec::new();
    let attached = service_networks(networks, spec, ports::uses_ingress(&ports));
    // Needing allocation (ports or networks) is what makes swarmkit copy the
    // endpoint spec, VIPs or not (dnsrr gets none).
    let allocated = !ports.is_empty() || !attached.is_empty();
    for (net, _) in attached {
        let ingress = networks
            .iter()
            .any(|n| n.api.id.as_deref() == Some(net.as_str()) && network::is_ingress(n));
        if dnsrr && !ingress {
            continue;
        }
        let kept = current
            .iter()
            .find(|v| v.network_id.as_deref() == Some(net.as_str()))
            .and_then(|v| v.addr.clone());
        if let Some(addr) = kept.or_else(|| book.allocate(&net)) {
            virtual_ips.push(api::ServiceEndpointVirtualIps {
                network_id: Some(net),
                addr: Some(addr),
            });
        }
    }
    Ok(api::ServiceEndpoint {
        spec: Some(endpoint_spec_view(spec, allocated)),
        ports: (!ports.is_empty()).then_some(ports),
        virtual_ips: (!virtual_ips.is_empty()).then_some(virtual_ips),
    })
}

/// `Endpoint.Spec` as dockerd shows it: swarmkit copies the service's
/// endpoint spec there only when the service needed network allocation
/// (published ports or networks); otherwise it stays empty.
pub fn endpoint_spec_view(spec: &api::ServiceSpec, allocated: bool) -> api::EndpointSpec {
    if !allocated {
        return api::EndpointSpec::default();
    }
    let mut es = spec.endpoint_spec.clone().unwrap_or_default();
    if es.mode.is_none() || es.mode == Some(api::EndpointSpecModeEnum::EMPTY) {
        es.mode = Some(api::EndpointSpecModeEnum::VIP);
    }
    es
}

/// The network attachments of a new task: one address on each network of
/// its service (ingress included when the service publishes ingress ports).
pub fn task_attachments(
    book: &mut AddressBook,
    networks: &[Network],
    svc: Option<&Service>,
    task: &Task,
) -> Vec<NetworkAttachment> {
    let spec = match svc {
        Some(s) => s.spec().clone(),
        None => api::ServiceSpec {
            task_template: task.api.spec.clone(),
            ..Default::default()
        },
    };
    let mut spec = spec;
    if let (Some(tt), Some(task_spec)) = (spec.task_template.as_mut(), task.api.spec.as_ref()) {
        if task_spec.networks.is_some() {
            tt.networks = task_spec.networks.clone();
        }
    }
    let ingress = svc
        .and_then(|s| s.api.endpoint.as_ref())
        .and_then(|e| e.ports.as_ref())
        .is_some_and(|p| ports::uses_ingress(p));
    service_networks(networks, &spec, ingress)
        .into_iter()
        .filter_map(|(net, aliases)| {
            let addr = book.allocate(&net)?;
            Some(NetworkAttachment {
                network_id: net,
                addresses: vec![addr],
                aliases,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocated(name: &str, others: &[Network], ingress: bool) -> Network {
        let mut n = network::new_network(api::NetworkCreateRequest {
            name: name.into(),
            ingress: Some(ingress),
            ..Default::default()
        });
        network::allocate_network(others, None, &mut n).unwrap();
        n
    }

    #[test]
    fn vips_on_attached_networks_and_ingress() {
        let ing = allocated("ingress", &[], true);
        let n1 = allocated("n1", std::slice::from_ref(&ing), false);
        let nets = vec![ing.clone(), n1.clone()];
        let mut svc = Service::default();
        svc.api.id = Some("s1".into());
        svc.api.spec = Some(api::ServiceSpec {
            name: Some("web".into()),
            task_template: Some(api::TaskSpec {
                networks: Some(vec![api::NetworkAttachmentConfig {
                    target: Some("n1".into()),
                    aliases: Some(vec!["w".into()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            endpoint_spec: Some(api::EndpointSpec {
                mode: None,
                ports: Some(vec![api::EndpointPortConfig {
                    target_port: Some(80),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        });
        let mut book = AddressBook::build(&nets, [], [], []);
        let ep = desired_endpoint(&mut book, &nets, &[], &svc).unwrap();
        let v = ep.virtual_ips.clone().unwrap();
        assert_eq!(v[0].network_id, ing.api.id);
        assert_eq!(v[0].addr.as_deref(), Some("10.0.0.2/24"));
        assert_eq!(v[1].addr.as_deref(), Some("10.0.1.2/24"));
        assert_eq!(ep.ports.clone().unwrap()[0].published_port, Some(30000));
        svc.api.endpoint = Some(ep.clone());
        // Rebuilt from the store, the same endpoint comes out again.
        let services = vec![svc.clone()];
        let mut book = AddressBook::build(&nets, &services, &[], []);
        assert_eq!(
            desired_endpoint(&mut book, &nets, &services, &svc).unwrap(),
            ep
        );
        let mut task = Task::default();
        task.api.spec = svc.spec().task_template.clone();
        let att = task_attachments(&mut book, &nets, Some(&svc), &task);
        assert_eq!(att.len(), 2);
        assert_eq!(att[0].addresses, vec!["10.0.0.3/24".to_string()]);
        assert_eq!(att[1].aliases, vec!["w".to_string()]);
    }

    #[test]
    fn endpoint_spec_is_shown_once_the_service_needed_allocation() {
        let n1 = allocated("n1", &[], false);
        let nets = vec![n1.clone()];
        let svc = |networks: bool| {
            let mut s = Service::default();
            s.api.id = Some("s".into());
            s.api.spec = Some(api::ServiceSpec {
                task_template: Some(api::TaskSpec {
                    networks: networks.then(|| {
                        vec![api::NetworkAttachmentConfig {
                            target: n1.api.id.clone(),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }),
                endpoint_spec: Some(api::EndpointSpec {
                    mode: Some(api::EndpointSpecModeEnum::DNSRR),
                    ports: None,
                }),
                ..Default::default()
            });
            s
        };
        let mut book = AddressBook::build(&nets, [], [], []);
        // dnsrr on a network: no VIP, but the spec is copied.
        let ep = desired_endpoint(&mut book, &nets, [], &svc(true)).unwrap();
        assert!(ep.virtual_ips.is_none());
        assert_eq!(
            ep.spec.unwrap().mode,
            Some(api::EndpointSpecModeEnum::DNSRR)
        );
        // Nothing to allocate: swarmkit leaves Endpoint.Spec empty.
        let ep = desired_endpoint(&mut book, &nets, [], &svc(false)).unwrap();
        assert_eq!(ep.spec, Some(api::EndpointSpec::default()));
    }
}
