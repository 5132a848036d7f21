//! Real handshakes over in-memory pipes: what each side accepts and refuses.

use std::time::Duration;

use rustls::pki_types::ServerName;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::TlsConnector;

use super::*;
use crate::ca::csr::new_key_and_csr;
use crate::ca::identity::Role;
use crate::ca::issuer::Issuer;
use crate::ca::root;

/// A root CA and its issuer, standing for one swarm.
struct Swarm {
    ca: root::RootCa,
    issuer: Issuer,
    cluster_id: String,
}

impl Swarm {
    fn new(cluster_id: &str) -> Swarm {
        let ca = root::generate(1).unwrap();
        let issuer = Issuer::new(&ca.cert_pem, &ca.key_pem).unwrap();
        Swarm {
            ca,
            issuer,
            cluster_id: cluster_id.to_owned(),
        }
    }

    fn certs(&self, node_id: &str, role: Role) -> NodeCerts {
        let now = OffsetDateTime::now_utc();
        self.certs_between(
            node_id,
            role,
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        )
    }

    fn certs_between(
        &self,
        node_id: &str,
        role: Role,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> NodeCerts {
        let key = new_key_and_csr().unwrap();
        let cert_pem = self
            .issuer
            .issue_between(
                &key.csr_pem,
                node_id,
                role,
                &self.cluster_id,
                not_before,
                not_after,
            )
            .unwrap();
        NodeCerts {
            cert_pem,
            key_pem: key.key_pem,
            root_pem: self.ca.cert_pem.clone(),
        }
    }

    fn state(&self, node_id: &str, role: Role) -> Arc<TlsState> {
        TlsState::new(self.certs(node_id, role)).unwrap()
    }
}

/// What each side learned from one connection attempt.
struct Outcome {
    /// The server's view: the client's identity (`None`: no certificate),
    /// or the handshake error.
    server: std::io::Result<Option<NodeIdentity>>,
    /// The client's view: the server's leaf certificate, or the error.
    client: std::io::Result<CertificateDer<'static>>,
}

/// One connection over an in-memory pipe. The server writes a byte once its
/// handshake is done and the client reads it, so with TLS 1.3 (where the
/// client finishes first) a refused client certificate shows on both sides.
async fn connect(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> Outcome {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let serve = async move {
        let mut tls = TlsAcceptor::from(server).accept(server_io).await?;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(ALPN_H2));
        let peer = conn.peer_certificates().and_then(peer_identity);
        tls.write_all(b"!").await?;
        tls.flush().await?;
        Ok(peer)
    };
    let dial = async move {
        let mut tls = TlsConnector::from(client).connect(name, client_io).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(ALPN_H2));
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.clone().into_owned())
            .ok_or_else(|| std::io::Error::other("no server certificate"))?;
        Ok(leaf)
    };
    let both = async { tokio::join!(serve, dial) };
    let (server, client) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("handshake finished in time");
    Outcome { server, client }
}

fn leaf(certs: &NodeCerts) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn mutual_tls_in_one_swarm_shows_the_client_identity() {
    let swarm = Swarm::new("cluster1");
    let manager = swarm.state("manager1", Role::Manager);
    let worker = swarm.state("worker1", Role::Worker);
    let out = connect(
        manager.server_config(),
        worker.client_config(),
        MANAGER_SERVER_NAME,
    )
    .await;
    let peer = out.server.unwrap().expect("client identity");
    assert_eq!(peer.node_id, "worker1");
    assert_eq!(peer.role, Role::Worker);
    assert_eq!(peer.cluster_id, "cluster1");
    assert_eq!(out.client.unwrap(), leaf(&manager.certs()));
    assert_eq!(manager.identity().node_id, "manager1");
}

#[tokio::test]
async fn a_client_of_another_root_is_refused() {
    let swarm = Swarm::new("cluster1");
    let other = Swarm::new("cluster1");
    let manager = swarm.state("manager1", Role::Manager);
    // The intruder trusts our root, so only its own certificate is wrong.
    let mut foreign = other.certs("intruder", Role::Manager);
    foreign.root_pem = swarm.ca.cert_pem.clone();
    let intruder = TlsState::new(foreign).unwrap();
    let out = connect(
        manager.server_config(),
        intruder.client_config(),
        MANAGER_SERVER_NAME,
    )
    .await;
    assert_bad_certificate(out.server.unwrap_err());
    assert!(out.client.is_err());
}

#[tokio::test]
async fn a_client_with_an_expired_certificate_is_refused() {
    let swarm = Swarm::new("cluster1");
    let manager = swarm.state("manager1", Role::Manager);
    let now = OffsetDateTime::now_utc();
    let expired = swarm.certs_between(
        "worker1",
        Role::Worker,
        now - time::Duration::days(2),
        now - time::Duration::days(1),
    );
    let worker = TlsState::new(expired).unwrap();
    let out = connect(
        manager.server_config(),
        worker.client_config(),
        MANAGER_SERVER_NAME,
    )
    .await;
    let err = out.server.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(out.client.is_err());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_let_through_anonymous() {
    let swarm = Swarm::new("cluster1");
    let manager = swarm.state("manager1", Role::Manager);
    let joiner = anonymous_client_config(&swarm.ca.cert_pem).unwrap();
    let out = connect(manager.server_config(), joiner, MANAGER_SERVER_NAME).await;
    assert_eq!(out.server.unwrap(), None);
    assert_eq!(out.client.unwrap(), leaf(&manager.certs()));

    // The anonymous client still verifies the server.
    let other = Swarm::new("cluster2");
    let joiner = anonymous_client_config(&other.ca.cert_pem).unwrap();
    let out = connect(manager.server_config(), joiner, MANAGER_SERVER_NAME).await;
    assert_bad_certificate(out.client.unwrap_err());
}

#[tokio::test]
async fn a_worker_cannot_serve_as_a_manager() {
    let swarm = Swarm::new("cluster1");
    let worker = swarm.state("worker1", Role::Worker);
    let manager = swarm.state("manager1", Role::Manager);
    let out = connect(
        worker.server_config(),
        manager.client_config(),
        MANAGER_SERVER_NAME,
    )
    .await;
    let err = out.client.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert_bad_certificate(err);
    assert!(out.server.is_err());

    let out = connect(
        worker.server_config(),
        manager.client_config(),
        CA_SERVER_NAME,
    )
    .await;
    assert_bad_certificate(out.client.unwrap_err());
    // A manager serves under both names.
    for name in [MANAGER_SERVER_NAME, CA_SERVER_NAME] {
        let out = connect(manager.server_config(), worker.client_config(), name).await;
        assert!(out.client.is_ok() && out.server.is_ok(), "{name}");
    }

    // Dialed by its own node ID, the same certificate is accepted: the name
    // is what was refused, not the chain.
    let out = connect(worker.server_config(), manager.client_config(), "worker1").await;
    assert!(out.client.is_ok());
    assert_eq!(out.server.unwrap().unwrap().node_id, "manager1");
}

#[tokio::test]
async fn the_insecure_client_connects_to_anything() {
    let swarm = Swarm::new("cluster1");
    let unrelated = Swarm::new("elsewhere").state("someone", Role::Worker);
    let out = connect(
        unrelated.server_config(),
        insecure_client_config(),
        MANAGER_SERVER_NAME,
    )
    .await;
    assert_eq!(out.client.unwrap(), leaf(&unrelated.certs()));
    assert_eq!(out.server.unwrap(), None);
    // And to a proper manager too.
    let manager = swarm.state("manager1", Role::Manager);
    let out = connect(
        manager.server_config(),
        insecure_client_config(),
        "anything",
    )
    .await;
    assert!(out.client.is_ok());
}

#[tokio::test]
async fn an_update_is_seen_by_the_next_handshake() {
    let swarm = Swarm::new("cluster1");
    let server = swarm.state("node1", Role::Worker);
    let client = swarm.state("node2", Role::Manager);
    // Configs made once, before the updates.
    let server_config = server.server_config();
    let client_config = client.client_config();

    let out = connect(server_config.clone(), client_config.clone(), "node1").await;
    assert_eq!(out.client.unwrap(), leaf(&server.certs()));
    assert_eq!(out.server.unwrap().unwrap().role, Role::Manager);

    // node1 is promoted: a new certificate; node2 is demoted.
    let promoted = swarm.certs("node1", Role::Manager);
    server.update(promoted.clone()).unwrap();
    assert_eq!(server.identity().role, Role::Manager);
    assert_eq!(server.certs(), promoted);
    client.update(swarm.certs("node2", Role::Worker)).unwrap();

    let out = connect(server_config, client_config, MANAGER_SERVER_NAME).await;
    assert_eq!(out.client.unwrap(), leaf(&promoted));
    assert_eq!(out.server.unwrap().unwrap().role, Role::Worker);
}

#[tokio::test]
async fn a_failed_update_changes_nothing() {
    let swarm = Swarm::new("cluster1");
    let state = swarm.state("node1", Role::Manager);
    let before = state.certs();
    let mut bad = swarm.certs("node1", Role::Worker);
    bad.key_pem = swarm.certs("node1", Role::Worker).key_pem;
    assert!(state.update(bad).is_err());
    let mut no_roots = swarm.certs("node1", Role::Worker);
    no_roots.root_pem = String::new();
    assert!(state.update(no_roots).is_err());
    assert_eq!(state.certs(), before);
    assert!(TlsState::new(NodeCerts {
        cert_pem: swarm.ca.cert_pem.clone(),
        key_pem: swarm.ca.key_pem.clone(),
        root_pem: swarm.ca.cert_pem.clone(),
    })
    .is_err());
}

#[tokio::test]
async fn two_roots_are_trusted_at_once() {
    let old = Swarm::new("cluster1");
    let new = Swarm::new("cluster1");
    let both = format!("{}{}", old.ca.cert_pem, new.ca.cert_pem);
    let with_both = |mut certs: NodeCerts| {
        certs.root_pem = both.clone();
        TlsState::new(certs).unwrap()
    };
    let manager = with_both(old.certs("manager1", Role::Manager));
    let old_worker = with_both(old.certs("worker1", Role::Worker));
    let new_worker = with_both(new.certs("worker2", Role::Worker));
    for (client, id) in [(&old_worker, "worker1"), (&new_worker, "worker2")] {
        let out = connect(
            manager.server_config(),
            client.client_config(),
            MANAGER_SERVER_NAME,
        )
        .await;
        assert_eq!(out.server.unwrap().unwrap().node_id, id);
        assert!(out.client.is_ok());
    }
    // A manager with a certificate of the new root serves both.
    let new_manager = with_both(new.certs("manager2", Role::Manager));
    let out = connect(
        new_manager.server_config(),
        old_worker.client_config(),
        MANAGER_SERVER_NAME,
    )
    .await;
    assert!(out.client.is_ok() && out.server.is_ok());

    // Once the rotation ends and the old root is dropped, an old-root
    // certificate is refused.
    let mut rotated = new.certs("manager2", Role::Manager);
    rotated.root_pem = new.ca.cert_pem.clone();
    new_manager.update(rotated).unwrap();
    let out = connect(
        new_manager.server_config(),
        old_worker.client_config(),
        MANAGER_SERVER_NAME,
    )
    .await;
    assert_bad_certificate(out.server.unwrap_err());
}

/// The handshake failed on the peer's certificate (not on I/O or a protocol
/// mismatch).
fn assert_bad_certificate(err: std::io::Error) {
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {err}"));
    assert!(
        matches!(tls, rustls::Error::InvalidCertificate(_)),
        "{tls:?}"
    );
}

#[test]
fn peer_identity_of_nothing_is_none() {
    assert_eq!(peer_identity(&[]), None);
    let junk = CertificateDer::from(vec![1u8, 2, 3]);
    assert_eq!(peer_identity(&[junk]), None);
}
