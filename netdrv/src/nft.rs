//! shoal's nftables rules: all of them live in one table, `ip shoal`, which
//! the driver replaces as a whole in one `nft -j -f -` transaction. Nothing
//! outside that table is ever read or written, so other rule owners (a host
//! firewall, dockerd's iptables-nft chains) are never disturbed, and
//! flushing or deleting the table removes exactly what shoal added.
//!
//! For now the table holds the egress masquerade of the gateway bridge
//! (dockerd: `-t nat -A POSTROUTING -s <gwbridge subnet> ! -o docker_gwbridge
//! -j MASQUERADE`); the service load-balancing and routing-mesh rules will
//! join the same ruleset.

use std::borrow::Cow;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::expr::Meta;
use nftables::expr::MetaKey;
use nftables::expr::NamedExpression;
use nftables::expr::Payload;
use nftables::expr::PayloadField;
use nftables::expr::Prefix;
use nftables::helper;
use nftables::schema::Chain;
use nftables::schema::NfListObject;
use nftables::schema::Nftables;
use nftables::schema::Rule;
use nftables::schema::Table;
use nftables::stmt::Match;
use nftables::stmt::Operator;
use nftables::stmt::Statement;
use nftables::types::NfChainPolicy;
use nftables::types::NfChainType;
use nftables::types::NfFamily;
use nftables::types::NfHook;

use crate::error::Result;
use crate::gwbridge::GWBRIDGE;
use crate::state::NodeState;

/// The table every shoal rule lives in (family `ip`).
pub const TABLE: &str = "shoal";
/// The source-NAT base chain.
const POSTROUTING: &str = "postrouting";
/// `srcnat`, the priority of NAT in postrouting.
const SRCNAT_PRIORITY: i32 = 100;

/// The desired content of the `ip shoal` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Source subnets masqueraded when they leave through any interface
    /// other than `bridge`, their own.
    pub masquerade: Vec<(Ipv4Net, String)>,
}

impl Ruleset {
    /// The ruleset a node state needs, or `None` when the table should not
    /// exist.
    pub fn for_state(state: &NodeState) -> Option<Ruleset> {
        let egress = state.egress.as_ref()?;
        Some(Ruleset {
            masquerade: vec![(egress.subnet, GWBRIDGE.to_string())],
        })
    }

    /// The transaction that replaces the table with this ruleset: declare,
    /// delete and re-create it, so whatever was there before is gone and a
    /// missing table is no error.
    pub fn to_nftables(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add(table());
        batch.delete(table());
        batch.add(table());
        batch.add(NfListObject::Chain(Chain {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: POSTROUTING.into(),
            _type: Some(NfChainType::NAT),
            hook: Some(NfHook::Postrouting),
            prio: Some(SRCNAT_PRIORITY),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        }));
        for (subnet, bridge) in &self.masquerade {
            batch.add(NfListObject::Rule(Rule {
                family: NfFamily::IP,
                table: TABLE.into(),
                chain: POSTROUTING.into(),
                expr: Cow::Owned(masquerade(*subnet, bridge)),
                ..Rule::default()
            }));
        }
        batch.to_nftables()
    }
}

/// `ip saddr SUBNET oifname != BRIDGE masquerade`
fn masquerade(subnet: Ipv4Net, bridge: &str) -> Vec<Statement<'static>> {
    vec![
        Statement::Match(Match {
            left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                PayloadField {
                    protocol: "ip".into(),
                    field: "saddr".into(),
                },
            ))),
            right: Expression::Named(NamedExpression::Prefix(Prefix {
                addr: Box::new(Expression::String(subnet.network().to_string().into())),
                len: u32::from(subnet.prefix_len()),
            })),
            op: Operator::EQ,
        }),
        Statement::Match(Match {
            left: Expression::Named(NamedExpression::Meta(Meta {
                key: MetaKey::Oifname,
            })),
            right: Expression::String(bridge.to_string().into()),
            op: Operator::NEQ,
        }),
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

    use super::*;
    use crate::state::Egress;

    #[test]
    fn no_egress_no_table() {
        assert_eq!(Ruleset::for_state(&NodeState::default()), None);
    }

    #[test]
    fn masquerade_document_is_golden() {
        let state = NodeState {
            egress: Some(Egress {
                subnet: "172.18.0.0/16".parse().unwrap(),
                gateway: Ipv4Addr::new(172, 18, 0, 1),
            }),
            ..NodeState::default()
        };
        let doc = Ruleset::for_state(&state).unwrap().to_nftables();
        let got = serde_json::to_value(&doc).unwrap();
        let want = serde_json::json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": "shoal"}}},
            {"delete": {"table": {"family": "ip", "name": "shoal"}}},
            {"add": {"table": {"family": "ip", "name": "shoal"}}},
            {"add": {"chain": {"family": "ip", "table": "shoal", "name": "postrouting",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
            {"add": {"rule": {"family": "ip", "table": "shoal", "chain": "postrouting", "expr": [
                {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
                           "right": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "op": "=="}},
                {"match": {"left": {"meta": {"key": "oifname"}}, "right": "shoal_gwbridge", "op": "!="}},
                {"masquerade": null}
            ]}}}
        ]});
        assert_eq!(got, want);
    }

    #[test]
    fn delete_document_tolerates_absence() {
        let got = serde_json::to_value(delete_table()).unwrap();
        let want = serde_json::json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": "shoal"}}},
            {"delete": {"table": {"family": "ip", "name": "shoal"}}}
        ]});
        assert_eq!(got, want);
    }
}
