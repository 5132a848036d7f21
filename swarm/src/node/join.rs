//! `docker swarm join`, up to the certificate: find the manager, check its
//! root CA against the digest in the token before trusting it, then ask it
//! for a certificate with the token. What the node does with the
//! certificate (start a manager or a worker) is `SwarmNode`'s.

use std::net::SocketAddr;

use serde::Deserialize;
use serde::Serialize;

use super::state::NodeState;
use crate::ca::identity::Role;
use crate::ca::server::IssueRequest;
use crate::ca::server::RootRequest;
use crate::ca::tls::NodeCerts;
use crate::ca::tokens;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::manager::init::parse_addr;
use crate::manager::init::DEFAULT_PORT;
use crate::model::api;
use crate::transport::proto::ca::node_ca_client::NodeCaClient;
use crate::transport::status::from_status;
use crate::transport::status::is_transport;

/// How long one manager may take to answer a join step.
const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `POST /swarm/join`'s body: the API type plus `Availability`, which the
/// generated type lacks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The documented fields.
    #[serde(flatten)]
    pub base: api::SwarmJoinRequest,
    /// `--availability` of this node.
    #[serde(
        rename = "Availability",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub availability: Option<api::NodeSpecAvailabilityEnum>,
}

/// A node admitted by a manager: what it must persist and start with.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its membership facts.
    pub state: NodeState,
    /// Its certificate and key, and the root to trust.
    pub certs: NodeCerts,
    /// The manager that admitted it.
    pub remote: String,
}

/// `ip`, `host` or `ip:port` of a remote manager, with the default port.
fn remote_addr(raw: &str) -> String {
    if raw.parse::<SocketAddr>().is_ok()
        || raw
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        raw.to_string()
    } else {
        format!("{raw}:{DEFAULT_PORT}")
    }
}

/// The local address this machine uses to reach `remote`: what the remote
/// manager sees connections come from, so what to advertise by default.
fn local_ip_toward(remote: &str) -> Option<std::net::IpAddr> {
    let target: SocketAddr = remote.parse().ok().or_else(|| {
        use std::net::ToSocketAddrs;
        remote.to_socket_addrs().ok()?.next()
    })?;
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(target).ok()?;
    Some(s.local_addr().ok()?.ip())
}

fn unavailable(remote: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("could not reach the manager at {remote}: {why}"),
    )
}

async fn root_of(remote: &str) -> Result<String> {
    let ch = crate::transport::client::channel(remote, crate::ca::tls::insecure_client_config())?;
    let mut c = NodeCaClient::new(ch);
    match tokio::time::timeout(STEP_TIMEOUT, c.get_root_ca_certificate(RootRequest {})).await {
        Err(_) => Err(unavailable(remote, "no answer")),
        Ok(Err(s)) if is_transport(&s) => Err(unavailable(remote, s.message())),
        Ok(Err(s)) => Err(from_status(&s)),
        Ok(Ok(r)) => Ok(r.into_inner().root_pem),
    }
}

/// Asks the managers in `req` (in order) to admit this node.
pub async fn request_certificate(req: &JoinRequest, hostname: &str) -> Result<Admitted> {
    let token_text = req.base.join_token.clone().unwrap_or_default();
    let token = tokens::parse(&token_text)?;
    let remotes: Vec<String> = req
        .base
        .remote_addrs
        .iter()
        .flatten()
        .map(|r| remote_addr(r))
        .collect();
    if remotes.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "at least 1 RemoteAddr is required to join",
        ));
    }
    let listen_raw = req.base.listen_addr.clone().unwrap_or_default();
    let listen = parse_addr(&listen_raw, "0.0.0.0", DEFAULT_PORT).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid listen address: {listen_raw}"),
        )
    })?;
    let mut last = unavailable(&remotes[0], "no manager answered");
    for remote in &remotes {
        match admit(req, hostname, &token, remote, listen).await {
            Ok(a) => return Ok(a),
            Err(e) if e.kind() == ErrorKind::Unavailable => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

async fn admit(
    req: &JoinRequest,
    hostname: &str,
    token: &tokens::ParsedToken,
    remote: &str,
    listen: SocketAddr,
) -> Result<Admitted> {
    let root_pem = root_of(remote).await?;
    if tokens::digest_hex(token) != tokens::root_digest_hex(root_pem.as_bytes()) {
        return Err(tokens::fingerprint_mismatch(token));
    }
    let adv_raw = req.base.advertise_addr.clone().unwrap_or_default();
    let advertise = if !adv_raw.is_empty() {
        parse_addr(&adv_raw, "", listen.port()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid advertise address: {adv_raw}"),
            )
        })?
    } else if !listen.ip().is_unspecified() {
        listen
    } else {
        let ip = local_ip_toward(remote).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "could not find the system's IP address - specify one with --advertise-addr",
            )
        })?;
        SocketAddr::new(ip, listen.port())
    };
    let key = crate::ca::csr::new_key_and_csr()?;
    let tls = crate::ca::tls::anonymous_client_config(&root_pem)?;
    let mut c = NodeCaClient::new(crate::transport::client::channel(remote, tls)?);
    let issue = IssueRequest {
        csr_pem: key.csr_pem,
        token: req.base.join_token.clone().unwrap_or_default(),
        availability: req.availability,
        hostname: hostname.to_string(),
        advertise_addr: advertise.to_string(),
    };
    let reply = match tokio::time::timeout(STEP_TIMEOUT, c.issue_node_certificate(issue)).await {
        Err(_) => return Err(unavailable(remote, "no answer")),
        Ok(Err(s)) if is_transport(&s) => return Err(unavailable(remote, s.message())),
        Ok(Err(s)) => return Err(from_status(&s)),
        Ok(Ok(r)) => r.into_inner(),
    };
    let certs = NodeCerts {
        cert_pem: reply.cert_pem,
        key_pem: key.key_pem,
        root_pem: reply.root_pem,
    };
    let identity = crate::ca::identity::parse_cert_pem(&certs.cert_pem)?;
    let state = NodeState {
        raft_id: crate::raft::raft_id(&reply.node_id),
        node_id: reply.node_id,
        listen_addr: listen.to_string(),
        advertise_addr: advertise.to_string(),
        data_path_addr: req.base.data_path_addr.clone().unwrap_or_default(),
        role: reply.role,
        remotes: vec![remote.to_string()],
        cluster_id: identity.cluster_id,
        ca_generation: reply.ca_generation,
    };
    debug_assert!(matches!(state.role, Role::Manager | Role::Worker));
    Ok(Admitted {
        state,
        certs,
        remote: remote.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addresses_get_the_default_port() {
        assert_eq!(remote_addr("10.0.0.1"), "10.0.0.1:2377");
        assert_eq!(remote_addr("10.0.0.1:4000"), "10.0.0.1:4000");
        assert_eq!(remote_addr("node1"), "node1:2377");
        assert_eq!(remote_addr("node1:2377"), "node1:2377");
    }
}
