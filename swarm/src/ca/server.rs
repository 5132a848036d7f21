//! The `NodeCa` service: the root certificate for anyone (the joiner checks
//! it against its token's digest), and node certificates for a valid join
//! token or a node renewing its own.

use serde::Deserialize;
use serde::Serialize;

use super::identity::Role;
use crate::model::api;

/// `NodeCa.GetRootCACertificate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootRequest {}

/// `NodeCa.GetRootCACertificate` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootReply {
    /// The root certificate(s), PEM.
    pub root_pem: String,
}

/// `NodeCa.IssueNodeCertificate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssueRequest {
    /// The node's certificate request, PEM.
    pub csr_pem: String,
    /// The join token (empty when a node renews with its certificate).
    pub token: String,
    /// `--availability` of a joining node.
    pub availability: Option<api::NodeSpecAvailabilityEnum>,
    /// The node's hostname, shown until its first session.
    pub hostname: String,
    /// The address the node advertises (`ip:port`).
    pub advertise_addr: String,
}

/// `NodeCa.IssueNodeCertificate` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueReply {
    /// The node's ID (new for a joining node).
    pub node_id: String,
    /// The role the certificate carries.
    pub role: Role,
    /// The node certificate, PEM.
    pub cert_pem: String,
    /// The root certificate(s) to trust, PEM.
    pub root_pem: String,
    /// The cluster's CA generation the certificate belongs to (a node
    /// renews when the cluster's moves on: a root rotation).
    #[serde(default)]
    pub ca_generation: u64,
}

/// Issues the first manager's certificate from a new root (`swarm init`).
pub fn self_issue(
    root: &super::root::RootCa,
    node_id: &str,
    cluster_id: &str,
    expiry: std::time::Duration,
) -> crate::Result<super::tls::NodeCerts> {
    let key = super::csr::new_key_and_csr()?;
    let issuer = super::issuer::Issuer::new(&root.cert_pem, &root.key_pem)?;
    let cert_pem = issuer.issue(&key.csr_pem, node_id, Role::Manager, cluster_id, expiry)?;
    Ok(super::tls::NodeCerts {
        cert_pem,
        key_pem: key.key_pem,
        root_pem: root.cert_pem.clone(),
    })
}

/// One delayed answer to `addr`, pending until dropped.
struct Pending<'a> {
    throttle: &'a std::sync::Mutex<super::throttle::JoinThrottle>,
    addr: std::net::IpAddr,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answered(self.addr);
    }
}

/// Serves `NodeCa` from the store's cluster object (root certificate and
/// key, join tokens, certificate expiry). Any manager answers; the node
/// object of a joining node is written through the leader like any write.
pub struct CaService {
    store: std::sync::Arc<crate::store::Store>,
    /// Wrong join tokens, by remote address (see [`super::throttle`]).
    throttle: std::sync::Mutex<super::throttle::JoinThrottle>,
}

impl CaService {
    /// The CA of this manager's store.
    pub fn new(store: std::sync::Arc<crate::store::Store>) -> Self {
        CaService {
            store,
            throttle: Default::default(),
        }
    }

    /// The role `token` joins as; a wrong one is answered after the
    /// throttle's delay for `remote`, and an address with too many such
    /// answers pending is refused without its token being looked at.
    async fn check_token(
        &self,
        remote: Option<std::net::IpAddr>,
        token: &str,
        tokens: &api::JoinTokens,
    ) -> Result<Role, tonic::Status> {
        use super::throttle::Admission;
        let refused = || {
            crate::transport::status::to_status(&crate::Error::invalid(
                super::tokens::NOT_A_VALID_TOKEN,
            ))
        };
        let throttle = || self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        let Some(addr) = remote else {
            return super::tokens::role_for(token, tokens).ok_or_else(refused);
        };
        let now = std::time::Instant::now();
        if throttle().admit(addr, now) == Admission::Busy {
            return Err(tonic::Status::resource_exhausted(
                "too many failed join attempts from this address; try again later",
            ));
        }
        if let Some(role) = super::tokens::role_for(token, tokens) {
            throttle().succeeded(addr);
            return Ok(role);
        }
        let delay = throttle().failed(addr, now);
        if !delay.is_zero() {
            // Counted as answered even when the caller goes away mid-wait
            // (the future is dropped), or the address would stay busy.
            let _pending = Pending {
                throttle: &self.throttle,
                addr,
            };
            tracing::warn!(%addr, delay_ms = delay.as_millis() as u64, "wrong join token again: answer delayed");
            tokio::time::sleep(delay).await;
        }
        Err(refused())
    }

    fn cluster(&self) -> Result<crate::model::Cluster, tonic::Status> {
        self.store
            .view(|v| v.cluster())
            .ok_or_else(|| tonic::Status::unavailable("the swarm is not initialized yet"))
    }

    /// The node object a joining node starts with.
    fn new_node(node_id: &str, role: Role, r: &IssueRequest, root_pem: &str) -> crate::model::Node {
        let availability = r
            .availability
            .filter(|a| *a != api::NodeSpecAvailabilityEnum::EMPTY)
            .unwrap_or(api::NodeSpecAvailabilityEnum::ACTIVE);
        let mut desc = crate::manager::init::local_description(&r.hostname, "", root_pem);
        // The node reports its own resources and engine with its first session.
        desc.resources = None;
        desc.engine = None;
        desc.platform = None;
        crate::model::Node {
            api: api::Node {
                id: Some(node_id.to_string()),
                spec: Some(api::NodeSpec {
                    labels: Some(Default::default()),
                    role: Some(role.api()),
                    availability: Some(availability),
                    ..Default::default()
                }),
                description: Some(desc),
                status: Some(api::NodeStatus {
                    state: Some(api::NodeState::UNKNOWN),
                    addr: Some(crate::manager::init::ip_of(&r.advertise_addr)),
                    ..Default::default()
                }),
                ..Default::default()
            },
            role: Some(role.api()),
            ..Default::default()
        }
    }
}

#[tonic::async_trait]
impl crate::transport::proto::ca::node_ca_server::NodeCa for CaService {
    async fn get_root_ca_certificate(
        &self,
        _req: tonic::Request<RootRequest>,
    ) -> Result<tonic::Response<RootReply>, tonic::Status> {
        let c = self.cluster()?;
        Ok(tonic::Response::new(RootReply {
            root_pem: c.root_ca_cert,
        }))
    }

    async fn issue_node_certificate(
        &self,
        req: tonic::Request<IssueRequest>,
    ) -> Result<tonic::Response<IssueReply>, tonic::Status> {
        use crate::transport::status::to_status;
        let peer = crate::transport::auth::peer(&req);
        let remote = req.remote_addr().map(|a| a.ip());
        let r = req.into_inner();
        let c = self.cluster()?;
        let cluster_id = c.api.id.clone().unwrap_or_default();
        let expiry =
            crate::controlapi::cluster::cert_expiry(&c.api.spec.clone().unwrap_or_default());
        let (node_id, role) =
            match peer.filter(|p| p.cluster_id == cluster_id && r.token.is_empty()) {
                // A node renewing: the role is the one its spec asks for.
                Some(p) => {
                    let node = self
                        .store
                        .view(|v| v.get::<crate::model::Node>(&p.node_id))
                        .ok_or_else(|| tonic::Status::permission_denied("node not found"))?;
                    let role = match node.api.spec.and_then(|s| s.role) {
                        Some(api::NodeSpecRoleEnum::MANAGER) => Role::Manager,
                        _ => Role::Worker,
                    };
                    (p.node_id, role)
                }
                None => {
                    let tokens = c.api.join_tokens.clone().unwrap_or_default();
                    let role = self.check_token(remote, &r.token, &tokens).await?;
                    let node_id = crate::model::new_id();
                    let node = Self::new_node(&node_id, role, &r, &c.root_ca_cert);
                    self.store
                        .update(|tx| tx.create(node.clone()))
                        .await
                        .map_err(|e| to_status(&e))?;
                    (node_id, role)
                }
            };
        let (issuer_pem, issuer_key, chain, trust) = super::rotation::signing_material(&c);
        let issuer =
            super::issuer::Issuer::new(&issuer_pem, &issuer_key).map_err(|e| to_status(&e))?;
        let leaf = issuer
            .issue(&r.csr_pem, &node_id, role, &cluster_id, expiry)
            .map_err(|e| to_status(&e))?;
        // What the node holds from now on, as `docker node inspect` and the
        // rotation's progress show it.
        let tls = super::rotation::node_tls_info(&issuer_pem, &trust);
        self.store
            .update(|tx| {
                let Some(mut n) = tx.get::<crate::model::Node>(&node_id) else {
                    return Ok(());
                };
                let d = n.api.description.get_or_insert_with(Default::default);
                if d.tls_info.as_ref() == Some(&tls) {
                    return Ok(());
                }
                d.tls_info = Some(tls.clone());
                tx.update(n)
            })
            .await
            .map_err(|e| to_status(&e))?;
        Ok(tonic::Response::new(IssueReply {
            node_id,
            role,
            cert_pem: format!("{leaf}{chain}"),
            root_pem: trust,
            ca_generation: c.ca_generation,
        }))
    }
}
