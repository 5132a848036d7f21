//! **Pure**: what the embedded DNS server says to one query, given the
//! names of the task's networks. No sockets here; `super` moves the bytes
//! and does the forwarding this module asks for.
//!
//! The behaviour follows dockerd's embedded resolver as a client sees it:
//! - A swarm name (service, `tasks.NAME`, container name, alias) on one of
//!   the task's networks is answered locally: its IPv4 addresses as A
//!   records with a TTL of 600 seconds, shuffled when there are several
//!   (clients take the first one, so this spreads the load).
//! - AAAA for a swarm name gets its IPv6 addresses, which swarm overlays
//!   never have: an empty NOERROR answer, so a client asking for both
//!   families does not conclude that the name does not exist.
//! - Anything else (a name no network of the task knows, or another record
//!   type) goes to the node's upstream nameservers.
//! - The networks are searched in the task's attachment order; the first
//!   that knows the name answers.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::op::Edns;
use hickory_proto::op::Message;
use hickory_proto::op::MessageType;
use hickory_proto::op::Metadata;
use hickory_proto::op::OpCode;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::DNSClass;
use hickory_proto::rr::Name;
use hickory_proto::rr::RData;
use hickory_proto::rr::Record;
use hickory_proto::rr::RecordType;
use swarm::exec::ServiceRecords;

/// The TTL of locally answered records, as dockerd's.
pub const TTL: u32 = 600;

/// The largest UDP answer to a query without EDNS (RFC 1035).
const PLAIN_UDP_LIMIT: usize = 512;

/// The names of every network, ready for look-ups: lower-case, without a
/// trailing dot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Records {
    networks: HashMap<String, HashMap<String, Vec<IpAddr>>>,
}

impl Records {
    /// The look-up form of `records`. A network listed twice keeps the
    /// names of both entries (the later wins for a name in both).
    pub fn new(records: &ServiceRecords) -> Records {
        let mut networks: HashMap<String, HashMap<String, Vec<IpAddr>>> = HashMap::new();
        for net in &records.networks {
            let names = networks.entry(net.network_id.clone()).or_default();
            for (name, addrs) in &net.names {
                names.insert(normalize(name), addrs.clone());
            }
        }
        Records { networks }
    }

    /// The addresses of `name` (already normalized) on the first network of
    /// `networks` that knows it.
    pub fn lookup(&self, networks: &[String], name: &str) -> Option<&[IpAddr]> {
        networks
            .iter()
            .filter_map(|n| self.networks.get(n))
            .find_map(|names| names.get(name))
            .map(Vec::as_slice)
    }
}

/// A name as looked up: ASCII lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn normalize_name(name: &Name) -> String {
    normalize(&name.to_ascii())
}

/// What to do with one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this answer.
    Answer(Message),
    /// Ask the upstream nameservers and relay their answer.
    Forward,
    /// Say nothing (the message is not a query).
    Drop,
}

/// Decides the answer to `query` for a task on `networks` (in attachment
/// order). `shuffle` reorders the addresses of a multi-address answer.
pub fn answer(
    query: &Message,
    records: &Records,
    networks: &[String],
    shuffle: impl FnOnce(&mut [IpAddr]),
) -> Outcome {
    if query.metadata.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    if query.metadata.op_code != OpCode::Query {
        return Outcome::Answer(error(query, ResponseCode::NotImp));
    }
    let [q] = query.queries.as_slice() else {
        return Outcome::Answer(error(query, ResponseCode::FormErr));
    };
    let v6 = match q.query_type() {
        RecordType::A => false,
        RecordType::AAAA => true,
        _ => return Outcome::Forward,
    };
    if q.query_class() != DNSClass::IN {
        return Outcome::Forward;
    }
    let Some(found) = records.lookup(networks, &normalize_name(q.name())) else {
        return Outcome::Forward;
    };
    let mut addrs: Vec<IpAddr> = found
        .iter()
        .copied()
        .filter(|a| a.is_ipv6() == v6)
        .collect();
    if addrs.len() > 1 {
        shuffle(&mut addrs);
    }
    let mut resp = reply(query);
    // The question's own spelling goes back, as the client asked it.
    let owner = q.name().clone();
    resp.answers = addrs
        .into_iter()
        .map(|a| {
            let data = match a {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            Record::from_rdata(owner.clone(), TTL, data)
        })
        .collect();
    Outcome::Answer(resp)
}

/// An empty answer with `code`, for when no upstream answered (SERVFAIL)
/// or the query is malformed.
pub fn error(query: &Message, code: ResponseCode) -> Message {
    let mut resp = reply(query);
    resp.metadata.response_code = code;
    resp
}

/// The answer skeleton: the query's ID, opcode, RD and CD bits and
/// question, recursion available.
fn reply(query: &Message) -> Message {
    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
    resp.metadata = Metadata::response_from_request(&query.metadata);
    resp.metadata.recursion_available = true;
    resp.queries = query.queries.clone();
    if query.edns.is_some() {
        resp.edns = Some(Edns::new());
    }
    resp
}

/// `resp` encoded for a UDP reply to `query`: truncated (TC set, no
/// records) when it does not fit what the client accepts, so the client
/// asks again over TCP. `None` if it cannot be encoded at all.
pub fn encode_udp(resp: &Message, query: &Message) -> Option<Vec<u8>> {
    let limit = query
        .edns
        .as_ref()
        .map_or(PLAIN_UDP_LIMIT, |e| usize::from(e.max_payload()))
        .max(PLAIN_UDP_LIMIT);
    let bytes = resp.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    resp.truncate().to_vec().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use hickory_proto::op::Query;
    use swarm::exec::NetworkRecords;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn records() -> Records {
        let net = |id: &str, names: &[(&str, &[&str])]| NetworkRecords {
            network_id: id.into(),
            names: names
                .iter()
                .map(|(n, a)| (n.to_string(), a.iter().map(|s| ip(s)).collect()))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        };
        Records::new(&ServiceRecords {
            networks: vec![
                net(
                    "A",
                    &[
                        ("web", &["10.0.1.2"]),
                        ("tasks.web", &["10.0.1.3", "10.0.1.4"]),
                        ("Shared", &["10.0.1.9"]),
                    ],
                ),
                net("B", &[("db", &["10.0.2.2"]), ("shared", &["10.0.2.9"])]),
            ],
            ..Default::default()
        })
    }

    fn query(name: &str, rtype: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m
    }

    fn nets(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn answered(o: Outcome) -> Message {
        match o {
            Outcome::Answer(m) => m,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn v4s(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(A(a)) => Some(a),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_record_for_a_swarm_name() {
        let q = query("web.", RecordType::A);
        let m = answered(answer(&q, &records(), &nets(&["A"]), |_| {}));
        assert_eq!(m.metadata.id, q.metadata.id);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.recursion_available && m.metadata.recursion_desired);
        assert_eq!(m.queries, q.queries);
        assert_eq!(v4s(&m), [Ipv4Addr::new(10, 0, 1, 2)]);
        assert_eq!(m.answers[0].ttl, TTL);
        assert_eq!(m.answers[0].name, Name::from_ascii("web.").unwrap());
    }

    #[test]
    fn case_and_trailing_dot_do_not_matter() {
        for name in ["WEB", "Web.", "web"] {
            let m = answered(answer(
                &query(name, RecordType::A),
                &records(),
                &nets(&["A"]),
                |_| {},
            ));
            assert_eq!(v4s(&m), [Ipv4Addr::new(10, 0, 1, 2)], "{name}");
        }
    }

    #[test]
    fn several_addresses_are_shuffled() {
        let m = answered(answer(
            &query("tasks.web", RecordType::A),
            &records(),
            &nets(&["A"]),
            |a| a.reverse(),
        ));
        assert_eq!(
            v4s(&m),
            [Ipv4Addr::new(10, 0, 1, 4), Ipv4Addr::new(10, 0, 1, 3)]
        );
    }

    #[test]
    fn only_the_tasks_networks_answer() {
        let q = query("db", RecordType::A);
        assert_eq!(
            answer(&q, &records(), &nets(&["A"]), |_| {}),
            Outcome::Forward
        );
        let m = answered(answer(&q, &records(), &nets(&["A", "B"]), |_| {}));
        assert_eq!(v4s(&m), [Ipv4Addr::new(10, 0, 2, 2)]);
        // The first network in attachment order wins.
        let shared = query("shared", RecordType::A);
        let m = answered(answer(&shared, &records(), &nets(&["B", "A"]), |_| {}));
        assert_eq!(v4s(&m), [Ipv4Addr::new(10, 0, 2, 9)]);
    }

    #[test]
    fn aaaa_for_a_swarm_name_is_empty_noerror() {
        let m = answered(answer(
            &query("web", RecordType::AAAA),
            &records(),
            &nets(&["A"]),
            |_| {},
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }

    #[test]
    fn unknown_names_and_other_types_are_forwarded() {
        for (name, t) in [
            ("example.org", RecordType::A),
            ("example.org", RecordType::AAAA),
            ("web", RecordType::MX),
        ] {
            assert_eq!(
                answer(&query(name, t), &records(), &nets(&["A"]), |_| {}),
                Outcome::Forward,
                "{name} {t}"
            );
        }
    }

    #[test]
    fn malformed_and_non_queries() {
        let mut two = query("web", RecordType::A);
        two.add_query(Query::query(Name::from_ascii("db").unwrap(), RecordType::A));
        let m = answered(answer(&two, &records(), &nets(&["A"]), |_| {}));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

        let resp = query("web", RecordType::A).into_response();
        assert_eq!(
            answer(&resp, &records(), &nets(&["A"]), |_| {}),
            Outcome::Drop
        );

        let mut notify = query("web", RecordType::A);
        notify.metadata.op_code = OpCode::Notify;
        let m = answered(answer(&notify, &records(), &nets(&["A"]), |_| {}));
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    }

    #[test]
    fn large_udp_answers_are_truncated() {
        let addrs: Vec<IpAddr> = (1..=100).map(|i| ip(&format!("10.0.3.{i}"))).collect();
        let recs = Records::new(&ServiceRecords {
            networks: vec![NetworkRecords {
                network_id: "A".into(),
                names: BTreeMap::from([("tasks.big".to_string(), addrs)]),
                ..Default::default()
            }],
            ..Default::default()
        });
        let q = query("tasks.big", RecordType::A);
        let m = answered(answer(&q, &recs, &nets(&["A"]), |_| {}));
        assert_eq!(m.answers.len(), 100);
        let udp = Message::from_vec(&encode_udp(&m, &q).unwrap()).unwrap();
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty());
        // Over TCP the whole answer goes.
        assert_eq!(
            Message::from_vec(&m.to_vec().unwrap())
                .unwrap()
                .answers
                .len(),
            100
        );
    }
}
