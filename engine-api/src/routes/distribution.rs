//! `GET /distribution/{name}/json`: image digest resolution.
//!
//! Asks the image's registry (with the caller's `X-Registry-Auth`) for the
//! manifest the name points at, as dockerd does, and answers its
//! descriptor and platforms. When the registry cannot be reached, the
//! answer is dockerd's 500 with the transport error, so the CLI warns and
//! keeps the tag unpinned; registry refusals keep dockerd's 401, 403 and 404.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Json;
use axum::Router;
use runtime::images::DistributionInspect;
use runtime::images::PlatformInfo;
use runtime::images::RegistryAuth;
use serde::Serialize;

use crate::error::ApiError;
use crate::error::ApiResult;
use crate::AppState;

/// The distribution routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/distribution/{*name}", get(inspect))
}

/// dockerd's `registry.DistributionInspect`, fields in its order.
#[derive(Serialize)]
struct InspectJson {
    #[serde(rename = "Descriptor")]
    descriptor: DescriptorJson,
    #[serde(rename = "Platforms")]
    platforms: Option<Vec<PlatformJson>>,
}

#[derive(Serialize)]
struct DescriptorJson {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: i64,
}

#[derive(Serialize)]
struct PlatformJson {
    architecture: String,
    os: String,
    #[serde(rename = "os.version", skip_serializing_if = "String::is_empty")]
    os_version: String,
    #[serde(rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    os_features: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    variant: String,
}

impl From<PlatformInfo> for PlatformJson {
    fn from(p: PlatformInfo) -> PlatformJson {
        PlatformJson {
            architecture: p.architecture,
            os: p.os,
            os_version: p.os_version,
            os_features: p.os_features,
            variant: p.variant,
        }
    }
}

async fn inspect(Path(name): Path<String>, headers: HeaderMap) -> ApiResult<Json<InspectJson>> {
    let image = name.strip_suffix("/json").unwrap_or(&name);
    if !swarm::controlapi::validate::is_valid_reference(image) {
        return Err(ApiError::bad_request(
            "invalid reference format: repository name must be lowercase",
        ));
    }
    let auth = headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .and_then(RegistryAuth::from_header);
    let d = DistributionInspect::fetch(image, auth.as_ref()).await?;
    // Go's nil slice: no platforms is `null`.
    let platforms = (!d.platforms.is_empty())
        .then(|| d.platforms.into_iter().map(PlatformJson::from).collect());
    Ok(Json(InspectJson {
        descriptor: DescriptorJson {
            media_type: d.media_type,
            digest: d.digest,
            size: d.size,
        },
        platforms,
    }))
}
