//! `GET /distribution/{name}/json`: what a registry holds under a name (the
//! descriptor of its manifest and the platforms it serves), which the CLI
//! uses to pin a service's image to a digest.

use super::auth::RegistryAuth;
use super::error::RegistryError;
use super::error::RegistryErrorKind;
use super::manifest::Manifest;
use super::manifest::Platform;
use super::session::Purpose;
use super::session::Session;
use crate::error::Result;
use crate::images::media;
use crate::images::reference::Reference;

/// A registry's answer for one reference, in dockerd's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionInspect {
    /// Media type of the manifest or index the reference names.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: i64,
    /// The platforms it serves: one per index entry, or for a Docker
    /// schema2 manifest the one its config names. Empty for an OCI image
    /// manifest, as dockerd reports it.
    pub platforms: Vec<PlatformInfo>,
}

/// One platform of a [`DistributionInspect`] (OCI platform fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformInfo {
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version, mostly for Windows.
    pub os_version: String,
    /// Required OS features.
    pub os_features: Vec<String>,
    /// CPU variant (`v8`).
    pub variant: String,
}

impl From<Platform> for PlatformInfo {
    fn from(p: Platform) -> PlatformInfo {
        PlatformInfo {
            architecture: p.architecture,
            os: p.os,
            os_version: p.os_version,
            os_features: p.os_features,
            variant: p.variant,
        }
    }
}

impl DistributionInspect {
    /// Asks the registry of `reference` about it. May be called without a
    /// containerd: it only talks to the registry. Errors keep dockerd's
    /// texts and its registry-API status classes (401, 403, 404; a registry
    /// that cannot be reached is `Failed`).
    pub async fn fetch(
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<DistributionInspect> {
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RegistryError::new(
                RegistryErrorKind::Failed,
                "no manifest found for full image ID",
            )
            .into());
        }
        let r = Reference::parse(reference)
            .ok_or_else(|| RegistryError::invalid_reference(reference))?;
        let session = Session::open(&r, auth, Purpose::Lookup).await?;
        let first = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let (bytes, digest) = session.manifest(&first).await?;
        let parsed = Manifest::parse(&bytes, &r.full())?;
        let media_type = parsed.media_type().to_string();
        let platforms = match parsed {
            Manifest::Index { manifests, .. } => manifests
                .into_iter()
                .map(|m| m.platform.unwrap_or_default().into())
                .collect(),
            Manifest::Image { config, .. } if media_type == media::DOCKER_MANIFEST => {
                config_platform(&session, &config).await
            }
            Manifest::Image { .. } => Vec::new(),
        };
        Ok(DistributionInspect {
            media_type,
            digest: r.digest.clone().unwrap_or(digest),
            size: bytes.len() as i64,
            platforms,
        })
    }
}

/// The platform a schema2 image's config names (none when it cannot be
/// read or names none, as dockerd does).
async fn config_platform(session: &Session, config: &super::manifest::Desc) -> Vec<PlatformInfo> {
    let Ok(data) = super::fetch_small(session, config).await else {
        return Vec::new();
    };
    match serde_json::from_slice::<Platform>(&data) {
        Ok(p) if !p.os.is_empty() || !p.architecture.is_empty() => vec![p.into()],
        _ => Vec::new(),
    }
}
