//! What steers encrypted networks' VXLAN datagrams into the TUN and keeps
//! their plaintext off the wire: an nftables table of its own plus a policy
//! routing rule and table.
//!
//! The `ip shoal-seal` table (apart from the driver's `ip shoal`, so each is
//! replaced whole by its owner without touching the other) matches VXLAN
//! datagrams by UDP destination port and by VNI, the 24 bits at byte 4 of
//! the VXLAN header (`@th,96,24`: 8 bytes of UDP header, then 4). For the
//! encrypted VNIs it has three rules:
//! - `steer` (route hook, output): sets the fwmark on the node's own
//!   datagrams; the kernel then routes them again, and the rule
//!   `fwmark <mark> lookup <table>` sends them to `default dev <tun>`.
//! - `leak` (postrouting): drops them if they would leave by any other
//!   interface, so a missing route or rule (the TUN gone with a crashed
//!   shoald, a hand-deleted rule) fails closed instead of sending
//!   plaintext.
//! - `inbound` (input): drops them unless they come out of the TUN, so
//!   nobody on the underlay can inject plain frames into an encrypted
//!   network.
//!
//! The table is rewritten in one transaction (declare, delete, re-create)
//! whenever the set of VNIs changes, so a packet sees either the old rules
//! or the new ones. With no encrypted VNI the chains are empty.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use futures::TryStreamExt;
use netlink_packet_route::route::RouteAttribute;
use netlink_packet_route::rule::RuleAction;
use netlink_packet_route::rule::RuleAttribute;
use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::expr::MetaKey;
use nftables::expr::NamedExpression;
use nftables::expr::Payload;
use nftables::expr::PayloadBase;
use nftables::expr::PayloadField;
use nftables::expr::PayloadRaw;
use nftables::expr::SetItem;
use nftables::schema::Chain;
use nftables::schema::NfListObject;
use nftables::schema::Nftables;
use nftables::schema::Rule;
use nftables::schema::Table;
use nftables::stmt::Mangle;
use nftables::stmt::Operator;
use nftables::stmt::Statement;
use nftables::types::NfChainPolicy;
use nftables::types::NfChainType;
use nftables::types::NfFamily;
use nftables::types::NfHook;
use nix::errno::Errno;
use rtnetlink::Handle;
use rtnetlink::IpVersion;
use rtnetlink::RouteMessageBuilder;

use crate::error::Error;
use crate::error::Result;
use crate::nft;
use crate::nft::matches;
use crate::nft::meta;

/// The nftables table (family `ip`) the tunnel owns.
pub const TABLE: &str = "shoal-seal";
/// The policy routing rule's priority: ahead of the main table (32766),
/// behind the local one (0).
pub const RULE_PRIORITY: u32 = 1000;
/// `mangle`: where route chains usually sit.
const MANGLE_PRIORITY: i32 = -150;
/// `filter`.
const FILTER_PRIORITY: i32 = 0;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// What the rules match and where they send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steering {
    /// The VXLAN UDP port.
    pub data_port: u16,
    /// The TUN's name.
    pub tun: String,
    /// The fwmark that selects the tunnel's routing table.
    pub fwmark: u32,
}

/// The transaction that replaces the table with one steering `vnis`.
pub fn table_document(s: &Steering, vnis: &BTreeSet<u32>) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.add(table());
    let chains = [
        ("steer", NfChainType::Route, NfHook::Output, MANGLE_PRIORITY),
        (
            "from_tun",
            NfChainType::Filter,
            NfHook::Prerouting,
            MANGLE_PRIORITY,
        ),
        (
            "leak",
            NfChainType::Filter,
            NfHook::Postrouting,
            FILTER_PRIORITY,
        ),
        (
            "inbound",
            NfChainType::Filter,
            NfHook::Input,
            FILTER_PRIORITY,
        ),
    ];
    for (name, kind, hook, prio) in chains {
        batch.add(chain(name, kind, hook, prio));
    }
    let tun = |key, op| matches(meta(key), Expression::String(s.tun.clone().into()), op);
    // Opened datagrams carry the mark through the routing decision only
    // (see the module docs: the reverse-path check).
    batch.add(plain_rule(
        "from_tun",
        vec![tun(MetaKey::Iifname, Operator::EQ), set_mark(s.fwmark)],
    ));
    batch.add(plain_rule(
        "inbound",
        vec![tun(MetaKey::Iifname, Operator::EQ), set_mark(0)],
    ));
    if !vnis.is_empty() {
        batch.add(rule("steer", s, vnis, vec![set_mark(s.fwmark)]));
        batch.add(rule(
            "leak",
            s,
            vnis,
            vec![tun(MetaKey::Oifname, Operator::NEQ), Statement::Drop(None)],
        ));
        batch.add(rule(
            "inbound",
            s,
            vnis,
            vec![tun(MetaKey::Iifname, Operator::NEQ), Statement::Drop(None)],
        ));
    }
    batch.to_nftables()
}

/// The transaction that makes (or replaces) the `bridge shoal-seal`
/// table of an encrypted network's sandbox: frames the bridge sends out of
/// the network's VXLAN device `device` carry `fwmark`.
///
/// The VXLAN device looks the route to the peer up with the frame's mark,
/// so a marked frame is routed into the TUN from the start. Unmarked, it
/// would be routed by the underlay link first, and the device would hold
/// the overlay to that link's MTU (it answers larger frames with
/// "fragmentation needed") before the `steer` chain moved the datagram to
/// the TUN; marked, the overlay can use the TUN's MTU, and one sealed
/// frame carries up to 64 KB instead of 1.4 KB (the underlay fragments
/// it). The mark goes with the namespace crossing, after the lookup.
pub fn sandbox_document(device: &str, fwmark: u32) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(bridge_table());
    batch.delete(bridge_table());
    batch.add(bridge_table());
    // Forwarded: the tasks' frames; output: the sandbox's own.
    for (name, hook) in [("forward", NfHook::Forward), ("output", NfHook::Output)] {
        batch.add(NfListObject::Chain(Chain {
            family: NfFamily::Bridge,
            table: TABLE.into(),
            name: name.into(),
            _type: Some(NfChainType::Filter),
            hook: Some(hook),
            prio: Some(FILTER_PRIORITY),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        }));
        batch.add(NfListObject::Rule(Rule {
            family: NfFamily::Bridge,
            table: TABLE.into(),
            chain: name.into(),
            expr: vec![nft::oifname(device), set_mark(fwmark)].into(),
            ..Rule::default()
        }));
    }
    batch.to_nftables()
}

/// The transaction that deletes a sandbox's `bridge shoal-seal` table
/// whether or not it exists.
pub fn sandbox_delete_document() -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(bridge_table());
    batch.delete(bridge_table());
    batch.to_nftables()
}

fn bridge_table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::Bridge,
        name: TABLE.into(),
        handle: None,
    })
}

/// `meta mark set MARK`
fn set_mark(mark: u32) -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::Number(mark),
    })
}

/// The transaction that deletes the table whether or not it exists.
pub fn delete_document() -> Nftables<'static> {
    nft::delete_table_of(TABLE)
}

fn table() -> NfListObject<'static> {
    nft::table_of(TABLE)
}

fn chain(name: &'static str, kind: NfChainType, hook: NfHook, prio: i32) -> NfListObject<'static> {
    nft::base_chain_of(TABLE, name, kind, hook, prio)
}

/// `udp dport PORT @th,96,24 { VNIS } THEN`
fn rule(
    chain: &'static str,
    s: &Steering,
    vnis: &BTreeSet<u32>,
    then: Vec<Statement<'static>>,
) -> NfListObject<'static> {
    let dport = Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: "udp".into(),
            field: "dport".into(),
        },
    )));
    let vni = Expression::Named(NamedExpression::Payload(Payload::PayloadRaw(PayloadRaw {
        base: PayloadBase::TH,
        offset: 96,
        len: 24,
    })));
    let set = Expression::Named(NamedExpression::Set(
        vnis.iter()
            .map(|v| SetItem::Element(Expression::Number(*v)))
            .collect(),
    ));
    let mut expr = vec![
        matches(
            dport,
            Expression::Number(u32::from(s.data_port)),
            Operator::EQ,
        ),
        matches(vni, set, Operator::EQ),
    ];
    expr.extend(then);
    plain_rule(chain, expr)
}

/// A rule of the table's `chain`.
fn plain_rule(chain: &'static str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    nft::rule_of(TABLE, chain, expr)
}

fn errno(e: &rtnetlink::Error) -> Option<Errno> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(Errno::from_raw(-m.raw_code())),
        _ => None,
    }
}

/// Adds `fwmark <mark> lookup <table>` (after removing any copy of it).
pub async fn add_rule(nl: &Handle, fwmark: u32, table: u32) -> Result<()> {
    remove_rules(nl, fwmark, table).await?;
    nl.rule()
        .add()
        .v4()
        .fw_mark(fwmark)
        .table_id(table)
        .priority(RULE_PRIORITY)
        .action(RuleAction::ToTable)
        .execute()
        .await
        .map_err(Error::netlink(format!(
            "add rule fwmark {fwmark:#x} lookup {table}"
        )))
}

/// Removes every IPv4 rule `fwmark <mark> lookup <table>`; none is fine.
pub async fn remove_rules(nl: &Handle, fwmark: u32, table: u32) -> Result<()> {
    let rules: Vec<_> = nl
        .rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(Error::netlink("list rules"))?;
    for r in rules {
        let mark = r
            .attributes
            .iter()
            .any(|a| matches!(a, RuleAttribute::FwMark(m) if *m == fwmark));
        let lookup = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RuleAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(r.header.table));
        if !(mark && lookup == table) {
            continue;
        }
        match nl.rule().del(r).execute().await {
            Err(e) if errno(&e) == Some(Errno::ENOENT) => {}
            other => other.map_err(Error::netlink(format!("delete rule fwmark {fwmark:#x}")))?,
        }
    }
    Ok(())
}

/// Adds `default dev <index>` to routing table `table`.
pub async fn add_route(nl: &Handle, table: u32, index: u32) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .output_interface(index)
        .table_id(table)
        .build();
    match nl.route().add(route).execute().await {
        Err(e) if errno(&e) == Some(Errno::EEXIST) => Ok(()),
        other => other.map_err(Error::netlink(format!(
            "add default route to table {table}"
        ))),
    }
}

/// Deletes every IPv4 route of routing table `table`.
pub async fn flush_table(nl: &Handle, table: u32) -> Result<()> {
    let query = RouteMessageBuilder::<Ipv4Addr>::new()
        .table_id(table)
        .build();
    let routes: Vec<_> = nl
        .route()
        .get(query)
        .execute()
        .try_collect()
        .await
        .map_err(Error::netlink(format!("list routes of table {table}")))?;
    for r in routes {
        let in_table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(r.header.table));
        if in_table != table {
            continue;
        }
        match nl.route().del(r).execute().await {
            Err(e) if errno(&e) == Some(Errno::ESRCH) => {}
            other => other.map_err(Error::netlink(format!("delete a route of table {table}")))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use serde_json::Value;

    use super::*;

    fn steering() -> Steering {
        Steering {
            data_port: 4789,
            tun: "shoal-seal".into(),
            fwmark: 0x5ea1,
        }
    }

    fn body(doc: &Nftables<'_>) -> Vec<Value> {
        let v = serde_json::to_value(doc).unwrap();
        v["nftables"].as_array().unwrap().clone()
    }

    #[test]
    fn no_vni_means_empty_chains() {
        let b = body(&table_document(&steering(), &BTreeSet::new()));
        // Table declared, deleted, made; four chains; the two mark rules.
        assert_eq!(b.len(), 9, "{b:#?}");
        let rules: Vec<&Value> = b.iter().filter_map(|o| o["add"].get("rule")).collect();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["chain"], "from_tun");
        assert_eq!(
            rules[0]["expr"],
            json!([
                {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "shoal-seal"}},
                {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 0x5ea1}},
            ])
        );
        assert_eq!(rules[1]["chain"], "inbound");
        assert_eq!(
            rules[1]["expr"][1],
            json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": 0}})
        );
    }

    #[test]
    fn rules_match_port_and_vnis() {
        let b = body(&table_document(&steering(), &BTreeSet::from([4200, 4097])));
        let rules: Vec<&Value> = b
            .iter()
            .filter_map(|o| o["add"].get("rule"))
            .skip(2)
            .collect();
        assert_eq!(rules.len(), 3);
        let head = json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}},
            {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": {"set": [4097, 4200]}}},
        ]);
        for r in &rules {
            assert_eq!(r["expr"][0], head[0]);
            assert_eq!(r["expr"][1], head[1]);
        }
        assert_eq!(rules[0]["chain"], "steer");
        assert_eq!(
            rules[0]["expr"][2],
            json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": 0x5ea1}})
        );
        assert_eq!(rules[1]["chain"], "leak");
        assert_eq!(
            rules[1]["expr"][2],
            json!({"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "shoal-seal"}})
        );
        assert_eq!(rules[1]["expr"][3], json!({"drop": null}));
        assert_eq!(rules[2]["chain"], "inbound");
        assert_eq!(
            rules[2]["expr"][2],
            json!({"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "shoal-seal"}})
        );
    }

    #[test]
    fn a_sandbox_marks_what_leaves_by_the_vxlan_device() {
        let b = body(&sandbox_document("vx-001001-abcde", 0x5ea1));
        // Table declared, deleted, made; two chains, a rule each.
        assert_eq!(b.len(), 7, "{b:#?}");
        assert_eq!(b[2]["add"]["table"]["family"], "bridge");
        let rules: Vec<&Value> = b.iter().filter_map(|o| o["add"].get("rule")).collect();
        let chains: Vec<&Value> = b.iter().filter_map(|o| o["add"].get("chain")).collect();
        assert_eq!(chains[0]["hook"], "forward");
        assert_eq!(chains[1]["hook"], "output");
        for r in rules {
            assert_eq!(r["family"], "bridge");
            assert_eq!(
                r["expr"],
                json!([
                    {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "vx-001001-abcde"}},
                    {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 0x5ea1}},
                ])
            );
        }
    }
}
