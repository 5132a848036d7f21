//! Images in containerd: `docker load`, and the Docker view (list, inspect,
//! remove) of the image records in namespace `shoal`.

pub(crate) mod cache;
pub mod changes;
mod content;
pub mod history;
mod import;
mod load;
mod pull;
pub mod reference;
mod save;
mod store;
pub mod unpack;

pub use history::HistoryItem;
pub use import::ImportOptions;
pub use pull::registry_login;
pub use pull::DistributionInspect;
pub use pull::PlatformInfo;
pub use pull::PullEvent;
pub use pull::RegistryAuth;
pub use pull::RegistryError;
pub use pull::RegistryErrorKind;
pub use store::is_id_record;
pub use store::ImageInfo;
pub use store::LayerBlob;
pub use store::RemoveItem;

/// Media types shoal writes and reads.
pub mod media {
    /// Docker schema2 image manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker uncompressed layer.
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI zstd layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
}
