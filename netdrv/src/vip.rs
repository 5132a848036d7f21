//! Service VIPs: connections from a task to a service's virtual IP are
//! spread across the service's serving tasks (`--endpoint-mode vip`).
//!
//! dockerd puts an IPVS service per VIP inside each container's namespace
//! (fwmark-based, so every port and protocol of the VIP is balanced). This
//! kernel has no IPVS, so each task's namespace gets an nftables table of
//! its own, `ip shoal_vip`, instead:
//! - a nat chain on the output hook DNATs the first packet of each new
//!   connection to a VIP to one backend, in turn (`numgen inc mod N map`);
//!   conntrack carries the rest of the connection and undoes the
//!   translation on the replies, which come straight from the backend;
//! - a filter chain on the output hook refuses connections to a VIP with no
//!   backends (TCP reset, ICMP port unreachable otherwise), so clients fail
//!   at once instead of waiting on an address nothing owns.
//!
//! The table holds the VIPs of every network the task is attached to and
//! nothing else, and is replaced as a whole in one `nft -j -f -`
//! transaction run inside the namespace; it dies with the namespace, so a
//! detach leaves nothing behind. A task whose networks have no VIPs has no
//! table.
//!
//! The driver keeps the last records and, per task, the last table it
//! applied in memory only: after a restart every table is applied again
//! (at the next attach or records update), which is harmless.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::HashSet;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use futures::StreamExt;
use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::expr::MetaKey;
use nftables::expr::NamedExpression;
use nftables::expr::Payload;
use nftables::expr::PayloadField;
use nftables::helper;
use nftables::schema::NfListObject;
use nftables::schema::Nftables;
use nftables::schema::Rule;
use nftables::stmt::Operator;
use nftables::stmt::Reject;
use nftables::stmt::RejectType;
use nftables::stmt::Statement;
use nftables::stmt::NAT;
use nftables::types::NfChainType;
use nftables::types::NfFamily;
use nftables::types::NfHook;
use swarm::exec::ServiceRecords;

use crate::error::Result;
use crate::netns;
use crate::nft;
use crate::nft::meta;
use crate::nft::DSTNAT_PRIORITY;
use crate::state::Link;
use crate::state::TaskRecord;
use crate::OverlayDriver;

/// The table, in each task's own namespace (family `ip`).
pub const TABLE: &str = "shoal_vip";
/// The nat chain that picks a backend.
const BALANCE: &str = "balance";
/// The filter chain that refuses VIPs without backends.
const REFUSE: &str = "refuse";
/// `filter`: after the DNAT, so only untranslated VIPs reach it.
const FILTER_PRIORITY: i32 = 0;
/// How many task namespaces one records update rewrites at once (each is
/// an `nft` process): enough to stay well under a second for a node's
/// tasks, few enough not to swamp a small machine.
const PARALLEL_APPLIES: usize = 4;

/// One VIP as a task's table needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// The service's name (the rules' comment).
    pub service: String,
    /// The virtual address.
    pub vip: Ipv4Addr,
    /// The serving tasks' addresses, in the records' order, without
    /// duplicates; empty: connections are refused.
    pub backends: Vec<Ipv4Addr>,
}

/// The VIPs of every network, from the last records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipsByNetwork(BTreeMap<String, Vec<Vip>>);

impl VipsByNetwork {
    /// The VIPs `records` list, by network. IPv6 VIPs and backends are left
    /// out: the table is IPv4, like the networks.
    pub fn from_records(records: &ServiceRecords) -> VipsByNetwork {
        let v4 = |a: &IpAddr| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        };
        let mut by_network = BTreeMap::new();
        for net in &records.networks {
            let vips: Vec<Vip> = net
                .vips
                .iter()
                .filter_map(|v| {
                    let mut backends: Vec<Ipv4Addr> = Vec::new();
                    for b in v.backends.iter().filter_map(v4) {
                        // A duplicate would get twice the share.
                        if !backends.contains(&b) {
                            backends.push(b);
                        }
                    }
                    Some(Vip {
                        service: v.service.clone(),
                        vip: v4(&v.vip)?,
                        backends,
                    })
                })
                .collect();
            if !vips.is_empty() {
                by_network.insert(net.network_id.clone(), vips);
            }
        }
        VipsByNetwork(by_network)
    }
}

/// The desired content of one task's `ip shoal_vip` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRuleset {
    /// The VIPs of the task's networks, by address.
    pub vips: Vec<Vip>,
}

impl VipRuleset {
    /// The table `task` needs, or `None` when its networks have no VIPs. A
    /// VIP listed on two of its networks keeps the first network's entry
    /// (in attachment order).
    pub fn for_task(vips: &VipsByNetwork, task: &TaskRecord) -> Option<VipRuleset> {
        let mut wanted: Vec<Vip> = Vec::new();
        for iface in &task.interfaces {
            let Link::Network { id, .. } = &iface.link else {
                continue;
            };
            for v in vips.0.get(id).into_iter().flatten() {
                if !wanted.iter().any(|w| w.vip == v.vip) {
                    wanted.push(v.clone());
                }
            }
        }
        if wanted.is_empty() {
            return None;
        }
        wanted.sort_by_key(|v| v.vip);
        Some(VipRuleset { vips: wanted })
    }

    /// The transaction that replaces the table with this one: declare,
    /// delete and re-create it, so whatever was there is gone and a missing
    /// table is no error.
    pub fn to_nftables(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add(table());
        batch.delete(table());
        batch.add(table());
        batch.add(base_chain(BALANCE, NfChainType::NAT, DSTNAT_PRIORITY));
        for v in self.vips.iter().filter(|v| !v.backends.is_empty()) {
            batch.add(rule(
                BALANCE,
                &v.service,
                vec![
                    daddr(v.vip),
                    Statement::DNAT(Some(NAT {
                        addr: Some(crate::nft::round_robin(&v.backends)),
                        family: None,
                        port: None,
                        flags: None,
                    })),
                ],
            ));
        }
        let empty: Vec<&Vip> = self.vips.iter().filter(|v| v.backends.is_empty()).collect();
        if !empty.is_empty() {
            batch.add(base_chain(REFUSE, NfChainType::Filter, FILTER_PRIORITY));
        }
        for v in empty {
            // A reset makes connect() fail with "connection refused" at
            // once; other protocols get the ICMP error a closed port gives.
            batch.add(rule(
                REFUSE,
                &v.service,
                vec![
                    daddr(v.vip),
                    matches(meta(MetaKey::L4proto), Expression::String("tcp".into())),
                    Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
                ],
            ));
            batch.add(rule(
                REFUSE,
                &v.service,
                vec![daddr(v.vip), Statement::Reject(None)],
            ));
        }
        batch.to_nftables()
    }
}

/// The transaction that deletes the table whether or not it exists.
pub fn delete_table() -> Nftables<'static> {
    nft::delete_table_of(TABLE)
}

fn table() -> NfListObject<'static> {
    nft::table_of(TABLE)
}

fn base_chain(name: &'static str, kind: NfChainType, prio: i32) -> NfListObject<'static> {
    nft::base_chain_of(TABLE, name, kind, NfHook::Output, prio)
}

fn rule(
    chain: &'static str,
    service: &str,
    expr: Vec<Statement<'static>>,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Cow::Owned(expr),
        // nft limits comments to 128 bytes; service names are shorter
        // (63), but a longer one must not fail the whole table.
        comment: Some(Cow::Owned(truncated(service, 128))),
        ..Rule::default()
    })
}

fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    nft::matches(left, right, Operator::EQ)
}

/// `ip daddr ADDR`
fn daddr(addr: Ipv4Addr) -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: "ip".into(),
                field: "daddr".into(),
            },
        ))),
        Expression::String(addr.to_string().into()),
    )
}

/// The last records' VIPs and what each task's namespace holds. Touched
/// only with the driver's state lock held, so the plain mutex is never
/// contended; it is never held across an await.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    inner: std::sync::Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    vips: VipsByNetwork,
    /// Per task, the table its namespace has (`None`: no table). A task
    /// not listed is unknown: its table is applied whatever it should be.
    applied: HashMap<String, Option<VipRuleset>>,
}

impl Balancer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets `task`'s table (its namespace is gone or going).
    pub(crate) fn forget(&self, task: &str) {
        self.lock().applied.remove(task);
    }

    /// Forgets the tables of the tasks not in `keep`.
    pub(crate) fn retain(&self, keep: &HashSet<String>) {
        self.lock().applied.retain(|t, _| keep.contains(t));
    }

    fn record(&self, task: &str, ruleset: Option<VipRuleset>) {
        self.lock().applied.insert(task.to_string(), ruleset);
    }
}

impl OverlayDriver {
    /// Takes the VIPs of `records` and rewrites the table of every attached
    /// task whose table changes; returns once all are in place (a task's
    /// new connections follow the records from then on). A failed task is
    /// retried at the next update; the first failure is returned after the
    /// others are done.
    pub(crate) async fn apply_vips(&self, records: &ServiceRecords) -> Result<()> {
        let current = self.state.lock().await;
        let vips = VipsByNetwork::from_records(records);
        let changed: Vec<(String, PathBuf, Option<VipRuleset>)> = {
            let mut inner = self.vips.lock();
            inner.vips = vips;
            inner.applied.retain(|t, _| current.tasks.contains_key(t));
            current
                .tasks
                .iter()
                .filter_map(|(task, rec)| {
                    let want = VipRuleset::for_task(&inner.vips, rec);
                    if inner.applied.get(task) == Some(&want) {
                        return None;
                    }
                    let path = self.task_netns_path(task);
                    // A namespace gone behind the driver's back is made
                    // anew, table included, by the next attach.
                    netns::is_mounted(&path).then(|| (task.clone(), path, want))
                })
                .collect()
        };
        if changed.is_empty() {
            return Ok(());
        }
        let count = changed.len();
        let results: Vec<Result<()>> = futures::stream::iter(changed)
            .map(|(task, path, want)| async move {
                self.vips.forget(&task);
                let applied = apply_in(path, want.as_ref()).await;
                match &applied {
                    Ok(()) => self.vips.record(&task, want),
                    Err(e) => tracing::warn!(task, error = %e, "updating the VIP table"),
                }
                applied
            })
            .buffer_unordered(PARALLEL_APPLIES)
            .collect()
            .await;
        tracing::debug!(tasks = count, "VIP tables updated");
        results.into_iter().collect()
    }

    /// Whether new connections may still reach `task` through a VIP or a
    /// published port of this node: a table in place, or one the last
    /// records ask for, lists one of its addresses. The state lock makes
    /// tables being rewritten count as what they were.
    pub(crate) async fn still_balanced(&self, task: &str) -> bool {
        let current = self.state.lock().await;
        let Some(rec) = current.tasks.get(task) else {
            return false;
        };
        let mine: Vec<Ipv4Addr> = rec
            .interfaces
            .iter()
            .filter(|i| matches!(i.link, Link::Network { .. }))
            .map(|i| i.address.addr())
            .collect();
        let listed = |backends: &[Ipv4Addr]| backends.iter().any(|b| mine.contains(b));
        let meshed = current
            .ingress
            .as_ref()
            .is_some_and(|i| i.ports.iter().any(|p| listed(&p.backends)));
        if meshed {
            return true;
        }
        let inner = self.vips.lock();
        // Still a backend in the cluster's records: a balancer on another
        // node may send to it.
        let in_records = inner.vips.0.values().flatten().any(|v| listed(&v.backends));
        if in_records {
            return true;
        }
        current.tasks.iter().any(|(t, r)| {
            let want = VipRuleset::for_task(&inner.vips, r);
            let applied = inner.applied.get(t).and_then(Option::as_ref);
            let lists = |rs: &VipRuleset| rs.vips.iter().any(|v| listed(&v.backends));
            want.as_ref().is_some_and(lists) || applied.is_some_and(lists)
        })
    }

    /// Gives `task` (just attached, its record `rec`) the table the last
    /// records ask for. `fresh`: its namespace was just made, so it has no
    /// table yet and one that should have none needs no `nft` run.
    pub(crate) async fn apply_task_vips(
        &self,
        task: &str,
        rec: &TaskRecord,
        fresh: bool,
    ) -> Result<()> {
        let want = VipRuleset::for_task(&self.vips.lock().vips, rec);
        self.vips.forget(task);
        if !(fresh && want.is_none()) {
            apply_in(self.task_netns_path(task), want.as_ref()).await?;
        }
        self.vips.record(task, want);
        Ok(())
    }
}

/// Replaces (or, for `None`, deletes) the table in the namespace at
/// `netns`: `nft` is forked from a thread inside it, so it inherits it.
async fn apply_in(netns: PathBuf, ruleset: Option<&VipRuleset>) -> Result<()> {
    let doc = match ruleset {
        Some(r) => r.to_nftables(),
        None => delete_table(),
    };
    netns::run_in(&netns, move || Ok(helper::apply_ruleset(&doc)?)).await
}

#[cfg(test)]
#[path = "vip_tests.rs"]
mod tests;
