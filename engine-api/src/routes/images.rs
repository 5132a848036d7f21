//! `/images/*` on containerd: `docker pull`, `docker load`,
//! `docker image ls`, `docker image inspect` and `docker image rm`; and
//! `POST /auth` (`docker login`), which checks credentials with the same
//! registry client pulls use.
//!
//! Handlers decode, call `runtime`, and encode dockerd's JSON shapes. While
//! containerd is unreachable every route answers 500 with the reason.

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query as QueryExtract;
use axum::extract::RawQuery;
use axum::extract::State;
use axum::http::header;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Json;
use axum::Router;
use runtime::images::ImageInfo;
use runtime::images::PullEvent;
use runtime::images::RegistryAuth;
use runtime::images::RemoveItem;
use serde_json::json;
use serde_json::Value;

use crate::body::query_bool;
use crate::body::Query;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::routes::image_archive;
use crate::AppState;

/// The image routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/auth", post(login))
        .route(
            "/images/{*name}",
            get(get_sub).post(post_sub).delete(remove),
        )
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

/// `POST /images/create?fromImage=NAME&tag=TAG`: `docker pull`. Answers
/// dockerd's JSON progress stream once the manifest is found; failing
/// before that, a plain error with dockerd's status; failing after, an
/// `errorDetail` message in the stream (the status is already sent).
async fn create(
    State(st): State<AppState>,
    QueryExtract(q): QueryExtract<Query>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if q.contains_key("fromSrc") {
        return image_archive::import(&st, raw.as_deref(), body).await;
    }
    let from = q.get("fromImage").map(String::as_str).unwrap_or("");
    if from.is_empty() {
        return Err(ApiError::bad_request("image name is required"));
    }
    let reference = pull_reference(from, q.get("tag").map(String::as_str).unwrap_or(""));
    let auth = registry_auth(&headers);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let rt = st.runtime.clone();
    let pull = tokio::spawn(async move {
        rt.image_pull(&reference, auth.as_ref(), Some(tx))
            .await
            .map(|_| ())
    });
    // The sender goes away when the pull ends: no event at all means it
    // failed (or finished) before the first message.
    let Some(first) = rx.recv().await else {
        return match pull.await {
            Ok(Ok(())) => Ok(json_stream(Body::empty())),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            )),
        };
    };
    let lines = futures::stream::unfold(
        (Some(first), rx, Some(pull)),
        |(first, mut rx, pull)| async move {
            if let Some(ev) = first {
                return Some((event_line(&ev), (None, rx, pull)));
            }
            if let Some(ev) = rx.recv().await {
                return Some((event_line(&ev), (None, rx, pull)));
            }
            let message = match pull?.await {
                Ok(Ok(())) => return None,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            Some((error_line(&message), (None, rx, None)))
        },
    );
    let body = Body::from_stream(futures::StreamExt::map(lines, Ok::<_, std::io::Error>));
    Ok(json_stream(body))
}

fn json_stream(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The reference a pull names: `fromImage` (a trailing `:` dropped, as
/// `pull -a` sends it) with `tag` added, which may also be a digest.
fn pull_reference(from: &str, tag: &str) -> String {
    let from = from.strip_suffix(':').unwrap_or(from);
    if tag.is_empty() {
        from.to_string()
    } else if tag.starts_with("sha256:") {
        let name = from.split('@').next().unwrap_or(from);
        format!("{name}@{tag}")
    } else {
        format!("{from}:{tag}")
    }
}

/// The `X-Registry-Auth` header, decoded; anything unusable means
/// anonymous, as in dockerd.
fn registry_auth(headers: &HeaderMap) -> Option<RegistryAuth> {
    headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .and_then(RegistryAuth::from_header)
}

/// One message of dockerd's JSON stream, keys in dockerd's order.
fn event_line(e: &PullEvent) -> Bytes {
    let q = go_json_string;
    let line = match e {
        PullEvent::Message { id: Some(id), text } => {
            format!("{{\"status\":{},\"id\":{}}}", q(text), q(id))
        }
        PullEvent::Message { id: None, text } => format!("{{\"status\":{}}}", q(text)),
        PullEvent::Layer { id, action } => format!(
            "{{\"status\":{},\"progressDetail\":{{}},\"id\":{}}}",
            q(action),
            q(id)
        ),
        PullEvent::Download { id, current, total } => format!(
            "{{\"status\":\"Downloading\",\"progressDetail\":{{\"current\":{current},\"total\":{total}}},\"progress\":{},\"id\":{}}}",
            q(&progress_bar(*current, *total)),
            q(id)
        ),
    };
    Bytes::from(line + "\r\n")
}

/// A JSON string as Go's encoder writes it: `<`, `>` and `&` escaped (the
/// progress bar's `>` shows as `\u003e` in dockerd's streams).
pub(crate) fn go_json_string(s: &str) -> String {
    Value::from(s)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// An error in the middle of a stream, as dockerd writes it.
fn error_line(message: &str) -> Bytes {
    let m = go_json_string(message);
    Bytes::from(format!(
        "{{\"errorDetail\":{{\"message\":{m}}},\"error\":{m}}}\r\n"
    ))
}

/// dockerd's progress text: `[=====>     ]  1.05MB/2.1MB` (50 columns of
/// bar, as rendered for a 200-column terminal).
fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    if current > total {
        return format!("{bar}{:>8}", human_size(current));
    }
    format!("{bar}{:>8}/{}", human_size(current), human_size(total))
}

/// Go's `units.HumanSize`: decimal units, four significant digits.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = n as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    let digits = if size >= 1.0 {
        size.log10().floor() as usize
    } else {
        0
    };
    let text = format!("{:.*}", 3usize.saturating_sub(digits), size);
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{}", UNITS[i])
}

/// `POST /auth`: `docker login`. Checks the credentials against the
/// registry and answers dockerd's `{"Status":"Login Succeeded"}`.
async fn login(body: Bytes) -> ApiResult<Json<Value>> {
    let auth = RegistryAuth::from_json(&body).map_err(runtime::Error::from)?;
    let token = runtime::images::registry_login(&auth).await?;
    let mut out = json!({ "Status": "Login Succeeded" });
    if let Some(t) = token {
        out["IdentityToken"] = json!(t);
    }
    Ok(Json(out))
}

/// `GET /images/json`.
async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let images = st.runtime.image_list().await?;
    Ok(Json(images.iter().map(summary).collect()))
}

/// `GET /images/{name}/json|history|get`: the name may hold slashes, so
/// the last segment picks the call.
async fn get_sub(State(st): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    if let Some(name) = path.strip_suffix("/json") {
        let (info, _) = st.runtime.image_find(name).await?;
        return Ok(Json(inspect_json(&info)).into_response());
    }
    if let Some(name) = path.strip_suffix("/history") {
        let rows = st.runtime.image_history(name).await?;
        return Ok(Json(rows.iter().map(history_json).collect::<Vec<_>>()).into_response());
    }
    if let Some(name) = path.strip_suffix("/get") {
        return image_archive::save(&st, &[name.to_string()]).await;
    }
    Err(ApiError::not_found("page not found"))
}

/// `GET /images/get?names=...`: `docker save` of several images.
async fn save_many(State(st): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let names = image_archive::query_all(raw.as_deref(), "names")?;
    image_archive::save(&st, &names).await
}

/// `POST /images/{name}/tag?repo=&tag=`: answers 201 with no body.
async fn post_sub(
    State(st): State<AppState>,
    Path(path): Path<String>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Response> {
    let Some(name) = path.strip_suffix("/tag") else {
        return Err(ApiError::not_found("page not found"));
    };
    let repo = q.get("repo").map(String::as_str).unwrap_or("");
    let tag = q.get("tag").map(String::as_str).unwrap_or("");
    st.runtime.image_tag(name, repo, tag).await?;
    Ok(StatusCode::CREATED.into_response())
}

fn history_json(h: &runtime::images::HistoryItem) -> Value {
    json!({
        "Comment": h.comment,
        "Created": h.created,
        "CreatedBy": h.created_by,
        "Id": h.id,
        "Size": h.size,
        "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
    })
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
    Ok(Json(items.iter().map(remove_item).collect()))
}

/// `POST /images/prune`: unused images (only dangling ones unless the
/// `dangling=false` filter is given), with `until`, `label`, `label!`.
async fn prune(
    State(st): State<AppState>,
    QueryExtract(q): QueryExtract<Query>,
) -> ApiResult<Json<Value>> {
    let f = crate::filters::Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["dangling", "label", "label!", "until"])?;
    let dangling_only = crate::routes::volumes::bool_filter(&f, "dangling")?.unwrap_or(true);
    let until = crate::until::from_filters(&f, time::OffsetDateTime::now_utc())?;
    let env = crate::routes::containers::node_env(&st);
    let report = st
        .runtime
        .image_prune(&env, dangling_only, |i| {
            let labels: Option<std::collections::HashMap<String, String>> = i
                .config
                .pointer("/config/Labels")
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            let old_enough = until.is_none_or(|u| created_unix(i) < u.unix_timestamp());
            old_enough && f.prune_labels(labels.as_ref())
        })
        .await?;
    let items: Vec<Value> = report.items.iter().map(remove_item).collect();
    let items = if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    };
    Ok(Json(
        json!({ "ImagesDeleted": items, "SpaceReclaimed": report.reclaimed }),
    ))
}

fn remove_item(i: &RemoveItem) -> Value {
    match i {
        RemoveItem::Untagged(n) => json!({ "Untagged": n }),
        RemoveItem::Deleted(id) => json!({ "Deleted": id }),
    }
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

/// One image as `GET /images/json` lists it.
pub(crate) fn summary(info: &ImageInfo) -> Value {
    let labels = info
        .config
        .pointer("/config/Labels")
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    // A dangling image shows dockerd's placeholders.
    let tags = info.repo_tags();
    let (tags, digests) = if tags.is_empty() && runtime::usage::is_dangling(info) {
        (json!(["<none>:<none>"]), json!(["<none>@<none>"]))
    } else {
        (json!(tags), json!([]))
    };
    json!({
        "Id": info.id,
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": digests,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(2_155_000), "2.155MB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(32_700), "32.7kB");
    }

    #[test]
    fn bars() {
        let b = progress_bar(1_000_000, 2_000_000);
        assert_eq!(
            b,
            format!("[{}>{}]      1MB/2MB", "=".repeat(25), " ".repeat(25))
        );
    }

    #[test]
    fn lines_in_dockerd_order() {
        let l = event_line(&PullEvent::Layer {
            id: "abc".into(),
            action: "Pull complete",
        });
        assert_eq!(
            &l[..],
            b"{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"abc\"}\r\n"
        );
        let l = event_line(&PullEvent::Message {
            id: Some("latest".into()),
            text: "Pulling from a/b".into(),
        });
        assert_eq!(
            &l[..],
            b"{\"status\":\"Pulling from a/b\",\"id\":\"latest\"}\r\n"
        );
        assert_eq!(
            &error_line("x \"y\"")[..],
            b"{\"errorDetail\":{\"message\":\"x \\\"y\\\"\"},\"error\":\"x \\\"y\\\"\"}\r\n"
        );
    }

    #[test]
    fn go_escapes() {
        assert_eq!(go_json_string("[=>] a&b"), "\"[=\\u003e] a\\u0026b\"");
    }

    #[test]
    fn references() {
        assert_eq!(pull_reference("busybox", "latest"), "busybox:latest");
        assert_eq!(pull_reference("busybox:", ""), "busybox");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(pull_reference("h:5000/a", &d), format!("h:5000/a@{d}"));
    }
}
