//! `docker cp` (`HEAD`, `GET` and `PUT /containers/{id}/archive?path=`)
//! and `docker container export` (`GET /containers/{id}/export`). The
//! stat of the path travels in the `X-Docker-Container-Path-Stat` header,
//! base64 JSON, as dockerd sends it.

use axum::body::Body;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use runtime::view::archive::CopyPath;
use runtime::view::archive::PathStat;

use super::find;
use crate::body::query_bool;
use crate::body::Query as Params;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::AppState;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// The archive and export routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(archive).head(stat).put(extract),
        )
        .route("/containers/{id}/export", get(export))
}

fn copy_path(id: &str, q: &Params) -> ApiResult<CopyPath> {
    let path = q.get("path").cloned().unwrap_or_default();
    if path.is_empty() {
        // dockerd's text, missing space included.
        return Err(ApiError::bad_request("bad parameter: pathcannot be empty"));
    }
    Ok(CopyPath {
        container: id.to_string(),
        path,
    })
}

fn with_stat(mut resp: Response, stat: &PathStat) -> Response {
    if let Ok(v) = HeaderValue::from_str(&stat.header_value()) {
        resp.headers_mut().insert(STAT_HEADER, v);
    }
    resp
}

fn tar_body(file: std::fs::File) -> Response {
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    (
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `HEAD /containers/{id}/archive?path=`.
async fn stat(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult<Response> {
    let p = copy_path(&id, &q)?;
    let c = find(&st, &id).await?;
    let s = st.runtime.container_stat_path(&c, &p).await?;
    Ok(with_stat(().into_response(), &s))
}

/// `GET /containers/{id}/archive?path=`.
async fn archive(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult<Response> {
    let p = copy_path(&id, &q)?;
    let c = find(&st, &id).await?;
    let (s, file) = st.runtime.container_archive(&c, &p).await?;
    Ok(with_stat(tar_body(file), &s))
}

/// `PUT /containers/{id}/archive?path=`: 200 with no body.
async fn extract(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Params>,
    body: Body,
) -> ApiResult<Response> {
    let p = copy_path(&id, &q)?;
    let c = find(&st, &id).await?;
    st.runtime
        .container_extract(
            &c,
            &p,
            body.into_data_stream(),
            query_bool(&q, "copyUIDGID"),
        )
        .await?;
    Ok(().into_response())
}

/// `GET /containers/{id}/export`.
async fn export(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = find(&st, &id).await?;
    let file = st.runtime.container_export(&c).await?;
    Ok(tar_body(file))
}
