//! `/images/*` on containerd: `docker load`, `docker image ls`,
//! `docker image inspect` and `docker image rm`.
//!
//! Handlers decode, call `runtime`, and encode dockerd's JSON shapes. While
//! containerd is unreachable every route answers 500 with the reason.

use axum::body::Body;
use axum::extract::Path;
use axum::extract::Query as QueryExtract;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Json;
use axum::Router;
use runtime::images::ImageInfo;
use runtime::images::RemoveItem;
use serde_json::json;
use serde_json::Value;

use crate::body::query_bool;
use crate::body::Query;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::AppState;

/// The image routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/load", post(load))
        .route("/images/{*name}", get(inspect).delete(remove))
}

/// `POST /images/load`: the body is the archive. Answers dockerd's JSON
/// message stream, one `{"stream": "Loaded image: ...\n"}` per image.
async fn load(State(st): State<AppState>, body: Body) -> ApiResult<Response> {
    let lines = st.runtime.image_load(body.into_data_stream()).await?;
    let mut out = String::new();
    for l in lines {
        out.push_str(&json!({ "stream": format!("{l}\n") }).to_string());
        out.push_str("\r\n");
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `GET /images/json`.
async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let images = st.runtime.image_list().await?;
    Ok(Json(images.iter().map(summary).collect()))
}

/// `GET /images/{name}/json`.
async fn inspect(State(st): State<AppState>, Path(path): Path<String>) -> ApiResult<Json<Value>> {
    let Some(name) = path.strip_suffix("/json") else {
        return Err(ApiError::not_found("page not found"));
    };
    let (info, _) = st.runtime.image_find(name).await?;
    Ok(Json(inspect_json(&info)))
}

/// `DELETE /images/{name}`.
async fn remove(
    State(st): State<AppState>,
    Path(name): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Vec<Value>>> {
    let items = st
        .runtime
        .image_remove(&name, query_bool(&q, "force"))
        .await?;
    Ok(Json(
        items
            .into_iter()
            .map(|i| match i {
                RemoveItem::Untagged(n) => json!({ "Untagged": n }),
                RemoveItem::Deleted(id) => json!({ "Deleted": id }),
            })
            .collect(),
    ))
}

/// The config's `created` as Unix seconds (0 when absent or unparsable).
fn created_unix(info: &ImageInfo) -> i64 {
    created_str(info)
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(0, |t| t.unix_timestamp())
}

fn created_str(info: &ImageInfo) -> Option<&str> {
    info.config.get("created").and_then(Value::as_str)
}

fn summary(info: &ImageInfo) -> Value {
    let labels = info
        .config
        .pointer("/config/Labels")
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "Id": info.id,
        "ParentId": "",
        "RepoTags": info.repo_tags(),
        "RepoDigests": [],
        "Created": created_unix(info),
        "Size": info.size,
        "SharedSize": -1,
        "Labels": labels,
        "Containers": -1,
    })
}

fn inspect_json(info: &ImageInfo) -> Value {
    let c = &info.config;
    let text = |key: &str| c.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let mut out = json!({
        "Id": info.id,
        "RepoTags": info.repo_tags(),
        "RepoDigests": [],
        "Parent": "",
        "Comment": text("comment"),
        "Created": created_str(info).unwrap_or(""),
        "DockerVersion": text("docker_version"),
        "Author": text("author"),
        "Config": c.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": text("architecture"),
        "Os": text("os"),
        "Size": info.size,
        "GraphDriver": { "Data": null, "Name": "overlayfs" },
        "RootFS": {
            "Type": c.pointer("/rootfs/type").and_then(Value::as_str).unwrap_or("layers"),
            "Layers": c.pointer("/rootfs/diff_ids").cloned().unwrap_or_else(|| json!([])),
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    if let Some(v) = c.get("variant").and_then(Value::as_str) {
        out["Variant"] = json!(v);
    }
    out
}
