//! Reading what a registry serves: image manifests, and indexes (manifest
//! lists) resolved to the linux/amd64 entry.

use serde::Deserialize;

use super::error::RegistryError;
use super::error::RegistryErrorKind;
use crate::images::media;

/// The platform shoal pulls for.
pub(crate) const OS: &str = "linux";
/// The architecture shoal pulls for.
pub(crate) const ARCH: &str = "amd64";

/// A content descriptor in a manifest.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Desc {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// A platform as an index entry names it.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub(crate) struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    manifests: Option<Vec<Desc>>,
}

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub(crate) enum Manifest {
    /// An image manifest: config and layers.
    Image {
        /// Its media type.
        media_type: String,
        /// The config blob.
        config: Desc,
        /// Layer blobs, bottom first.
        layers: Vec<Desc>,
    },
    /// An index (manifest list): one manifest per platform.
    Index {
        /// Its media type.
        media_type: String,
        /// The entries.
        manifests: Vec<Desc>,
    },
}

impl Manifest {
    /// Parses a manifest or index. `full_name` (the reference as dockerd
    /// prints it in the schema 1 message) is only used for errors.
    pub fn parse(bytes: &[u8], full_name: &str) -> Result<Manifest, RegistryError> {
        let doc: Doc = serde_json::from_slice(bytes).map_err(|_| {
            RegistryError::new(
                RegistryErrorKind::Unsupported,
                "unsupported manifest format",
            )
        })?;
        if doc.schema_version == 1 {
            return Err(RegistryError::new(
                RegistryErrorKind::Unsupported,
                format!(
                    "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. \
                     Suggest the author of {full_name} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. \
                     More information at https://docs.docker.com/go/deprecated-image-specs/"
                ),
            ));
        }
        let is_index = match doc.media_type.as_deref() {
            Some(media::OCI_INDEX) | Some(media::DOCKER_MANIFEST_LIST) => true,
            Some(media::OCI_MANIFEST) | Some(media::DOCKER_MANIFEST) => false,
            Some(_) => {
                return Err(RegistryError::new(
                    RegistryErrorKind::Unsupported,
                    "unsupported manifest format",
                ))
            }
            None => doc.manifests.is_some() && doc.config.is_none(),
        };
        if is_index {
            return Ok(Manifest::Index {
                media_type: doc.media_type.unwrap_or_else(|| media::OCI_INDEX.into()),
                manifests: doc.manifests.unwrap_or_default(),
            });
        }
        let config = doc.config.ok_or_else(|| {
            RegistryError::new(
                RegistryErrorKind::Unsupported,
                "unsupported manifest format",
            )
        })?;
        check_config_type(&config.media_type)?;
        for l in &doc.layers {
            check_layer_type(&l.media_type)?;
        }
        Ok(Manifest::Image {
            media_type: doc.media_type.unwrap_or_else(|| media::OCI_MANIFEST.into()),
            config,
            layers: doc.layers,
        })
    }

    /// The media type of the document.
    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Image { media_type, .. } | Manifest::Index { media_type, .. } => media_type,
        }
    }
}

/// The index entry for linux/amd64, with its position (for the GC label),
/// or dockerd's error when there is none.
pub(crate) fn pick_platform(manifests: &[Desc]) -> Result<(usize, &Desc), RegistryError> {
    manifests
        .iter()
        .enumerate()
        .find(|(_, m)| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == OS && p.architecture == ARCH)
        })
        .ok_or_else(|| {
            RegistryError::new(
                RegistryErrorKind::Failed,
                format!("no matching manifest for {OS}/{ARCH} in the manifest list entries"),
            )
        })
}

/// Config types dockerd pulls as images.
const IMAGE_CONFIG_TYPES: &[&str] = &[
    media::DOCKER_CONFIG,
    "application/vnd.oci.image.config.v1+json",
    "application/octet-stream",
    "application/json",
    "text/html",
    "",
];

fn check_config_type(t: &str) -> Result<(), RegistryError> {
    if IMAGE_CONFIG_TYPES.contains(&t) {
        return Ok(());
    }
    let class = if t == "application/vnd.docker.plugin.v1+json" {
        "plugin"
    } else {
        "unknown"
    };
    Err(RegistryError::new(
        RegistryErrorKind::Unsupported,
        format!("Encountered remote \"{t}\"({class}) when fetching"),
    ))
}

/// Layer types dockerd accepts: OCI and Docker image types and a few
/// generic ones that old registries sent.
fn check_layer_type(t: &str) -> Result<(), RegistryError> {
    let lower = t.to_ascii_lowercase();
    let ok = ["application/vnd.oci.image", "application/vnd.docker"]
        .iter()
        .any(|p| lower.starts_with(&format!("{p}.")))
        || [
            "application/octet-stream",
            "application/json",
            "text/html",
            "",
        ]
        .contains(&lower.as_str());
    if ok && !lower.starts_with("application/vnd.docker.ai.") {
        return Ok(());
    }
    Err(RegistryError::new(
        RegistryErrorKind::Unsupported,
        format!("unsupported media type {t}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_manifest() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":3},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:l","size":9}]}"#;
        match Manifest::parse(m, "x").unwrap() {
            Manifest::Image { config, layers, .. } => {
                assert_eq!(config.digest, "sha256:c");
                assert_eq!(layers[0].size, 9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn index_without_media_type_picks_amd64() {
        let m = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"architecture":"arm64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let Manifest::Index { manifests, .. } = Manifest::parse(m, "x").unwrap() else {
            panic!("not an index");
        };
        let (i, d) = pick_platform(&manifests).unwrap();
        assert_eq!((i, d.digest.as_str()), (1, "sha256:b"));
        let e = pick_platform(&manifests[..1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/amd64 in the manifest list entries"
        );
    }

    #[test]
    fn refuses_what_dockerd_refuses() {
        let plugin = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.plugin.v1+json","digest":"sha256:c","size":3},"layers":[]}"#;
        assert_eq!(
            Manifest::parse(plugin, "x").unwrap_err().to_string(),
            "Encountered remote \"application/vnd.docker.plugin.v1+json\"(plugin) when fetching"
        );
        let v1 = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(Manifest::parse(v1, "docker.io/library/x:1")
            .unwrap_err()
            .to_string()
            .contains("Suggest the author of docker.io/library/x:1 to upgrade"));
    }
}
