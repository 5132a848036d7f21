//! The node's certificate, key and trusted roots on disk (swarmkit's
//! `KeyReadWriter`), under `<swarm dir>/certificates/` with swarmkit's file
//! names.
//!
//! On an autolocked manager the private key is sealed with the key-encrypting
//! key derived from the unlock key, the same way the raft data key is
//! wrapped: after a restart the node cannot prove who it is to anyone until
//! `docker swarm unlock` gives the key back. Certificates are public and
//! stay in plain PEM either way.
//!
//! The directory is made `0700` and the key file `0600`. The directory mode
//! is what keeps the key private while it is written: the durable writer
//! creates its temporary file with the process's default mode, and only the
//! directory keeps others from opening it in that window.
//!
//! Files are written root, key, certificate, each atomically. A crash
//! between the key and the certificate leaves a pair that does not match;
//! [`CertStore::load`] reports that as an error rather than handing out a
//! certificate this node cannot use.

use std::path::Path;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::tls::NodeCerts;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::raft::encryption::kek_from_unlock_key;
use crate::raft::encryption::write_durable;
use crate::raft::encryption::SealError;

const DIR: &str = "certificates";
const CERT_FILE: &str = "swarm-node.crt";
const KEY_FILE: &str = "swarm-node.key";
const ROOT_FILE: &str = "swarm-root-ca.crt";

/// The PEM label of a sealed key: not a PKCS#8 label, so no tool mistakes
/// the sealed bytes for a key, and [`CertStore::load`] tells the two apart
/// by it.
const SEALED_LABEL: &str = "SHOAL SEALED NODE KEY";

/// What [`CertStore::load`] found.
#[derive(Debug, Clone)]
pub enum LoadedCerts {
    /// No complete set of files (a node that never joined, or one that was
    /// still joining when it stopped).
    Missing,
    /// Certificate, key and roots, ready for [`super::tls::TlsState::new`].
    Ready(NodeCerts),
    /// The key is sealed: [`CertStore::unlock`] needs the unlock key.
    Locked,
}

/// The node's certificate files under one swarm directory.
#[derive(Debug, Clone)]
pub struct CertStore {
    dir: PathBuf,
}

impl CertStore {
    /// The store under `<swarm_dir>/certificates/`. Touches nothing on disk.
    pub fn new(swarm_dir: &Path) -> CertStore {
        CertStore {
            dir: swarm_dir.join(DIR),
        }
    }

    /// Writes the roots, the key and the certificate; durable on return.
    ///
    /// With `unlock_key` the private key is sealed with the key derived from
    /// it and no plaintext key reaches the disk; without, it is written as
    /// PEM. Call it after a certificate is issued or renewed, and again with
    /// the new unlock key (or `None`) when autolock is turned on, rotated or
    /// turned off. A malformed unlock key fails with InvalidArgument before
    /// anything is written.
    pub fn save(&self, certs: &NodeCerts, unlock_key: Option<&str>) -> Result<()> {
        let key_file = match unlock_key {
            Some(k) => {
                let kek = kek_from_unlock_key(k).map_err(unlock_error)?;
                pem_block(SEALED_LABEL, &kek.seal(certs.key_pem.as_bytes()))
            }
            None => certs.key_pem.clone(),
        };
        self.make_dir()?;
        self.write(ROOT_FILE, certs.root_pem.as_bytes())?;
        self.write(KEY_FILE, key_file.as_bytes())?;
        self.write(CERT_FILE, certs.cert_pem.as_bytes())
    }

    /// Reads the files.
    ///
    /// `Missing` when any of the three is absent, `Locked` when the key is
    /// sealed. Fails (internal error) on an I/O error or when a plain key
    /// does not belong to the certificate.
    pub fn load(&self) -> Result<LoadedCerts> {
        let (Some(cert_pem), Some(key_file), Some(root_pem)) = (
            self.read(CERT_FILE)?,
            self.read(KEY_FILE)?,
            self.read(ROOT_FILE)?,
        ) else {
            return Ok(LoadedCerts::Missing);
        };
        if pem_body(&key_file, SEALED_LABEL).is_some() {
            return Ok(LoadedCerts::Locked);
        }
        let certs = NodeCerts {
            cert_pem,
            key_pem: key_file,
            root_pem,
        };
        check_pair(&certs)?;
        Ok(LoadedCerts::Ready(certs))
    }

    /// Opens a sealed key with the unlock key and returns all three.
    ///
    /// A malformed key fails with InvalidArgument "invalid key string" and
    /// a wrong one with Unauthorized "swarm could not be unlocked: invalid key
    /// provided", as `docker swarm unlock` reports them. A key stored plain
    /// is returned whatever `unlock_key` is. Fails with NotFound when no
    /// certificates are stored.
    pub fn unlock(&self, unlock_key: &str) -> Result<NodeCerts> {
        let (Some(cert_pem), Some(key_file), Some(root_pem)) = (
            self.read(CERT_FILE)?,
            self.read(KEY_FILE)?,
            self.read(ROOT_FILE)?,
        ) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                "no node certificate is stored",
            ));
        };
        let key_pem = match pem_body(&key_file, SEALED_LABEL) {
            Some(body) => {
                let sealed = B64
                    .decode(body)
                    .map_err(|_| Error::internal("node key file is corrupt"))?;
                let kek = kek_from_unlock_key(unlock_key).map_err(unlock_error)?;
                let plain = kek.open(&sealed).map_err(unlock_error)?;
                String::from_utf8(plain).map_err(|_| Error::internal("node key is corrupt"))?
            }
            None => key_file,
        };
        let certs = NodeCerts {
            cert_pem,
            key_pem,
            root_pem,
        };
        check_pair(&certs)?;
        Ok(certs)
    }

    fn make_dir(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        use std::os::unix::fs::PermissionsExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| io_error(&self.dir, e))?;
        // An existing directory keeps its mode through `create`: tighten it.
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error(&self.dir, e))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        write_durable(&path, bytes).map_err(|e| io_error(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error(&path, e))
    }

    fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }
}

/// The node's key must be its certificate's: a crash mid-save, or files
/// copied from another node, would otherwise fail every handshake later and
/// far from the cause.
fn check_pair(certs: &NodeCerts) -> Result<()> {
    let cert = CertificateDer::from_pem_slice(certs.cert_pem.as_bytes())
        .map_err(|e| Error::internal(format!("node certificate: {e}")))?;
    let key = rcgen::KeyPair::from_pem(&certs.key_pem)
        .map_err(|e| Error::internal(format!("node key: {e}")))?;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| Error::internal(format!("node certificate: {e}")))?;
    if parsed.public_key().raw != key.public_key_der().as_slice() {
        return Err(Error::internal(
            "node key does not match the node certificate",
        ));
    }
    Ok(())
}

/// The errors `docker swarm unlock` shows for a bad unlock key (the texts
/// `SwarmNode::unlock` uses for the raft data key).
fn unlock_error(e: SealError) -> Error {
    match e {
        SealError::BadUnlockKey => Error::new(ErrorKind::InvalidArgument, "invalid key string"),
        SealError::Open => Error::new(
            ErrorKind::Unauthorized,
            "swarm could not be unlocked: invalid key provided",
        ),
        other => Error::internal(other.to_string()),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{}: {e}", path.display()))
}

fn pem_block(label: &str, bytes: &[u8]) -> String {
    let body = B64.encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    // `chunks` of an ASCII string's bytes are ASCII: the lossy conversion
    // never replaces anything.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The base64 body (line breaks removed) of a PEM block with `label`, when
/// `text` is one.
fn pem_body(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let rest = text.trim().strip_prefix(&begin)?;
    let body = rest.strip_suffix(&end)?;
    Some(body.split_whitespace().collect())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::ca::csr::new_key_and_csr;
    use crate::ca::identity::Role;
    use crate::ca::issuer::Issuer;
    use crate::ca::root;
    use crate::raft::encryption::new_unlock_key;

    fn certs() -> NodeCerts {
        let ca = root::generate(1).unwrap();
        let issuer = Issuer::new(&ca.cert_pem, &ca.key_pem).unwrap();
        let key = new_key_and_csr().unwrap();
        let cert_pem = issuer
            .issue(
                &key.csr_pem,
                "node1",
                Role::Manager,
                "cluster1",
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
        NodeCerts {
            cert_pem,
            key_pem: key.key_pem,
            root_pem: ca.cert_pem,
        }
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(dir.join(DIR))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn plain_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        assert!(matches!(store.load().unwrap(), LoadedCerts::Missing));
        let c = certs();
        store.save(&c, None).unwrap();
        let names: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [CERT_FILE, KEY_FILE, ROOT_FILE]);
        match store.load().unwrap() {
            LoadedCerts::Ready(back) => assert_eq!(back, c),
            other => panic!("{other:?}"),
        }
        let key_mode = std::fs::metadata(dir.path().join(DIR).join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join(DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // A plain key comes back from unlock whatever key is given.
        assert_eq!(store.unlock(&new_unlock_key()).unwrap(), c);
    }

    #[test]
    fn locked_save_load_and_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let c = certs();
        let unlock_key = new_unlock_key();
        store.save(&c, Some(&unlock_key)).unwrap();
        assert!(matches!(store.load().unwrap(), LoadedCerts::Locked));

        // No byte of the private key reaches the disk in the clear: neither
        // the PEM text nor the DER inside it.
        let key_der = rustls::pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes())
            .unwrap()
            .secret_der()
            .to_vec();
        let key_body: String = c
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for (name, bytes) in files(dir.path()) {
            assert!(!contains(&bytes, &key_der), "{name} holds the key DER");
            assert!(
                !contains(&bytes, key_body.as_bytes()),
                "{name} holds the key PEM"
            );
            assert!(!contains(&bytes, b"PRIVATE KEY"), "{name}");
        }

        let wrong = store.unlock(&new_unlock_key()).unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::Unauthorized);
        assert_eq!(
            wrong.message(),
            "swarm could not be unlocked: invalid key provided"
        );
        let malformed = store.unlock("SWMKEY-1-nonsense").unwrap_err();
        assert_eq!(malformed.kind(), ErrorKind::InvalidArgument);
        assert_eq!(malformed.message(), "invalid key string");
        assert_eq!(store.unlock(&unlock_key).unwrap(), c);

        // Turning autolock off rewrites the key in the clear.
        store.save(&c, None).unwrap();
        assert!(matches!(store.load().unwrap(), LoadedCerts::Ready(_)));
    }

    #[test]
    fn a_bad_unlock_key_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let err = store.save(&certs(), Some("garbage")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(!dir.path().join(DIR).exists());
    }

    #[test]
    fn a_key_of_another_node_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let mut c = certs();
        c.key_pem = certs().key_pem;
        store.save(&c, None).unwrap();
        assert!(store.load().is_err());
    }

    #[test]
    fn partial_files_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        store.save(&certs(), None).unwrap();
        std::fs::remove_file(dir.path().join(DIR).join(CERT_FILE)).unwrap();
        assert!(matches!(store.load().unwrap(), LoadedCerts::Missing));
        assert_eq!(
            store.unlock(&new_unlock_key()).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
