//! One conversation with a registry for one repository: where it is, how it
//! wants to be authenticated, and fetching manifests and blobs through
//! oci-client, with failures turned into dockerd's texts.
//!
//! dockerd pings `/v2/` before anything else and learns the registry's
//! challenge there; shoal does the same, because oci-client hides both the
//! challenge and connection errors, and dockerd's texts depend on them
//! (`Get "http://h/v2/": dial tcp h: connect: connection refused`,
//! `Head "...": no basic auth credentials`).

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth as OciAuth;

use super::auth::Challenge;
use super::auth::RegistryAuth;
use super::error::parse_error_response;
use super::error::ErrCode;
use super::error::RegistryError;
use super::error::RegistryErrorKind;
use crate::images::media;
use crate::images::reference::Reference;

/// dockerd's limit for the `/v2/` ping and for login.
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a connection attempt to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a registry may stay silent in the middle of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Manifest types shoal asks for (schema 1 is not pulled, as in dockerd).
const MANIFEST_TYPES: &[&str] = &[
    media::DOCKER_MANIFEST,
    media::DOCKER_MANIFEST_LIST,
    media::OCI_MANIFEST,
    media::OCI_INDEX,
];

/// Where a registry is reached.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `host[:port]` as dialed.
    pub host: String,
    /// `http` for loopback registries (dockerd treats them as insecure and
    /// ends up on plain HTTP), `https` for every other.
    pub scheme: &'static str,
}

impl Endpoint {
    /// The endpoint of a reference's domain; Docker Hub is reached at
    /// `registry-1.docker.io` as dockerd does.
    pub fn for_domain(domain: &str) -> Endpoint {
        let host = match domain {
            "docker.io" | "index.docker.io" => "registry-1.docker.io".to_string(),
            d => d.to_string(),
        };
        let scheme = if is_loopback(&host) { "http" } else { "https" };
        Endpoint { host, scheme }
    }

    /// `scheme://host`.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

/// `localhost`, 127.0.0.0/8 and ::1, with or without a port.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(h, _)| !h.contains(':'))
            .map_or(host, |(h, _)| h)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// An HTTP client for registries, with rustls on ring.
pub(crate) fn http_client() -> Result<reqwest::Client, RegistryError> {
    install_crypto();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(PING_TIMEOUT)
        .build()
        .map_err(|e| RegistryError::new(RegistryErrorKind::Failed, error_chain(&e)))
}

/// reqwest is built without a crypto provider of its own (that would bring
/// a second crypto library): use ring, process-wide, once.
fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Someone else may have installed one already; that one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `GET /v2/`: the registry's challenge, if it asks for authentication.
/// A transport failure is dockerd's `Get "URL": ...` text.
pub(crate) async fn ping(
    http: &reqwest::Client,
    endpoint: &Endpoint,
) -> Result<Option<Challenge>, RegistryError> {
    let url = format!("{}/v2/", endpoint.base());
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| transport_error("Get", &url, &endpoint.host, &e))?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(None);
    }
    Ok(resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(Challenge::parse))
}

/// Go's `net/http` rendering of a failed request:
/// `Get "URL": dial tcp HOST: connect: connection refused`.
pub(crate) fn transport_error(
    method: &str,
    url: &str,
    host: &str,
    e: &reqwest::Error,
) -> RegistryError {
    let chain = error_chain(e);
    let refused = io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused);
    let why = if refused {
        format!("dial tcp {host}: connect: connection refused")
    } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        format!("dial tcp: lookup {name}: no such host")
    } else if e.is_timeout() {
        "net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)"
            .to_string()
    } else {
        chain
    };
    RegistryError::new(
        RegistryErrorKind::Failed,
        format!("{method} \"{url}\": {why}"),
    )
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// An error and its sources as one line.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = s.source();
    }
    text
}

/// What a conversation is for: the same registry answer reads differently
/// for a pull than for a `/distribution` lookup, as in dockerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `docker pull` and pulls for tasks.
    Pull,
    /// `GET /distribution/{name}/json`.
    Lookup,
}

/// A registry conversation about one repository.
pub(crate) struct Session {
    reference: Reference,
    endpoint: Endpoint,
    purpose: Purpose,
    http: reqwest::Client,
    oci: oci_client::Client,
    oci_auth: OciAuth,
    basic: Option<(String, String)>,
    challenge: Option<Challenge>,
}

impl Session {
    /// Pings the registry of `reference` and readies a client for it.
    pub async fn open(
        reference: &Reference,
        auth: Option<&RegistryAuth>,
        purpose: Purpose,
    ) -> Result<Session, RegistryError> {
        let endpoint = Endpoint::for_domain(&reference.domain);
        let http = http_client()?;
        let challenge = ping(&http, &endpoint).await?;
        let config = oci_client::client::ClientConfig {
            protocol: if endpoint.scheme == "http" {
                oci_client::client::ClientProtocol::Http
            } else {
                oci_client::client::ClientProtocol::Https
            },
            // Indexes are resolved here, to keep the index itself.
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            max_concurrent_download: 3,
            ..Default::default()
        };
        let oci = oci_client::Client::try_from(config)
            .map_err(|e| RegistryError::new(RegistryErrorKind::Failed, e.to_string()))?;
        Ok(Session {
            reference: reference.clone(),
            endpoint,
            purpose,
            http,
            oci,
            oci_auth: RegistryAuth::to_oci(auth),
            basic: auth
                .and_then(RegistryAuth::basic)
                .map(|(u, p)| (u.to_string(), p.to_string())),
            challenge,
        })
    }

    /// The reference this session pulls.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// `scheme://host/v2/<path>/manifests/<tag or digest>`.
    pub fn manifest_url(&self, tag_or_digest: &str) -> String {
        format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.endpoint.base(),
            self.reference.path
        )
    }

    fn blob_url(&self, digest: &str) -> String {
        format!(
            "{}/v2/{}/blobs/{digest}",
            self.endpoint.base(),
            self.reference.path
        )
    }

    fn oci_ref(&self, tag_or_digest: &str) -> oci_client::Reference {
        let registry = self.endpoint.host.clone();
        let repo = self.reference.path.clone();
        if tag_or_digest.starts_with("sha256:") {
            oci_client::Reference::with_digest(registry, repo, tag_or_digest.to_string())
        } else {
            oci_client::Reference::with_tag(registry, repo, tag_or_digest.to_string())
        }
    }

    /// A registry that asks for basic authentication gets no request
    /// without credentials: dockerd fails before sending it.
    fn check_basic(&self, method: &str, url: &str) -> Result<(), RegistryError> {
        if self.challenge == Some(Challenge::Basic) && self.basic.is_none() {
            return Err(RegistryError::new(
                RegistryErrorKind::Failed,
                format!("{method} \"{url}\": no basic auth credentials"),
            ));
        }
        Ok(())
    }

    /// Fetches a manifest (or index) by tag or digest: its exact bytes and
    /// digest. dockerd asks for a tag with HEAD first, which shows in its
    /// error texts.
    pub async fn manifest(&self, tag_or_digest: &str) -> Result<(Bytes, String), RegistryError> {
        let url = self.manifest_url(tag_or_digest);
        let method = if tag_or_digest.starts_with("sha256:") {
            "Get"
        } else {
            "Head"
        };
        self.check_basic(method, &url)?;
        let r = self.oci_ref(tag_or_digest);
        match self
            .oci
            .pull_manifest_raw(&r, &self.oci_auth, MANIFEST_TYPES)
            .await
        {
            Ok(v) => Ok(v),
            Err(e) => Err(self.explain(e, method, &url).await),
        }
    }

    /// Streams a blob; the caller checks digest and size.
    pub async fn blob(
        &self,
        digest: &str,
        size: i64,
        media_type: &str,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, RegistryError> {
        let url = self.blob_url(digest);
        self.check_basic("Get", &url)?;
        let desc = OciDescriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            ..Default::default()
        };
        // Any reference of the repository will do: blobs are per repository.
        let r = self.oci_ref(self.reference.tag.as_deref().unwrap_or("latest"));
        self.oci
            .store_auth_if_needed(r.resolve_registry(), &self.oci_auth)
            .await;
        match self.oci.pull_blob_stream(&r, &desc).await {
            Ok(s) => Ok(s.stream),
            Err(e) => Err(self.explain(e, "Get", &url).await),
        }
    }

    /// Turns an oci-client failure into dockerd's text for the same answer.
    async fn explain(&self, e: OciDistributionError, method: &str, url: &str) -> RegistryError {
        match e {
            OciDistributionError::RegistryError { envelope, .. } => match envelope.errors.first() {
                Some(first) => self.code_error(&ErrCode {
                    code: serde_json::to_value(&first.code)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "UNKNOWN".into()),
                    message: first.message.clone(),
                }),
                None => RegistryError::new(RegistryErrorKind::Failed, envelope.to_string()),
            },
            OciDistributionError::UnauthorizedError { url: u } => self.explain_401(&u).await,
            OciDistributionError::ServerError { code, message, .. } => {
                match parse_error_response(code, None, message.as_bytes()) {
                    Some(c) => self.code_error(&c),
                    None if (400..500).contains(&code) => self.code_error(&ErrCode {
                        code: if code == 429 {
                            "TOOMANYREQUESTS".into()
                        } else {
                            "UNKNOWN".into()
                        },
                        message,
                    }),
                    None => RegistryError::new(
                        RegistryErrorKind::Failed,
                        format!(
                            "received unexpected HTTP status: {code} {}",
                            reqwest::StatusCode::from_u16(code)
                                .ok()
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("")
                        ),
                    ),
                }
            }
            OciDistributionError::RequestError(re) => {
                transport_error(method, url, &self.endpoint.host, &re)
            }
            OciDistributionError::AuthenticationFailure(body) => {
                match parse_error_response(401, None, body.as_bytes()) {
                    Some(c) => self.code_error(&c),
                    None => RegistryError::new(RegistryErrorKind::Unauthorized, body),
                }
            }
            OciDistributionError::DigestError(d) => RegistryError::new(
                RegistryErrorKind::Failed,
                format!("manifest verification failed for digest {d}"),
            ),
            other => RegistryError::new(RegistryErrorKind::Failed, error_chain(&other)),
        }
    }

    /// oci-client reports a 401 without its body; ask again to read what
    /// the registry says (the `WWW-Authenticate` error, or the JSON body).
    async fn explain_401(&self, url: &str) -> RegistryError {
        let mut req = self.http.get(url);
        if let Some((u, p)) = &self.basic {
            req = req.basic_auth(u, Some(p));
        }
        let fallback = ErrCode {
            code: "UNAUTHORIZED".into(),
            message: "authentication required".into(),
        };
        let Ok(resp) = req.send().await else {
            return self.code_error(&fallback);
        };
        let status = resp.status().as_u16();
        let header = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let body = resp.bytes().await.unwrap_or_default();
        let code = parse_error_response(status, header.as_deref(), &body).unwrap_or(fallback);
        self.code_error(&code)
    }

    fn code_error(&self, c: &ErrCode) -> RegistryError {
        match self.purpose {
            Purpose::Pull => {
                let name = Reference {
                    tag: None,
                    digest: None,
                    ..self.reference.clone()
                };
                c.for_pull(&self.reference.familiar(), &name.familiar())
            }
            Purpose::Lookup => c.for_lookup(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_plain_http() {
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert_eq!(Endpoint::for_domain(h).scheme, "http", "{h}");
        }
        for h in ["registry.example:5000", "10.0.0.1:5000", "docker.io"] {
            assert_eq!(Endpoint::for_domain(h).scheme, "https", "{h}");
        }
        assert_eq!(
            Endpoint::for_domain("docker.io").host,
            "registry-1.docker.io"
        );
    }

    #[tokio::test]
    async fn refused_connection_reads_like_go() {
        // A port nobody listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ep = Endpoint::for_domain(&format!("127.0.0.1:{port}"));
        let e = ping(&http_client().unwrap(), &ep).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Get \"http://127.0.0.1:{port}/v2/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }
}
