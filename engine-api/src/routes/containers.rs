//! `/containers/*` on the task containers of this node: `docker container
//! ls`, `inspect`, `logs`, `stats`, `top`, `stop`, `kill`, `rm` and `wait`.
//!
//! Handlers resolve the container the way dockerd does (full ID, name,
//! unique ID prefix) through `runtime::view`, act, and render dockerd's
//! JSON ([`render`]) or log stream ([`stream`]). Ending a container here is
//! what ending it under dockerd is for swarm: the node's agent sees the
//! task's process exit and the orchestrator replaces the task.

mod archive;
mod attach;
mod filter;
mod lifecycle;
pub(crate) mod logs;
mod prune;
mod render;
mod render_standalone;
mod stats;
pub(crate) mod stream;

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::delete;
use axum::routing::get;
use axum::routing::post;
use axum::Extension;
use axum::Json;
use axum::Router;
use runtime::exec::NodeEnv;
use runtime::logs::reader::ReadOptions;
use runtime::view::ContainerInfo;
use runtime::view::WaitCondition;
use serde_json::Value;
use swarm::model::api::TaskSpecContainerSpec;
use swarm::model::Task;

use self::render::Extras;
use self::stream::LogFormat;
use crate::body::query_bool;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::server::version::ApiVersion;
use crate::AppState;

/// The container routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(lifecycle::create))
        .route("/containers/{id}/start", post(lifecycle::start))
        .route("/containers/{id}/restart", post(lifecycle::restart))
        .route("/containers/{id}/pause", post(lifecycle::pause))
        .route("/containers/{id}/unpause", post(lifecycle::unpause))
        .route("/containers/{id}/rename", post(lifecycle::rename))
        .route("/containers/{id}/update", post(lifecycle::update))
        .route("/containers/{id}/resize", post(lifecycle::resize))
        .route("/containers/{id}/attach", post(attach::attach))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/containers/{id}/top", get(stats::top))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}", delete(remove))
        .route("/containers/prune", post(prune::prune))
        .merge(archive::routes())
}

/// One container as `GET /containers/json` lists it.
pub(crate) fn render_summary(
    s: &AppState,
    c: &ContainerInfo,
    image_id: Option<&str>,
    now: time::OffsetDateTime,
) -> Value {
    let specs = task_specs(s, &[c]);
    let x = Extras {
        spec: specs.get(c.task_id()),
        image_id,
    };
    let mut v = render::summary(c, &x, now);
    if let Some(r) = standalone_record(s, c) {
        render_standalone::summary(&mut v, c, &r);
    }
    v
}

/// A standalone container's own record.
fn standalone_record(
    s: &AppState,
    c: &ContainerInfo,
) -> Option<runtime::standalone::record::Record> {
    c.standalone
        .then(|| s.standalone.record(&c.id).ok())
        .flatten()
}

/// The node settings the container files and logs live under.
pub(crate) fn node_env(s: &AppState) -> NodeEnv {
    NodeEnv::new(
        FsPath::new(&s.engine.data_root),
        s.engine.hostname.clone(),
        s.engine.version.clone(),
    )
}

/// The container specs of the tasks behind `containers`, from the store
/// when this node is a manager (a worker renders without them).
fn task_specs(
    s: &AppState,
    containers: &[&ContainerInfo],
) -> HashMap<String, TaskSpecContainerSpec> {
    let Ok(m) = s.node.manager() else {
        return HashMap::new();
    };
    m.store().view(|tx| {
        let tables = tx.tables();
        containers
            .iter()
            .filter_map(|c| {
                let task = tables.get::<Task>(c.task_id())?;
                let spec = task.api.spec.as_ref()?.container_spec.clone()?;
                Some((c.task_id().to_string(), spec))
            })
            .collect()
    })
}

/// Image IDs by full image name; empty when containerd cannot list them.
async fn image_ids(s: &AppState) -> HashMap<String, String> {
    let Ok(images) = s.runtime.image_list().await else {
        return HashMap::new();
    };
    images
        .into_iter()
        .flat_map(|i| {
            let id = i.id.clone();
            i.names.into_iter().map(move |n| (n, id.clone()))
        })
        .collect()
}

/// The container `input` names, resolved as dockerd does.
pub(crate) async fn find(s: &AppState, input: &str) -> ApiResult<ContainerInfo> {
    Ok(s.runtime.container_info(&node_env(s), input).await?)
}

/// The container's user as its inspect shows it (`Config.User`).
pub(crate) fn config_user(s: &AppState, c: &ContainerInfo) -> String {
    let specs = task_specs(s, &[c]);
    render::user(c, specs.get(c.task_id()))
}

/// `GET /containers/json`.
async fn list(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Vec<Value>>> {
    let sel = filter::Selection::parse(
        q.get("filters").map(String::as_str),
        query_bool(&q, "all"),
        q.get("limit").map(String::as_str),
    )?;
    let all = s.runtime.container_infos(&node_env(&s)).await?;
    let ids = image_ids(&s).await;
    let image_id = |c: &ContainerInfo| ids.get(&c.image).cloned().unwrap_or_default();
    let shown = sel.apply(&all, &image_id)?;
    let specs = task_specs(&s, &shown);
    let now = time::OffsetDateTime::now_utc();
    Ok(Json(
        shown
            .iter()
            .map(|c| {
                let image_id = image_id(c);
                let x = Extras {
                    spec: specs.get(c.task_id()),
                    image_id: Some(&image_id),
                };
                let mut v = render::summary(c, &x, now);
                if let Some(r) = standalone_record(&s, c) {
                    render_standalone::summary(&mut v, c, &r);
                }
                v
            })
            .collect(),
    ))
}

/// `GET /containers/{id}/json`.
async fn inspect(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let c = find(&s, &id).await?;
    let specs = task_specs(&s, &[&c]);
    let ids = image_ids(&s).await;
    let x = Extras {
        spec: specs.get(c.task_id()),
        image_id: ids.get(&c.image).map(String::as_str),
    };
    let mut v = render::inspect(&c, &x);
    if let Some(r) = standalone_record(&s, &c) {
        render_standalone::inspect(&mut v, &c, &r);
    }
    Ok(Json(v))
}

/// `GET /containers/{id}/logs`.
async fn container_logs(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let c = find(&s, &id).await?;
    let format = LogFormat::from_query(&q, c.spec.tty, version)?;
    let since = stream::parse_unix_time("since", q.get("since").map_or("", String::as_str))?;
    let until = match q.get("until").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(v) => stream::parse_unix_time("until", v)?,
    };
    // dockerd reads any tail that is not a count as "all".
    let tail = q
        .get("tail")
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map(|n| n as usize);
    let opts = ReadOptions { tail, since, until };
    Ok(logs::container(&s, c, format, opts, query_bool(&q, "follow")).await)
}

/// The signal `docker stop` sends first: the query's, else the task's
/// stop signal, else the image's, else SIGTERM.
async fn stop_signal(s: &AppState, c: &ContainerInfo, q: &crate::body::Query) -> ApiResult<u32> {
    if let Some(sig) = q.get("signal").filter(|v| !v.is_empty()) {
        return Ok(runtime::view::parse_signal(sig)?);
    }
    let from_task = task_specs(s, &[c])
        .get(c.task_id())
        .and_then(|spec| spec.stop_signal.clone());
    let from_image = match &from_task {
        Some(_) => None,
        None => s
            .runtime
            .image_find(&c.image)
            .await
            .ok()
            .and_then(|(i, _)| {
                i.config
                    .pointer("/config/StopSignal")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
    };
    match from_task.or(from_image).filter(|v| !v.is_empty()) {
        Some(sig) => Ok(runtime::view::parse_signal(&sig)?),
        None => Ok(15),
    }
}

/// A standalone container's own stop timeout (`--stop-timeout`).
fn standalone_stop_timeout(s: &AppState, c: &ContainerInfo) -> Option<Duration> {
    if !c.standalone {
        return None;
    }
    let t = s.standalone.record(&c.id).ok()?.config.stop_timeout?;
    (t >= 0).then(|| Duration::from_secs(t as u64))
}

/// `POST /containers/{id}/stop`.
async fn stop(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    // Negative: wait as long as it takes, without a kill.
    let grace = lifecycle::stop_timeout(&q)?;
    let c = find(&s, &id).await?;
    let signal = stop_signal(&s, &c, &q).await?;
    let grace = match grace {
        Some(g) => g,
        None => Some(standalone_stop_timeout(&s, &c).unwrap_or(Duration::from_secs(10))),
    };
    let stopped = if c.standalone {
        s.standalone.stop(&c, signal, grace).await
    } else {
        s.runtime.container_stop(&c, signal, grace).await
    };
    stopped.map_err(|e| {
        // (A container that is not running is a body-less 304.)
        let api = ApiError::from(e);
        ApiError::new(
            api.status,
            format!("cannot stop container: {id}: {}", api.message),
        )
    })?;
    Ok(no_content())
}

/// `POST /containers/{id}/kill`.
async fn kill(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let wrap = |e: ApiError| {
        ApiError::new(
            e.status,
            format!("cannot kill container: {id}: {}", e.message),
        )
    };
    let signal = match q.get("signal").filter(|v| !v.is_empty()) {
        Some(sig) => runtime::view::parse_signal(sig).map_err(|e| wrap(e.into()))?,
        None => 9,
    };
    let c = find(&s, &id).await.map_err(wrap)?;
    let killed = if c.standalone {
        s.standalone.kill(&c, signal).await
    } else {
        s.runtime.container_kill(&c, signal).await
    };
    killed.map_err(|e| wrap(e.into()))?;
    Ok(no_content())
}

/// `DELETE /containers/{id}`.
async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let env = node_env(&s);
    let c = find(&s, &id).await?;
    let (force, volumes) = (query_bool(&q, "force"), query_bool(&q, "v"));
    if c.standalone {
        s.standalone.remove(&c, &id, force, volumes).await?;
    } else {
        s.runtime
            .container_remove(&env, &c, &id, force, volumes)
            .await?;
    }
    Ok(no_content())
}

/// `POST /containers/{id}/wait`: the headers go out at once, the body
/// (`{"StatusCode": N}`) when the condition holds.
async fn wait(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let raw = q.get("condition").map_or("", String::as_str);
    let condition = WaitCondition::parse(raw)
        .ok_or_else(|| ApiError::bad_request(format!("invalid condition: \"{raw}\"")))?;
    let c = find(&s, &id).await?;
    let env = node_env(&s);
    let rt = s.runtime.clone();
    let standalone = s.standalone.clone();
    let body = futures::stream::once(async move {
        let waited = if c.standalone {
            standalone.wait(&c, condition).await
        } else {
            rt.container_wait(&env, &c, condition).await
        };
        let json = match waited {
            Ok(code) => serde_json::json!({ "StatusCode": code }),
            Err(e) => {
                serde_json::json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } })
            }
        };
        Ok::<_, std::convert::Infallible>(format!("{json}\n"))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
