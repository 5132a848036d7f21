//! The DNS view nodes serve to their tasks, computed from the store: per
//! network, each service's name to its VIP (or to its tasks' addresses with
//! `--endpoint-mode dnsrr`), `tasks.NAME` to the addresses of its running
//! tasks, and each running task's container name and network aliases to its
//! address. The ingress network has no names, as under dockerd.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::IpAddr;

use crate::allocator::network::is_ingress;
use crate::exec::NetworkRecords;
use crate::exec::ServiceRecords;
use crate::model::api;
use crate::model::api::TaskState;
use crate::model::Network;
use crate::model::Service;
use crate::model::Task;
use crate::store::Tables;

fn ip_of(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next()?.parse().ok()
}

fn add(names: &mut BTreeMap<String, Vec<IpAddr>>, name: &str, ip: IpAddr) {
    if name.is_empty() {
        return;
    }
    let v = names.entry(name.to_ascii_lowercase()).or_default();
    if !v.contains(&ip) {
        v.push(ip);
    }
}

/// Whether a task answers to its names: it runs and is meant to.
fn serving(t: &Task) -> bool {
    t.state() == TaskState::RUNNING && t.desired_state() == TaskState::RUNNING
}

/// The container name of a task, as the executor names it.
fn container_name(t: &Task) -> String {
    let id = t.api.id.as_deref().unwrap_or("");
    match t.api.slot.filter(|s| *s > 0) {
        Some(slot) => format!("{}.{slot}.{id}", t.service_name),
        None => format!("{}.{}.{id}", t.service_name, t.node_id().unwrap_or("")),
    }
}

/// Every non-ingress network's names.
pub fn service_records(t: &Tables) -> ServiceRecords {
    let mut by_net: BTreeMap<String, BTreeMap<String, Vec<IpAddr>>> = BTreeMap::new();
    for n in t.iter::<Network>() {
        if !is_ingress(n) {
            by_net.insert(n.api.id.clone().unwrap_or_default(), BTreeMap::new());
        }
    }
    let services: HashMap<&str, &Service> = t
        .iter::<Service>()
        .map(|s| (s.api.id.as_deref().unwrap_or(""), s))
        .collect();
    // Service names to VIPs.
    for s in services.values() {
        let dnsrr = s
            .api
            .endpoint
            .as_ref()
            .and_then(|e| e.spec.as_ref())
            .and_then(|e| e.mode)
            == Some(api::EndpointSpecModeEnum::DNSRR)
            || s.spec().endpoint_spec.as_ref().and_then(|e| e.mode)
                == Some(api::EndpointSpecModeEnum::DNSRR);
        if dnsrr {
            continue;
        }
        for vip in s
            .api
            .endpoint
            .as_ref()
            .and_then(|e| e.virtual_ips.as_ref())
            .into_iter()
            .flatten()
        {
            let (Some(net), Some(addr)) = (vip.network_id.as_deref(), vip.addr.as_deref()) else {
                continue;
            };
            if let (Some(names), Some(ip)) = (by_net.get_mut(net), ip_of(addr)) {
                add(names, s.name(), ip);
            }
        }
    }
    // Task addresses.
    for task in t.iter::<Task>().filter(|t| serving(t)) {
        let svc = services.get(task.service_id());
        let svc_name = svc.map(|s| s.name()).unwrap_or(&task.service_name);
        let dnsrr = svc.is_some_and(|s| {
            s.spec().endpoint_spec.as_ref().and_then(|e| e.mode)
                == Some(api::EndpointSpecModeEnum::DNSRR)
        });
        for a in &task.networks {
            let (Some(names), Some(ip)) = (
                by_net.get_mut(&a.network_id),
                a.addresses.first().and_then(|c| ip_of(c)),
            ) else {
                continue;
            };
            add(names, &format!("tasks.{svc_name}"), ip);
            if dnsrr {
                add(names, svc_name, ip);
            }
            add(names, &container_name(task), ip);
            for alias in &a.aliases {
                add(names, alias, ip);
            }
        }
    }
    ServiceRecords {
        networks: by_net
            .into_iter()
            .map(|(network_id, mut names)| {
                for v in names.values_mut() {
                    v.sort();
                }
                NetworkRecords {
                    network_id,
                    names,
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetworkAttachment;
    use crate::model::StoreObject;

    fn network(id: &str, ingress: bool) -> Network {
        let mut n = Network::default();
        n.api.id = Some(id.into());
        n.api.ingress = Some(ingress);
        n
    }

    fn service(id: &str, name: &str, vip: Option<(&str, &str)>, dnsrr: bool) -> Service {
        let mut s = Service::default();
        s.api.id = Some(id.into());
        s.api.spec = Some(api::ServiceSpec {
            name: Some(name.into()),
            endpoint_spec: Some(api::EndpointSpec {
                mode: Some(if dnsrr {
                    api::EndpointSpecModeEnum::DNSRR
                } else {
                    api::EndpointSpecModeEnum::VIP
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        s.api.endpoint = Some(api::ServiceEndpoint {
            virtual_ips: vip.map(|(n, a)| {
                vec![api::ServiceEndpointVirtualIps {
                    network_id: Some(n.into()),
                    addr: Some(a.into()),
                }]
            }),
            ..Default::default()
        });
        s
    }

    fn task(
        id: &str,
        svc: &str,
        name: &str,
        slot: i64,
        net: &str,
        addr: &str,
        state: TaskState,
    ) -> Task {
        let mut t = Task::default();
        t.api.id = Some(id.into());
        t.api.service_id = Some(svc.into());
        t.api.slot = Some(slot);
        t.service_name = name.into();
        t.api.desired_state = Some(TaskState::RUNNING);
        t.api.status = Some(api::TaskStatus {
            state: Some(state),
            ..Default::default()
        });
        t.networks = vec![NetworkAttachment {
            network_id: net.into(),
            addresses: vec![addr.into()],
            aliases: vec!["web-alias".into()],
        }];
        t
    }

    fn names<'a>(r: &'a ServiceRecords, net: &str) -> &'a BTreeMap<String, Vec<IpAddr>> {
        &r.networks
            .iter()
            .find(|n| n.network_id == net)
            .unwrap()
            .names
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn vips_tasks_names_and_dnsrr_per_network() {
        let mut t = Tables::default();
        t.put(network("ing", true).into_object());
        t.put(network("n1", false).into_object());
        t.put(network("n2", false).into_object());
        t.put(service("s1", "Web", Some(("n1", "10.0.1.2/24")), false).into_object());
        t.put(service("s2", "db", None, true).into_object());
        t.put(
            task(
                "t1",
                "s1",
                "Web",
                1,
                "n1",
                "10.0.1.3/24",
                TaskState::RUNNING,
            )
            .into_object(),
        );
        t.put(
            task(
                "t2",
                "s1",
                "Web",
                2,
                "n1",
                "10.0.1.4/24",
                TaskState::RUNNING,
            )
            .into_object(),
        );
        t.put(
            task(
                "t3",
                "s1",
                "Web",
                3,
                "n1",
                "10.0.1.5/24",
                TaskState::STARTING,
            )
            .into_object(),
        );
        t.put(task("t4", "s2", "db", 1, "n2", "10.0.2.3/24", TaskState::RUNNING).into_object());
        let r = service_records(&t);
        assert!(r.networks.iter().all(|n| n.network_id != "ing"));
        let n1 = names(&r, "n1");
        assert_eq!(n1["web"], vec![ip("10.0.1.2")]);
        assert_eq!(n1["tasks.web"], vec![ip("10.0.1.3"), ip("10.0.1.4")]);
        assert_eq!(n1["web.1.t1"], vec![ip("10.0.1.3")]);
        assert_eq!(n1["web-alias"], vec![ip("10.0.1.3"), ip("10.0.1.4")]);
        assert!(!n1.contains_key("db"), "db is not on n1");
        let n2 = names(&r, "n2");
        assert_eq!(
            n2["db"],
            vec![ip("10.0.2.3")],
            "dnsrr: the name lists tasks"
        );
        assert_eq!(n2["tasks.db"], vec![ip("10.0.2.3")]);
    }
}
