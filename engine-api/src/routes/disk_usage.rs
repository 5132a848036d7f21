//! `docker system df [-v]` (`GET /system/df`) and the build-cache prune
//! `docker system prune` calls (`POST /build/prune`): shoal has no
//! builder, so there is never any build cache to count or free.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::routing::post;
use axum::Json;
use axum::Router;
use runtime::volumes::store::dir_size;
use runtime::volumes::store::VolumeStore;
use serde_json::json;
use serde_json::Value;

use crate::error::ApiResult;
use crate::routes::containers::node_env;
use crate::routes::containers::render_summary;
use crate::routes::images::summary as image_summary;
use crate::routes::volumes::render as volume_json;
use crate::AppState;

/// The disk-usage routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/system/df", get(df))
        .route("/build/prune", post(build_prune))
}

/// `POST /build/prune`: nothing to free.
async fn build_prune() -> Json<Value> {
    Json(json!({ "CachesDeleted": null, "SpaceReclaimed": 0 }))
}

/// `GET /system/df`.
async fn df(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let env = node_env(&s);
    let images = s.runtime.image_list().await?;
    let containers = s.runtime.container_infos(&env).await?;
    let image_of = |name: &str| images.iter().find(|i| i.names.iter().any(|n| n == name));
    let mut per_image: HashMap<String, i64> = HashMap::new();
    for c in &containers {
        if let Some(i) = image_of(&c.image) {
            *per_image.entry(i.id.clone()).or_default() += 1;
        }
    }
    let (layers_size, usage) = runtime::usage::sizes::image_usage(&images, &per_image);
    let images_json: Vec<Value> = images
        .iter()
        .zip(&usage)
        .map(|(i, u)| {
            let mut v = image_summary(i);
            v["Containers"] = json!(u.containers);
            v["SharedSize"] = json!(u.shared_size);
            v["Size"] = json!(u.size);
            v["VirtualSize"] = json!(u.size);
            v
        })
        .collect();
    let ids: Vec<String> = containers.iter().map(|c| c.id.clone()).collect();
    let sizes = s.runtime.container_sizes(&ids).await;
    let now = time::OffsetDateTime::now_utc();
    let containers_json: Vec<Value> = containers
        .iter()
        .map(|c| {
            let image = image_of(&c.image);
            let mut v = render_summary(&s, c, image.map(|i| i.id.as_str()), now);
            let rw = sizes.get(&c.id).copied().unwrap_or(0);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rw + image.map_or(0, |i| i.size));
            v
        })
        .collect();
    let refs = s.runtime.volume_refs(&env).await?;
    let volumes_json: Vec<Value> = VolumeStore::new(&env.volumes_root)
        .list()?
        .iter()
        .map(|v| {
            let mut out = volume_json(v);
            out["UsageData"] = json!({
                "Size": dir_size(&v.mountpoint),
                "RefCount": refs.get(&v.name).map_or(0, Vec::len),
            });
            out
        })
        .collect();
    Ok(Json(json!({
        "LayersSize": layers_size,
        "Images": images_json,
        "Containers": containers_json,
        "Volumes": volumes_json,
        // dockerd without build cache answers null, not [].
        "BuildCache": null,
        "BuilderSize": 0,
    })))
}
