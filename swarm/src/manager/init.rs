//! What `swarm init` creates: the addresses it resolves, the cluster object
//! with its root CA and join tokens, and the first manager's node object.

use std::net::IpAddr;
use std::net::SocketAddr;

use crate::ca;
use crate::error::Error;
use crate::error::Result;
use crate::host;
use crate::model::api;
use crate::model::Cluster;
use crate::model::Node;
use crate::node::InitRequest;
use crate::node::NodeState;

/// The cluster port (`--listen-addr` default).
pub const DEFAULT_PORT: u16 = 2377;

fn invalid_addr(what: &str, addr: &str) -> Error {
    Error::new(
        crate::ErrorKind::InvalidArgument,
        format!("invalid {what} address: {addr}"),
    )
}

/// The address to advertise when none is given and the listen address is
/// unspecified, with dockerd's error when the system has none.
fn system_addr() -> Result<IpAddr> {
    host::default_advertise_addr().ok_or_else(|| {
        Error::new(
            crate::ErrorKind::InvalidArgument,
            "could not find the system's IP address - specify one with --advertise-addr",
        )
    })
}

/// Resolves `--listen-addr` and `--advertise-addr` as dockerd does.
pub fn resolve_addrs(listen_raw: &str, adv_raw: &str) -> Result<(SocketAddr, SocketAddr)> {
    let listen = parse_addr(listen_raw, "0.0.0.0", DEFAULT_PORT)
        .ok_or_else(|| invalid_addr("listen", listen_raw))?;
    let advertise = if adv_raw.is_empty() {
        let ip = if listen.ip().is_unspecified() {
            system_addr()?
        } else {
            listen.ip()
        };
        SocketAddr::new(ip, listen.port())
    } else {
        parse_addr(adv_raw, "", listen.port()).ok_or_else(|| invalid_addr("advertise", adv_raw))?
    };
    Ok((listen, advertise))
}

/// Parses `ip`, `ip:port`, `:port` or an interface name.
pub fn parse_addr(raw: &str, default_ip: &str, default_port: u16) -> Option<SocketAddr> {
    if raw.is_empty() {
        return Some(SocketAddr::new(default_ip.parse().ok()?, default_port));
    }
    if let Ok(sa) = raw.parse::<SocketAddr>() {
        return Some(sa);
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    let (host_part, port) = match raw.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (raw, default_port),
    };
    let ip = if host_part.is_empty() {
        default_ip.parse().ok()?
    } else {
        host::interface_ipv4(host_part)?
    };
    Some(SocketAddr::new(ip, port))
}

/// The cluster object of a new swarm with ID `id`.
pub fn new_cluster(
    id: &str,
    req: &api::SwarmInitRequest,
    spec: api::SwarmSpec,
    root: &ca::root::RootCa,
    unlock_key: Option<String>,
) -> Result<Cluster> {
    let (subject, key) = ca::root::tls_info(root);
    // No pool in the request (absent, null, or dropped for an API older
    // than 1.39) is swarmkit's default pool, and dockerd reports it; an
    // empty list (what the CLI sends) is reported as null.
    let pool = match req.default_addr_pool.clone() {
        None => Some(vec![crate::allocator::network::DEFAULT_POOL.to_string()]),
        Some(p) => Some(p).filter(|p| !p.is_empty()),
    };
    let subnet_size = match req.subnet_size {
        Some(s) if s > 0 => s,
        _ => 24,
    };
    Ok(Cluster {
        api: api::Swarm {
            id: Some(id.to_string()),
            spec: Some(spec),
            tls_info: Some(api::TlsInfo {
                trust_root: Some(root.cert_pem.clone()),
                cert_issuer_subject: Some(subject),
                cert_issuer_public_key: Some(key),
            }),
            root_rotation_in_progress: Some(false),
            data_path_port: Some(match req.data_path_port {
                Some(p) if p > 0 => p,
                _ => 4789,
            }),
            default_addr_pool: pool,
            subnet_size: Some(subnet_size),
            join_tokens: Some(api::JoinTokens {
                worker: Some(ca::tokens::generate(root.cert_pem.as_bytes())),
                manager: Some(ca::tokens::generate(root.cert_pem.as_bytes())),
            }),
            ..Default::default()
        },
        root_ca_cert: root.cert_pem.clone(),
        root_ca_key: root.key_pem.clone(),
        unlock_key,
        // Made with the cluster, so the key manager's first check writes
        // nothing: a `swarm update` right after init must not race it.
        network_bootstrap_keys: vec![super::keymanager::generate(
            1,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )],
        root_rotation: None,
        ca_generation: 0,
    })
}

/// The engine plugins a node reports.
fn plugins() -> Vec<api::EngineDescriptionPlugins> {
    let plugin = |t: &str, n: &str| api::EngineDescriptionPlugins {
        typ: Some(t.into()),
        name: Some(n.into()),
    };
    vec![
        plugin("Log", "json-file"),
        plugin("Network", "bridge"),
        plugin("Network", "host"),
        plugin("Network", "null"),
        plugin("Network", "overlay"),
        plugin("Volume", "local"),
    ]
}

/// What a node on this machine says it is, before its agent's first
/// session replaces it with the executor's description.
pub fn local_description(
    hostname: &str,
    engine_version: &str,
    root_pem: &str,
) -> api::NodeDescription {
    let (subject, key) = ca::root::tls_info_pem(root_pem);
    api::NodeDescription {
        hostname: Some(hostname.to_string()),
        platform: Some(api::Platform {
            architecture: Some(std::env::consts::ARCH.into()),
            os: Some(std::env::consts::OS.into()),
        }),
        resources: Some(api::ResourceObject {
            nano_cpus: Some(host::cpus() * 1_000_000_000),
            memory_bytes: Some(host::memory_bytes()),
            ..Default::default()
        }),
        engine: Some(api::EngineDescription {
            engine_version: Some(engine_version.to_string()),
            plugins: Some(plugins()),
            ..Default::default()
        }),
        tls_info: Some(api::TlsInfo {
            trust_root: Some(root_pem.to_string()),
            cert_issuer_subject: Some(subject),
            cert_issuer_public_key: Some(key),
        }),
    }
}

/// The IP part of an `ip:port` address.
pub fn ip_of(addr: &str) -> String {
    addr.parse::<SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// The first manager's node object.
pub fn first_node(state: &NodeState, req: &InitRequest, description: api::NodeDescription) -> Node {
    let availability = req
        .availability
        .filter(|a| *a != api::NodeSpecAvailabilityEnum::EMPTY)
        .unwrap_or(api::NodeSpecAvailabilityEnum::ACTIVE);
    Node {
        api: api::Node {
            id: Some(state.node_id.clone()),
            spec: Some(api::NodeSpec {
                labels: Some(Default::default()),
                role: Some(api::NodeSpecRoleEnum::MANAGER),
                availability: Some(availability),
                ..Default::default()
            }),
            description: Some(description),
            status: Some(api::NodeStatus {
                state: Some(api::NodeState::READY),
                addr: Some(ip_of(&state.advertise_addr)),
                ..Default::default()
            }),
            manager_status: Some(api::ManagerStatus {
                leader: Some(true),
                reachability: Some(api::Reachability::REACHABLE),
                addr: Some(state.advertise_addr.clone()),
            }),
            ..Default::default()
        },
        role: Some(api::NodeSpecRoleEnum::MANAGER),
        data_addr: Some(state.node_addrs().data_addr).filter(|a| !a.is_empty()),
        ingress_address: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_like_dockerd() {
        let (l, a) = resolve_addrs("127.0.0.1:2380", "127.0.0.1").unwrap();
        assert_eq!(l.to_string(), "127.0.0.1:2380");
        assert_eq!(a.to_string(), "127.0.0.1:2380");
        let (l, a) = resolve_addrs("", "127.0.0.1:4000").unwrap();
        assert_eq!(l.to_string(), "0.0.0.0:2377");
        assert_eq!(a.to_string(), "127.0.0.1:4000");
    }
}
