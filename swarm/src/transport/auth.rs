//! Who is calling: the identity in the peer's verified client certificate,
//! and the role checks every service makes (swarmkit's `ca/auth.go`).

use tonic::transport::server::TcpConnectInfo;
use tonic::transport::server::TlsConnectInfo;
use tonic::Request;
use tonic::Status;

use crate::ca::identity::NodeIdentity;
use crate::ca::identity::Role;

/// The calling node, when it presented a certificate of this cluster.
pub fn peer<T>(req: &Request<T>) -> Option<NodeIdentity> {
    let info = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = info.peer_certs()?;
    crate::ca::tls::peer_identity(&certs)
}

/// The caller's identity if it is a node of `cluster_id` with one of `roles`.
pub fn require<T>(
    req: &Request<T>,
    cluster_id: &str,
    roles: &[Role],
) -> Result<NodeIdentity, Status> {
    let Some(id) = peer(req) else {
        return Err(Status::permission_denied(
            "Permission denied: unauthorized peer role: rpc error: code = PermissionDenied desc = no client certificates in request",
        ));
    };
    if id.cluster_id != cluster_id {
        return Err(Status::permission_denied(format!(
            "Permission denied: remote certificate not part of organization: {cluster_id}"
        )));
    }
    if !roles.contains(&id.role) {
        return Err(Status::permission_denied(format!(
            "Permission denied: unauthorized peer role: rpc error: code = PermissionDenied desc = Permission denied: remote certificate not part of OUs: {:?}",
            roles.iter().map(|r| r.ou()).collect::<Vec<_>>()
        )));
    }
    Ok(id)
}
