//! shoal's nftables rules: all of them live in one table, `ip shoal`, which
//! the driver replaces as a whole in one `nft -j -f -` transaction. Nothing
//! outside that table is ever read or written, so other rule owners (a host
//! firewall, dockerd's iptables-nft chains) are never disturbed, and
//! flushing or deleting the table removes exactly what shoal added.
//!
//! In the node's namespace the table holds:
//! - the egress masquerade of the gateway bridge (dockerd: `-t nat -A
//!   POSTROUTING -s <gwbridge subnet> ! -o docker_gwbridge -j MASQUERADE`),
//!   and the same for every non-internal node-local network's bridge (see
//!   [`crate::local`]);
//! - the isolation between those bridges (see `isolation.rs`);
//! - a guard against packets from the gateway bridge to 127.0.0.0/8, which
//!   `route_localnet` on the bridge would otherwise let tasks send to the
//!   node's loopback services (checked before conntrack, so the replies of
//!   published ports, addressed to the bridge, pass);
//! - published ports (see [`Forward`]): new connections to any local address
//!   on a published port are DNATed, from outside (prerouting) and from the
//!   node itself (output), to the gateway bridge address of a host-mode
//!   task, of one of the local tasks behind a routing-mesh port (in turn),
//!   or of the ingress sandbox (a mesh port with a backend elsewhere), or
//!   a standalone container's address on its node-local network,
//!   and the node's own connections, loopback included, are masqueraded
//!   onto the bridge so the answers come back through it (dockerd: `-o
//!   docker_gwbridge -m addrtype --src-type LOCAL -j MASQUERADE`), as are
//!   tasks' connections to their own node's published ports (hairpin).
//!
//! The ingress sandbox has a table of the same name in its own namespace
//! (see [`crate::ingress`]), built with the helpers here.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::expr::Fib;
use nftables::expr::FibFlag;
use nftables::expr::FibResult;
use nftables::expr::Map;
use nftables::expr::Meta;
use nftables::expr::MetaKey;
use nftables::expr::NamedExpression;
use nftables::expr::NgMode;
use nftables::expr::Numgen;
use nftables::expr::Payload;
use nftables::expr::PayloadField;
use nftables::expr::Prefix;
use nftables::expr::SetItem;
use nftables::expr::CT;
use nftables::helper;
use nftables::schema::Chain;
use nftables::schema::NfListObject;
use nftables::schema::Nftables;
use nftables::schema::Rule;
use nftables::schema::Table;
use nftables::stmt::JumpTarget;
use nftables::stmt::Match;
use nftables::stmt::Operator;
use nftables::stmt::Statement;
use nftables::stmt::NAT;
use nftables::types::NfChainPolicy;
use nftables::types::NfChainType;
use nftables::types::NfFamily;
use nftables::types::NfHook;
use swarm::exec::PortProtocol;

use crate::error::Result;
use crate::gwbridge::GWBRIDGE;
use crate::ingress::IngressRecord;
use crate::ingress::IngressRule;
use crate::isolation::Isolation;
use crate::state::Link;
use crate::state::NodeState;
use crate::state::TaskRecord;

/// The table every shoal rule lives in (family `ip`).
pub const TABLE: &str = "shoal";
/// `srcnat`, the priority of NAT in postrouting.
pub(crate) const SRCNAT_PRIORITY: i32 = 100;
/// `dstnat`, the priority of NAT in prerouting and output.
pub(crate) const DSTNAT_PRIORITY: i32 = -100;
/// `raw`: before conntrack.
const RAW_PRIORITY: i32 = -300;
const POSTROUTING: &str = "postrouting";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
const GUARD: &str = "guard";
/// The regular chain holding one DNAT per published port.
const PUBLISHED: &str = "published";
/// The regular chain with the gateway bridge's exceptions to `published`.
const FROM_TASKS: &str = "from_tasks";
const LOOPBACK_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(127, 0, 0, 0), 8);

/// The desired content of the `ip shoal` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Source subnets masqueraded when they leave through any interface
    /// other than `bridge`, their own: the gateway bridge's and every
    /// non-internal node-local network's.
    pub masquerade: Vec<(Ipv4Net, String)>,
    /// Published ports, by port then protocol.
    pub forwards: Vec<Forward>,
    /// What tasks' connections from the gateway bridge get instead for
    /// the mesh ports in `forwards` that go straight to local tasks: the
    /// ingress sandbox. With `br_netfilter` a DNAT back onto the bridge it
    /// came from is bridged port to port, and task ports are isolated from
    /// each other (the sandbox's is not), so a task could not reach the
    /// mesh through its own node otherwise.
    pub from_tasks: Vec<Forward>,
    /// The isolation between the bridges (see `isolation.rs`).
    pub isolation: Isolation,
}

/// One published port on the node: new connections to any local address
/// on `protocol`/`port` go to one of `to` (in turn) at `to_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The protocol.
    pub protocol: PortProtocol,
    /// The port on the node.
    pub port: u16,
    /// Gateway bridge addresses, never empty: the ingress sandbox's, a
    /// host-mode task's, or those of every task behind a mesh port.
    pub to: Vec<Ipv4Addr>,
    /// The port there (the published one for the ingress sandbox, the
    /// target for a task).
    pub to_port: u16,
}

impl Ruleset {
    /// The ruleset a node state needs, or `None` when the table should not
    /// exist. Host-mode ports of a task without a way in (internal
    /// networks only) are left out, as dockerd leaves them.
    pub fn for_state(state: &NodeState) -> Option<Ruleset> {
        if state.egress.is_none() && state.local_networks.is_empty() {
            return None;
        }
        let mut forwards = Vec::new();
        let mut from_tasks = Vec::new();
        if let Some(ingress) = &state.ingress {
            for p in &ingress.ports {
                let f = mesh_forward(state, ingress, p);
                let sandbox = via_sandbox(ingress, p);
                if f != sandbox {
                    from_tasks.push(sandbox);
                }
                forwards.push(f);
            }
        }
        for (task, ports) in &state.host_ports {
            let Some(rec) = state.tasks.get(task) else {
                continue;
            };
            let Some(to) = inbound_address(rec) else {
                continue;
            };
            forwards.extend(ports.iter().map(|p| Forward {
                protocol: p.protocol,
                port: p.published,
                to: vec![to],
                to_port: p.target,
            }));
        }
        forwards.sort_by(|a, b| {
            (a.port, a.protocol as u8, &a.to).cmp(&(b.port, b.protocol as u8, &b.to))
        });
        let gw = state
            .egress
            .iter()
            .map(|e| (e.subnet, GWBRIDGE.to_string()));
        let locals = state
            .local_networks
            .values()
            .filter(|n| !n.internal)
            .map(|n| (n.subnet, n.bridge.clone()));
        Some(Ruleset {
            masquerade: gw.chain(locals).collect(),
            forwards,
            from_tasks,
            isolation: Isolation::for_state(state),
        })
    }

    /// The transaction that replaces the table with this ruleset: declare,
    /// delete and re-create it, so whatever was there before is gone and a
    /// missing table is no error.
    pub fn to_nftables(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        replace_table(&mut batch);
        batch.add(base_chain(
            GUARD,
            NfChainType::Filter,
            NfHook::Prerouting,
            RAW_PRIORITY,
        ));
        batch.add(base_chain(
            POSTROUTING,
            NfChainType::NAT,
            NfHook::Postrouting,
            SRCNAT_PRIORITY,
        ));
        for (subnet, bridge) in &self.masquerade {
            let (lo, len) = LOOPBACK_NET;
            batch.add(rule(
                GUARD,
                vec![
                    iifname(bridge),
                    ip_in("daddr", lo, len),
                    Statement::Drop(None),
                ],
            ));
            batch.add(rule(POSTROUTING, masquerade(*subnet, bridge)));
        }
        if !self.forwards.is_empty() {
            self.add_forwards(&mut batch);
        }
        self.isolation.add_to(&mut batch);
        batch.to_nftables()
    }

    fn add_forwards(&self, batch: &mut Batch<'static>) {
        for (subnet, bridge) in &self.masquerade {
            batch.add(rule(
                POSTROUTING,
                vec![
                    oifname(bridge),
                    fib_type(FibFlag::Saddr),
                    Statement::Masquerade(None),
                ],
            ));
            // The bridge's own subnet sent back onto it after a DNAT: a
            // task reaching its own node's published port (the input
            // interface is unknown in postrouting).
            batch.add(rule(
                POSTROUTING,
                vec![
                    oifname(bridge),
                    ip_in("saddr", subnet.network(), u32::from(subnet.prefix_len())),
                    ct_status_dnat(),
                    Statement::Masquerade(None),
                ],
            ));
        }
        batch.add(NfListObject::Chain(Chain {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: PUBLISHED.into(),
            ..Chain::default()
        }));
        if !self.from_tasks.is_empty() {
            batch.add(NfListObject::Chain(Chain {
                family: NfFamily::IP,
                table: TABLE.into(),
                name: FROM_TASKS.into(),
                ..Chain::default()
            }));
        }
        for (name, hook) in [(PREROUTING, NfHook::Prerouting), (OUTPUT, NfHook::Output)] {
            batch.add(base_chain(name, NfChainType::NAT, hook, DSTNAT_PRIORITY));
            if name == PREROUTING && !self.from_tasks.is_empty() {
                // A DNAT there ends the hook; otherwise `published` follows.
                for (_, bridge) in &self.masquerade {
                    batch.add(rule(
                        name,
                        vec![iifname(bridge), fib_type(FibFlag::Daddr), jump(FROM_TASKS)],
                    ));
                }
            }
            batch.add(rule(name, vec![fib_type(FibFlag::Daddr), jump(PUBLISHED)]));
        }
        for (chain, forwards) in [(PUBLISHED, &self.forwards), (FROM_TASKS, &self.from_tasks)] {
            for f in forwards {
                batch.add(rule(
                    chain,
                    vec![
                        dport(f.protocol, f.port),
                        Statement::DNAT(Some(NAT {
                            addr: Some(round_robin(&f.to)),
                            family: None,
                            port: Some(Expression::Number(u32::from(f.to_port))),
                            flags: None,
                        })),
                    ],
                ));
            }
        }
    }
}

/// Where the node sends a routing-mesh port. When every backend is a task
/// on this node, straight to their gateway bridge addresses at the target
/// port: the path of a direct connection, one translation and no hop
/// through the sandbox (the task sees the client's address, or the
/// bridge's for the node's own connections). Otherwise (a backend on
/// another node, or none: refused there) to the ingress sandbox, which
/// reaches the ingress network.
fn mesh_forward(state: &NodeState, ingress: &IngressRecord, p: &IngressRule) -> Forward {
    let local: Option<Vec<Ipv4Addr>> = p
        .backends
        .iter()
        .map(|b| local_egress_address(state, &ingress.network, *b))
        .collect();
    match local {
        Some(to) if !to.is_empty() => Forward {
            protocol: p.protocol,
            port: p.published,
            to,
            to_port: p.target,
        },
        _ => via_sandbox(ingress, p),
    }
}

/// A routing-mesh port sent to the ingress sandbox, which picks a backend.
fn via_sandbox(ingress: &IngressRecord, p: &IngressRule) -> Forward {
    Forward {
        protocol: p.protocol,
        port: p.published,
        to: vec![ingress.iface.address.addr()],
        to_port: p.published,
    }
}

/// The gateway bridge address of the local task whose address on
/// `network` is `addr`, if that task has one.
fn local_egress_address(state: &NodeState, network: &str, addr: Ipv4Addr) -> Option<Ipv4Addr> {
    state
        .tasks
        .values()
        .find(|t| {
            t.interfaces.iter().any(|i| {
                i.address.addr() == addr
                    && matches!(&i.link, Link::Network { id, .. } if id == network)
            })
        })
        .and_then(egress_address)
}

/// Where a task's published ports go: its gateway bridge address, else
/// its address on its first non-internal node-local network.
fn inbound_address(task: &TaskRecord) -> Option<Ipv4Addr> {
    egress_address(task).or_else(|| {
        task.interfaces
            .iter()
            .find(|i| {
                matches!(
                    i.link,
                    Link::Local {
                        internal: false,
                        ..
                    }
                )
            })
            .map(|i| i.address.addr())
    })
}

/// A task's address on the gateway bridge, if it has a way out.
fn egress_address(task: &TaskRecord) -> Option<Ipv4Addr> {
    task.interfaces
        .iter()
        .find(|i| matches!(i.link, Link::Egress { .. }))
        .map(|i| i.address.addr())
}

/// The address of a new connection: the only one, or the next in turn
/// (`numgen inc mod N map { 0 : A, 1 : B, ... }`).
pub(crate) fn round_robin(backends: &[Ipv4Addr]) -> Expression<'static> {
    if let [one] = backends {
        return Expression::String(one.to_string().into());
    }
    // Indices and counts are bounded by the number of tasks of a service,
    // far below u32::MAX.
    let n = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    let items = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            SetItem::Mapping(
                Expression::Number(n(i)),
                Expression::String(b.to_string().into()),
            )
        })
        .collect();
    Expression::Named(NamedExpression::Map(Box::new(Map {
        key: Expression::Named(NamedExpression::Numgen(Numgen {
            mode: NgMode::Inc,
            ng_mod: n(backends.len()),
            offset: None,
        })),
        data: Expression::Named(NamedExpression::Set(items)),
    })))
}

/// Adds the commands that replace the `ip shoal` table with an empty one.
pub(crate) fn replace_table(batch: &mut Batch<'static>) {
    batch.add(table());
    batch.delete(table());
    batch.add(table());
}

/// A base chain of the `ip shoal` table, policy accept.
pub(crate) fn base_chain(
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> NfListObject<'static> {
    base_chain_of(TABLE, name, kind, hook, prio)
}

/// A base chain of the `ip` table `table`, policy accept.
pub(crate) fn base_chain_of(
    table: &'static str,
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: table.into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    rule_of(TABLE, chain, expr)
}

/// A rule of `chain` in the `ip` table `table`.
pub(crate) fn rule_of(
    table: &'static str,
    chain: &'static str,
    expr: Vec<Statement<'static>>,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: table.into(),
        chain: chain.into(),
        expr: Cow::Owned(expr),
        ..Rule::default()
    })
}

/// `LEFT OP RIGHT`
pub(crate) fn matches(
    left: Expression<'static>,
    right: Expression<'static>,
    op: Operator,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

/// `meta KEY`
pub(crate) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

/// `jump CHAIN`
fn jump(chain: &'static str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: chain.into(),
    })
}

/// `iifname NAME`
pub(crate) fn iifname(name: &str) -> Statement<'static> {
    matches(
        meta(MetaKey::Iifname),
        Expression::String(name.to_string().into()),
        Operator::EQ,
    )
}

/// `oifname NAME`
pub(crate) fn oifname(name: &str) -> Statement<'static> {
    matches(
        meta(MetaKey::Oifname),
        Expression::String(name.to_string().into()),
        Operator::EQ,
    )
}

/// `ct status dnat`: the connection's destination was translated.
pub(crate) fn ct_status_dnat() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::CT(CT {
            key: "status".into(),
            family: None,
            dir: None,
        })),
        Expression::String("dnat".into()),
        Operator::IN,
    )
}

/// `tcp dport PORT` (or `udp`, `sctp`)
pub(crate) fn dport(protocol: PortProtocol, port: u16) -> Statement<'static> {
    let protocol = match protocol {
        PortProtocol::Tcp => "tcp",
        PortProtocol::Udp => "udp",
        PortProtocol::Sctp => "sctp",
    };
    matches(
        payload(protocol, "dport"),
        Expression::Number(u32::from(port)),
        Operator::EQ,
    )
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

/// `ip FIELD ADDR/LEN`
pub(crate) fn ip_in(field: &'static str, addr: Ipv4Addr, len: u32) -> Statement<'static> {
    matches(
        payload("ip", field),
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(addr.to_string().into())),
            len,
        })),
        Operator::EQ,
    )
}

/// `fib FLAG type local`: the address (`saddr` or `daddr`) is one of the
/// node's own.
fn fib_type(flag: FibFlag) -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([flag]),
        })),
        Expression::String("local".into()),
        Operator::EQ,
    )
}

/// `ip saddr SUBNET oifname != BRIDGE masquerade`
fn masquerade(subnet: Ipv4Net, bridge: &str) -> Vec<Statement<'static>> {
    vec![
        ip_in("saddr", subnet.network(), u32::from(subnet.prefix_len())),
        matches(
            meta(MetaKey::Oifname),
            Expression::String(bridge.to_string().into()),
            Operator::NEQ,
        ),
        Statement::Masquerade(None),
    ]
}

fn table() -> NfListObject<'static> {
    table_of(TABLE)
}

/// The `ip` table `name`.
pub(crate) fn table_of(name: &'static str) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::IP,
        name: name.into(),
        handle: None,
    })
}

/// The transaction that deletes the table whether or not it exists.
pub fn delete_table() -> Nftables<'static> {
    delete_table_of(TABLE)
}

/// The transaction that deletes the `ip` table `name` whether or not it
/// exists (adding it first makes the delete never fail).
pub(crate) fn delete_table_of(name: &'static str) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(table_of(name));
    batch.delete(table_of(name));
    batch.to_nftables()
}

/// Applies a transaction through `nft -j -f -` in the caller's network
/// namespace (the process's: the driver never runs this from a thread that
/// entered another namespace).
pub async fn apply(doc: &Nftables<'_>) -> Result<()> {
    helper::apply_ruleset_async(doc).await?;
    Ok(())
}

/// Whether the `ip shoal` table exists.
pub async fn table_exists() -> Result<bool> {
    const ARGS: [&str; 3] = ["list", "tables", "ip"];
    let listed = helper::get_current_ruleset_raw_async(helper::DEFAULT_NFT, &ARGS).await?;
    // Read loosely (only the table names matter), so fields a newer `nft`
    // adds to its listing cannot break the check.
    let doc: serde_json::Value =
        serde_json::from_str(&listed).map_err(helper::NftablesError::NftInvalidJson)?;
    let objects = doc["nftables"].as_array().cloned().unwrap_or_default();
    Ok(objects
        .iter()
        .any(|o| o["table"]["name"] == TABLE && o["table"]["family"] == "ip"))
}

#[cfg(test)]
#[path = "nft_tests.rs"]
mod tests;
