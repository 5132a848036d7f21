//! The life of standalone containers: `docker create`, `start`,
//! `restart`, `pause`, `unpause`, `rename`, `update` and the TTY resize
//! (`runtime::standalone` does the work). Task containers belong to their
//! task: these refuse them, as the swarm agent starts and ends them.

use std::time::Duration;

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Json;
use runtime::view::ContainerInfo;
use serde_json::json;
use swarm::model::api;

use super::find;
use super::no_content;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::AppState;

/// A task container named where only a standalone one will do.
fn standalone(c: ContainerInfo) -> ApiResult<ContainerInfo> {
    if c.standalone {
        return Ok(c);
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "container {} belongs to swarm task {}: its service starts and stops it",
            c.name,
            c.task_id()
        ),
    ))
}

/// `POST /containers/create?name=`.
pub(super) async fn create(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
    JsonBody(body): JsonBody<api::ContainerCreateBody>,
) -> ApiResult<Response> {
    let name = q.get("name").map_or("", String::as_str);
    let created = s.standalone.create(name, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": created.id, "Warnings": created.warnings })),
    )
        .into_response())
}

/// `POST /containers/{id}/start`: 304 when it runs already.
pub(super) async fn start(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = standalone(find(&s, &id).await?)?;
    s.standalone.start(&c.id).await?;
    Ok(no_content())
}

/// A `t` (seconds) as dockerd reads it; negative waits without a kill.
pub(super) fn stop_timeout(q: &crate::body::Query) -> ApiResult<Option<Option<Duration>>> {
    match q.get("t").filter(|t| !t.is_empty()) {
        Some(t) => {
            let t = t.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("strconv.Atoi: parsing \"{t}\": invalid syntax"))
            })?;
            Ok(Some((t >= 0).then(|| Duration::from_secs(t as u64))))
        }
        None => Ok(None),
    }
}

/// `POST /containers/{id}/restart?t=`.
pub(super) async fn restart(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let grace = stop_timeout(&q)?.unwrap_or(Some(Duration::from_secs(10)));
    let c = standalone(find(&s, &id).await?)?;
    s.standalone.restart(&c, grace).await.map_err(|e| {
        let api = ApiError::from(e);
        ApiError::new(
            api.status,
            format!("Cannot restart container {id}: {}", api.message),
        )
    })?;
    Ok(no_content())
}

/// `POST /containers/{id}/pause`.
pub(super) async fn pause(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = standalone(find(&s, &id).await?)?;
    s.standalone.pause(&c, true).await?;
    Ok(no_content())
}

/// `POST /containers/{id}/unpause`.
pub(super) async fn unpause(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = standalone(find(&s, &id).await?)?;
    s.standalone.pause(&c, false).await?;
    Ok(no_content())
}

/// `POST /containers/{id}/rename?name=`.
pub(super) async fn rename(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let name = q.get("name").map_or("", String::as_str);
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "Neither old nor new names may be empty",
        ));
    }
    let c = standalone(find(&s, &id).await?)?;
    s.standalone.rename(&c.id, name).await?;
    Ok(no_content())
}

/// The fields of `POST /containers/{id}/update` this daemon applies; any
/// other one set is refused, saying so.
const UPDATABLE: &[&str] = &[
    "RestartPolicy",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "PidsLimit",
];

/// `POST /containers/{id}/update`: the restart policy and the memory,
/// CPU and pids limits (`runtime::standalone` checks, merges and applies
/// them).
pub(super) async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    let c = standalone(find(&s, &id).await?)?;
    let other = body.as_object().and_then(|o| {
        o.iter()
            .find(|(k, v)| !UPDATABLE.iter().any(|u| k.eq_ignore_ascii_case(u)) && !is_zero(v))
            .map(|(k, _)| k.clone())
    });
    if let Some(field) = other {
        return Err(ApiError::bad_request(format!(
            "Cannot update container: {field} cannot be updated on this daemon"
        )));
    }
    let typed: api::ContainerUpdateBody = crate::body::decode(body.to_string().as_bytes())?;
    s.standalone.update(&c.id, typed).await?;
    Ok(Json(json!({ "Warnings": null })))
}

/// Whether a JSON value is what the CLI sends for a field left alone.
fn is_zero(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.values().all(is_zero),
    }
}

/// `POST /containers/{id}/resize?h=&w=`.
pub(super) async fn resize(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let height = crate::routes::exec::dimension(&q, "h", "height")?;
    let width = crate::routes::exec::dimension(&q, "w", "width")?;
    let c = standalone(find(&s, &id).await?)?;
    s.standalone.resize(&c, width, height).await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_fields_are_zero() {
        assert!(is_zero(
            &json!({"Memory": 0, "CpusetCpus": "", "BlkioWeightDevice": null})
        ));
        assert!(!is_zero(&json!({"Memory": 1024})));
    }
}
