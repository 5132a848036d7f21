//! **Pure**: the isolation between the bridges of the node's namespace
//! (the gateway bridge and every node-local network's), as dockerd's
//! `DOCKER-ISOLATION` chains give it, in the `forward` chain of the `ip
//! shoal` table:
//! - an internal network's bridge forwards nothing from or to outside its
//!   subnet (dockerd: `! -s SUBNET -o BR -j DROP`, `! -d SUBNET -i BR -j
//!   DROP`);
//! - connections the node DNATed (published ports) pass: a container
//!   reaches a published port from any network, as a client outside the
//!   node does (dockerd drops those between its bridges);
//! - nothing else is routed from one bridge to another.
//!
//! With the gateway bridge alone there is nothing to isolate (its own
//! ports are isolated from each other, see [`crate::gwbridge`]) and the
//! chain is left out.

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::expr::MetaKey;
use nftables::expr::NamedExpression;
use nftables::expr::Payload;
use nftables::expr::PayloadField;
use nftables::expr::Prefix;
use nftables::expr::SetItem;
use nftables::stmt::Operator;
use nftables::stmt::Statement;
use nftables::types::NfChainType;
use nftables::types::NfHook;

use crate::gwbridge::GWBRIDGE;
use crate::nft;
use crate::state::NodeState;

/// The chain's name.
const FORWARD: &str = "forward";
/// `filter`, the priority of the forward filter.
const FILTER_PRIORITY: i32 = 0;

/// One bridge of the node's namespace that tasks plug into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolatedBridge {
    /// The bridge's name.
    pub name: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// An internal network's: nothing in or out.
    pub internal: bool,
}

/// Every bridge to isolate from the others; empty: no chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isolation {
    /// The bridges, the gateway bridge first.
    pub bridges: Vec<IsolatedBridge>,
}

impl Isolation {
    /// The isolation `state` needs: none without node-local networks.
    pub fn for_state(state: &NodeState) -> Isolation {
        if state.local_networks.is_empty() {
            return Isolation::default();
        }
        let gw = state.egress.iter().map(|e| IsolatedBridge {
            name: GWBRIDGE.to_string(),
            subnet: e.subnet,
            internal: false,
        });
        let locals = state.local_networks.values().map(|n| IsolatedBridge {
            name: n.bridge.clone(),
            subnet: n.subnet,
            internal: n.internal,
        });
        Isolation {
            bridges: gw.chain(locals).collect(),
        }
    }

    /// Adds the `forward` chain and its rules to `batch` (nothing when
    /// there is nothing to isolate).
    pub fn add_to(&self, batch: &mut Batch<'static>) {
        if self.bridges.is_empty() {
            return;
        }
        batch.add(nft::base_chain(
            FORWARD,
            NfChainType::Filter,
            NfHook::Forward,
            FILTER_PRIORITY,
        ));
        for b in self.bridges.iter().filter(|b| b.internal) {
            batch.add(nft::rule_of(
                nft::TABLE,
                FORWARD,
                vec![
                    nft::iifname(&b.name),
                    outside("daddr", b.subnet),
                    Statement::Drop(None),
                ],
            ));
            batch.add(nft::rule_of(
                nft::TABLE,
                FORWARD,
                vec![
                    nft::oifname(&b.name),
                    outside("saddr", b.subnet),
                    Statement::Drop(None),
                ],
            ));
        }
        batch.add(nft::rule_of(
            nft::TABLE,
            FORWARD,
            vec![nft::ct_status_dnat(), Statement::Accept(None)],
        ));
        for b in &self.bridges {
            let others: Vec<SetItem<'static>> = self
                .bridges
                .iter()
                .filter(|o| o.name != b.name)
                .map(|o| SetItem::Element(Expression::String(o.name.clone().into())))
                .collect();
            if others.is_empty() {
                continue;
            }
            batch.add(nft::rule_of(
                nft::TABLE,
                FORWARD,
                vec![
                    nft::iifname(&b.name),
                    nft::matches(
                        nft::meta(MetaKey::Oifname),
                        Expression::Named(NamedExpression::Set(others)),
                        Operator::EQ,
                    ),
                    Statement::Drop(None),
                ],
            ));
        }
    }
}

/// `ip FIELD != SUBNET`
fn outside(field: &'static str, subnet: Ipv4Net) -> Statement<'static> {
    nft::matches(
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: "ip".into(),
                field: field.into(),
            },
        ))),
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(subnet.network().to_string().into())),
            len: u32::from(subnet.prefix_len()),
        })),
        Operator::NEQ,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(i: &Isolation) -> Vec<serde_json::Value> {
        let mut b = Batch::new();
        i.add_to(&mut b);
        serde_json::to_value(b.to_nftables()).unwrap()["nftables"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn bridge(name: &str, subnet: &str, internal: bool) -> IsolatedBridge {
        IsolatedBridge {
            name: name.into(),
            subnet: subnet.parse().unwrap(),
            internal,
        }
    }

    #[test]
    fn nothing_to_isolate_without_local_networks() {
        assert_eq!(
            Isolation::for_state(&NodeState::default()),
            Isolation::default()
        );
        assert!(doc(&Isolation::default()).is_empty());
    }

    #[test]
    fn forward_document_is_golden() {
        let i = Isolation {
            bridges: vec![
                bridge("shoal_gwbridge", "172.18.0.0/16", false),
                bridge("br-a", "172.17.0.0/16", false),
                bridge("br-in", "10.5.0.0/24", true),
            ],
        };
        let rule = |expr: serde_json::Value| json!({"add": {"rule": {"family": "ip", "table": "shoal", "chain": "forward", "expr": expr}}});
        let name = |k: &str, v: serde_json::Value| json!({"match": {"left": {"meta": {"key": k}}, "right": v, "op": "=="}});
        let outside = |f: &str| {
            json!({"match": {"left": {"payload": {"protocol": "ip", "field": f}},
                "right": {"prefix": {"addr": "10.5.0.0", "len": 24}}, "op": "!="}})
        };
        let drop = json!({"drop": null});
        let want = vec![
            json!({"add": {"chain": {"family": "ip", "table": "shoal", "name": "forward",
                "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}),
            rule(json!([
                name("iifname", json!("br-in")),
                outside("daddr"),
                drop
            ])),
            rule(json!([
                name("oifname", json!("br-in")),
                outside("saddr"),
                drop
            ])),
            rule(json!([
                {"match": {"left": {"ct": {"key": "status"}}, "right": "dnat", "op": "in"}},
                {"accept": null}
            ])),
            rule(json!([
                name("iifname", json!("shoal_gwbridge")),
                name("oifname", json!({"set": ["br-a", "br-in"]})),
                drop
            ])),
            rule(json!([
                name("iifname", json!("br-a")),
                name("oifname", json!({"set": ["shoal_gwbridge", "br-in"]})),
                drop
            ])),
            rule(json!([
                name("iifname", json!("br-in")),
                name("oifname", json!({"set": ["shoal_gwbridge", "br-a"]})),
                drop
            ])),
        ];
        assert_eq!(doc(&i), want);
    }
}
