//! shoal's nftables rules: all of them live in one table, `ip shoal`, which
//! the driver replaces as a whole in one `nft -j -f -` transaction. Nothing
//! outside that table is ever read or written, so other rule owners (a host
//! firewall, dockerd's iptables-nft chains) are never disturbed, and
//! flushing or deleting the table removes exactly what shoal added.
//!
//! In the node's namespace the table holds:
//! - the egress masquerade of the gateway bridge (dockerd: `-t nat -A
//!   POSTROUTING -s <gwbridge subnet> ! -o docker_gwbridge -j MASQUERADE`);
//! - a guard against packets from the gateway bridge to 127.0.0.0/8, which
//!   `route_localnet` on the bridge would otherwise let tasks send to the
//!   node's loopback services (checked before conntrack, so the replies of
//!   published ports, addressed to the bridge, pass);
//! - published ports (see [`Forward`]): new connections to any local address
//!   on a published port are DNATed, from outside (prerouting) and from the
//!   node itself (output), to the ingress sandbox or to a host-mode task,
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
use nftables::expr::Meta;
use nftables::expr::MetaKey;
use nftables::expr::NamedExpression;
use nftables::expr::Payload;
use nftables::expr::PayloadField;
use nftables::expr::Prefix;
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
use crate::state::Link;
use crate::state::NodeState;

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
const LOOPBACK_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(127, 0, 0, 0), 8);

/// The desired content of the `ip shoal` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Source subnets masqueraded when they leave through any interface
    /// other than `bridge`, their own.
    pub masquerade: Vec<(Ipv4Net, String)>,
    /// Published ports, by port then protocol.
    pub forwards: Vec<Forward>,
}

/// One published port on the node: new connections to any local address
/// on `protocol`/`port` go to `to`:`to_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The protocol.
    pub protocol: PortProtocol,
    /// The port on the node.
    pub port: u16,
    /// The ingress sandbox's or a host-mode task's gateway bridge address.
    pub to: Ipv4Addr,
    /// The port there (the published one for the ingress sandbox, the
    /// target for a task).
    pub to_port: u16,
}

impl Ruleset {
    /// The ruleset a node state needs, or `None` when the table should not
    /// exist. Host-mode ports of a task without a gateway bridge interface
    /// (internal networks only) have no way in and are left out, as
    /// dockerd leaves them.
    pub fn for_state(state: &NodeState) -> Option<Ruleset> {
        let egress = state.egress.as_ref()?;
        let mut forwards = Vec::new();
        if let Some(ingress) = &state.ingress {
            forwards.extend(ingress.ports.iter().map(|p| Forward {
                protocol: p.protocol,
                port: p.published,
                to: ingress.iface.address.addr(),
                to_port: p.published,
            }));
        }
        for (task, ports) in &state.host_ports {
            let Some(rec) = state.tasks.get(task) else {
                continue;
            };
            let Some(to) = rec
                .interfaces
                .iter()
                .find(|i| matches!(i.link, Link::Egress { .. }))
                .map(|i| i.address.addr())
            else {
                continue;
            };
            forwards.extend(ports.iter().map(|p| Forward {
                protocol: p.protocol,
                port: p.published,
                to,
                to_port: p.target,
            }));
        }
        forwards.sort_by_key(|f| (f.port, f.protocol as u8, f.to));
        Some(Ruleset {
            masquerade: vec![(egress.subnet, GWBRIDGE.to_string())],
            forwards,
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
        for (name, hook) in [(PREROUTING, NfHook::Prerouting), (OUTPUT, NfHook::Output)] {
            batch.add(base_chain(name, NfChainType::NAT, hook, DSTNAT_PRIORITY));
            batch.add(rule(
                name,
                vec![
                    fib_type(FibFlag::Daddr),
                    Statement::Jump(JumpTarget {
                        target: PUBLISHED.into(),
                    }),
                ],
            ));
        }
        for f in &self.forwards {
            batch.add(rule(
                PUBLISHED,
                vec![
                    dport(f.protocol, f.port),
                    Statement::DNAT(Some(NAT {
                        addr: Some(Expression::String(f.to.to_string().into())),
                        family: None,
                        port: Some(Expression::Number(u32::from(f.to_port))),
                        flags: None,
                    })),
                ],
            ));
        }
    }
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
    NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Cow::Owned(expr),
        ..Rule::default()
    })
}

fn matches(
    left: Expression<'static>,
    right: Expression<'static>,
    op: Operator,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
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
fn ip_in(field: &'static str, addr: Ipv4Addr, len: u32) -> Statement<'static> {
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
    NfListObject::Table(Table {
        family: NfFamily::IP,
        name: TABLE.into(),
        handle: None,
    })
}

/// The transaction that deletes the table whether or not it exists.
pub fn delete_table() -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
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
mod tests {
    use std::net::Ipv4Addr;

    use serde_json::json;
    use swarm::exec::HostPort;

    use super::*;
    use crate::ingress::IngressRecord;
    use crate::ingress::IngressRule;
    use crate::state::Egress;
    use crate::state::Interface;
    use crate::state::TaskRecord;

    fn egress_state() -> NodeState {
        NodeState {
            egress: Some(Egress {
                subnet: "172.18.0.0/16".parse().unwrap(),
                gateway: Ipv4Addr::new(172, 18, 0, 1),
            }),
            ..NodeState::default()
        }
    }

    fn gw_iface(name: &str, addr: &str) -> Interface {
        Interface {
            name: name.into(),
            address: addr.parse().unwrap(),
            mtu: 1500,
            mac: [0; 6],
            peer: format!("vg-{name}"),
            link: Link::Egress {
                gateway: Ipv4Addr::new(172, 18, 0, 1),
            },
        }
    }

    /// The document's commands after the table's replacement.
    fn body(rs: &Ruleset) -> Vec<serde_json::Value> {
        let doc = serde_json::to_value(rs.to_nftables()).unwrap();
        let all = doc["nftables"].as_array().unwrap().clone();
        assert_eq!(
            all[..3],
            [
                json!({"add": {"table": {"family": "ip", "name": "shoal"}}}),
                json!({"delete": {"table": {"family": "ip", "name": "shoal"}}}),
                json!({"add": {"table": {"family": "ip", "name": "shoal"}}}),
            ]
        );
        all[3..].to_vec()
    }

    fn rule_json(chain: &str, expr: serde_json::Value) -> serde_json::Value {
        json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": chain, "expr": expr}}})
    }

    fn chain_json(name: &str, kind: &str, hook: &str, prio: i32) -> serde_json::Value {
        json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
    }

    #[test]
    fn no_egress_no_table() {
        assert_eq!(Ruleset::for_state(&NodeState::default()), None);
    }

    #[test]
    fn masquerade_document_is_golden() {
        let rs = Ruleset::for_state(&egress_state()).unwrap();
        assert!(rs.forwards.is_empty());
        let want = vec![
            chain_json("guard", "filter", "prerouting", -300),
            chain_json("postrouting", "nat", "postrouting", 100),
            rule_json(
                "guard",
                json!([
                    {"match": {"left": {"meta": {"key": "iifname"}}, "right": "shoal_gwbridge", "op": "=="}},
                    {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}},
                               "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}, "op": "=="}},
                    {"drop": null}
                ]),
            ),
            rule_json(
                "postrouting",
                json!([
                    {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
                               "right": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "op": "=="}},
                    {"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal_gwbridge", "op": "!="}},
                    {"masquerade": null}
                ]),
            ),
        ];
        assert_eq!(body(&rs), want);
    }

    #[test]
    fn published_ports_document_is_golden() {
        let mut state = egress_state();
        state.ingress = Some(IngressRecord {
            network: "ing".into(),
            iface: gw_iface("gw0", "172.18.0.3/16"),
            ports: vec![IngressRule {
                protocol: PortProtocol::Tcp,
                published: 8080,
                target: 80,
                backends: vec![Ipv4Addr::new(10, 0, 0, 5)],
            }],
        });
        state.tasks.insert(
            "t1".into(),
            TaskRecord {
                interfaces: vec![gw_iface("eth0", "172.18.0.2/16")],
                resolv_conf: String::new(),
            },
        );
        let udp = HostPort {
            protocol: PortProtocol::Udp,
            published: 8081,
            target: 53,
        };
        state.host_ports.insert("t1".into(), vec![udp]);
        // Ports of a task that is gone (or has no way in) are left out.
        state.host_ports.insert("gone".into(), vec![udp]);

        let rs = Ruleset::for_state(&state).unwrap();
        assert_eq!(
            rs.forwards,
            vec![
                Forward {
                    protocol: PortProtocol::Tcp,
                    port: 8080,
                    to: Ipv4Addr::new(172, 18, 0, 3),
                    to_port: 8080
                },
                Forward {
                    protocol: PortProtocol::Udp,
                    port: 8081,
                    to: Ipv4Addr::new(172, 18, 0, 2),
                    to_port: 53
                },
            ]
        );
        let got = body(&rs);
        let br = json!({"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal_gwbridge", "op": "=="}});
        let local = |flag: &str| json!({"match": {"left": {"fib": {"result": "type", "flags": [flag]}}, "right": "local", "op": "=="}});
        let jump = json!({"jump": {"target": "published"}});
        let want = vec![
            rule_json(
                "postrouting",
                json!([br, local("saddr"), {"masquerade": null}]),
            ),
            rule_json(
                "postrouting",
                json!([br, {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
                           "right": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "op": "=="}},
                    {"match": {"left": {"ct": {"key": "status"}}, "right": "dnat", "op": "in"}},
                    {"masquerade": null}]),
            ),
            json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": "published"}}}),
            chain_json("prerouting", "nat", "prerouting", -100),
            rule_json("prerouting", json!([local("daddr"), jump])),
            chain_json("output", "nat", "output", -100),
            rule_json("output", json!([local("daddr"), jump])),
            rule_json(
                "published",
                json!([
                    {"match": {"left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080, "op": "=="}},
                    {"dnat": {"addr": "172.18.0.3", "port": 8080}}
                ]),
            ),
            rule_json(
                "published",
                json!([
                    {"match": {"left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 8081, "op": "=="}},
                    {"dnat": {"addr": "172.18.0.2", "port": 53}}
                ]),
            ),
        ];
        // After the guard, its rule and the egress masquerade.
        assert_eq!(got[4..], want[..]);
    }

    #[test]
    fn delete_document_tolerates_absence() {
        let got = serde_json::to_value(delete_table()).unwrap();
        let want = json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": "shoal"}}},
            {"delete": {"table": {"family": "ip", "name": "shoal"}}}
        ]});
        assert_eq!(got, want);
    }
}
