//! `/swarm` routes: init, join, leave, inspect, update, unlock key, unlock.

use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Extension;
use axum::Json;
use axum::Router;
use serde::Deserialize;
use swarm::controlapi::cluster;
use swarm::node::InitRequest;
use swarm::node::JoinRequest;

use crate::body::query_bool;
use crate::body::query_strict_bool;
use crate::body::query_version;
use crate::body::BadBool;
use crate::body::JsonBody;
use crate::body::VersionOf;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::server::version::empty_ok;
use crate::server::version::ApiVersion;
use crate::AppState;

/// The swarm routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/swarm", get(inspect))
        .route("/swarm/init", post(init))
        .route("/swarm/join", post(join))
        .route("/swarm/leave", post(leave))
        .route("/swarm/update", post(update))
        .route("/swarm/unlockkey", get(unlock_key))
        .route("/swarm/unlock", post(unlock))
}

async fn inspect(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let m = s.node.manager()?;
    let c = cluster::get(m.store())?;
    let mut v = serde_json::to_value(&c.api).map_err(|e| ApiError::bad_request(e.to_string()))?;
    null_addr_pool(&mut v);
    Ok(Json(v))
}

/// dockerd writes `DefaultAddrPool: null` when init was given an empty
/// pool (what the CLI sends without `--default-addr-pool`).
pub fn null_addr_pool(cluster: &mut serde_json::Value) {
    if let Some(o) = cluster.as_object_mut() {
        o.entry("DefaultAddrPool")
            .or_insert(serde_json::Value::Null);
    }
}

/// `Availability`, which init and join bodies carry beside the generated
/// request type's fields.
#[derive(Deserialize)]
struct AvailabilityBody {
    #[serde(rename = "Availability")]
    availability: Option<swarm::model::api::NodeSpecAvailabilityEnum>,
}

/// Decodes an init or join body part by part: `InitRequest` and
/// `JoinRequest` flatten the generated type, and serde matches a flattened
/// struct's keys exactly, out of reach of Go's case-insensitive rule.
fn decode_with_availability<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<(T, Option<swarm::model::api::NodeSpecAvailabilityEnum>), ApiError> {
    let base = crate::body::decode(body)?;
    let extra: AvailabilityBody = crate::body::decode(body)?;
    Ok((base, extra.availability))
}

async fn init(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Json<String>> {
    let (mut base, availability) = decode_with_availability(&body)?;
    crate::compat::swarm_init_in(&mut base, version);
    let req = InitRequest { base, availability };
    Ok(Json(s.node.init(req).await?))
}

async fn join(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let (base, availability) = decode_with_availability(&body)?;
    s.node.join(JoinRequest { base, availability }).await?;
    Ok(empty_ok())
}

async fn leave(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    s.node.leave(query_bool(&q, "force")).await?;
    Ok(empty_ok())
}

async fn update(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
    JsonBody(spec): JsonBody<swarm::model::api::SwarmSpec>,
) -> ApiResult<Response> {
    // dockerd's order: the body, the version, each flag, then the swarm.
    let version = query_version(&q, VersionOf::Swarm)?;
    let flag = |key| query_strict_bool(&q, key, BadBool::Bare).map(Option::unwrap_or_default);
    let rotate = cluster::Rotate {
        worker_token: flag("rotateWorkerToken")?,
        manager_token: flag("rotateManagerToken")?,
        unlock_key: flag("rotateManagerUnlockKey")?,
    };
    let m = s.node.manager()?;
    let out = cluster::update(m.store(), version, spec, rotate).await?;
    if out.key_changed {
        s.node.rewrap_key(out.unlock_key.as_deref())?;
    }
    Ok(empty_ok())
}

async fn unlock_key(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let m = s.node.manager()?;
    let c = cluster::get(m.store())?;
    Ok(Json(
        serde_json::json!({ "UnlockKey": c.unlock_key.unwrap_or_default() }),
    ))
}

#[derive(Deserialize)]
struct UnlockRequest {
    #[serde(rename = "UnlockKey", default)]
    unlock_key: String,
}

async fn unlock(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<UnlockRequest>,
) -> ApiResult<Response> {
    s.node.unlock(&req.unlock_key).await?;
    Ok(empty_ok())
}
