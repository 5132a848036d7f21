//! `/volumes` on this node's local volumes: `docker volume ls`, `create`,
//! `inspect`, `rm` and `prune`.
//!
//! The volumes are `runtime::volumes`; whether one is in use comes from the
//! containers that mount it. Filters follow dockerd's volume service:
//! `dangling`, `name`, `driver` and `label` for lists; `label`, `label!`
//! and `all` for prune, where from API 1.42 only anonymous volumes go
//! unless `all=true`.

use std::collections::BTreeMap;
use std::collections::HashMap;

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Extension;
use axum::Json;
use axum::Router;
use runtime::volumes::NewVolume;
use runtime::volumes::Volume;
use runtime::volumes::VolumeStore;
use runtime::volumes::LOCAL_DRIVER;
use serde::Deserialize;
use serde_json::json;
use serde_json::Value;

use super::containers::node_env;
use crate::body::query_bool;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::filters::loose_match;
use crate::filters::Filters;
use crate::server::version::ApiVersion;
use crate::AppState;

const LIST_FILTERS: &[&str] = &["dangling", "name", "driver", "label"];
const PRUNE_FILTERS: &[&str] = &["label", "label!", "all"];

/// The volume routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

fn store(s: &AppState) -> VolumeStore {
    VolumeStore::new(&node_env(s).volumes_root).with_events(s.runtime.events().clone())
}

/// A volume as dockerd's API shows it.
pub fn render(v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created_at_text(),
        "Driver": LOCAL_DRIVER,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint.display().to_string(),
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    })
}

/// Filters parsed and checked against `allowed`.
fn parse_filters(q: &crate::body::Query, allowed: &[&str]) -> ApiResult<Filters> {
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(allowed)?;
    Ok(f)
}

/// A boolean filter value as dockerd's `GetBoolOrDefault` reads it.
pub(crate) fn bool_filter(f: &Filters, key: &str) -> ApiResult<Option<bool>> {
    let values: Vec<&String> = f.get(key).collect();
    let invalid = || {
        let joined: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
        ApiError::bad_request(format!("Invalid filter '{key}=[{}]'", joined.join(" ")))
    };
    match values.as_slice() {
        [] => Ok(None),
        [v] if v.eq_ignore_ascii_case("true") || v.as_str() == "1" => Ok(Some(true)),
        [v] if v.eq_ignore_ascii_case("false") || v.as_str() == "0" => Ok(Some(false)),
        _ => Err(invalid()),
    }
}

/// Whether `v` passes the list filters; `used` says whether a container
/// mounts it.
fn listed(f: &Filters, dangling: Option<bool>, v: &Volume, used: bool) -> bool {
    (!f.contains("name") || f.get("name").any(|p| loose_match(p, &v.name)))
        && f.exact("driver", LOCAL_DRIVER)
        && f.labels("label", v.labels.as_ref())
        && dangling.is_none_or(|d| d != used)
}

/// `GET /volumes`.
async fn list(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Value>> {
    let f = parse_filters(&q, LIST_FILTERS)?;
    let dangling = bool_filter(&f, "dangling")?;
    let all = store(&s).list()?;
    let refs = match dangling {
        Some(_) => s.runtime.volume_refs(&node_env(&s)).await?,
        None => BTreeMap::new(),
    };
    let shown: Vec<Value> = all
        .iter()
        .filter(|v| listed(&f, dangling, v, refs.contains_key(&v.name)))
        .map(render)
        .collect();
    Ok(Json(json!({ "Volumes": shown, "Warnings": null })))
}

/// The body of `POST /volumes/create`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<HashMap<String, String>>,
    labels: Option<HashMap<String, String>>,
}

/// `POST /volumes/create`: 201 with the volume (the existing one when
/// the name is taken).
async fn create(
    State(s): State<AppState>,
    JsonBody(b): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let v = store(&s).create(&NewVolume {
        name: b.name.filter(|n| !n.is_empty()),
        driver: b.driver.unwrap_or_default(),
        labels: b.labels,
        options: b.driver_opts,
    })?;
    Ok((StatusCode::CREATED, Json(render(&v))).into_response())
}

/// `GET /volumes/{name}`.
async fn inspect(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(render(&store(&s).get(&name)?)))
}

/// `DELETE /volumes/{name}`: refused while a container mounts it.
async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<StatusCode> {
    s.runtime
        .volume_remove(&node_env(&s), &name, query_bool(&q, "force"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: removes the unused volumes the filters select.
async fn prune(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Value>> {
    let f = parse_filters(&q, PRUNE_FILTERS)?;
    if f.get("all").count() > 1 {
        let all: Vec<&str> = f.get("all").map(String::as_str).collect();
        return Err(ApiError::bad_request(format!(
            "invalid filter 'all=[{}]': only one value is expected",
            all.join(" ")
        )));
    }
    let all = match f.get("all").next() {
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid filter 'all': strconv.ParseBool: parsing \"{v}\": invalid syntax"
            ))
        })?,
        // Before 1.42 prune took every unused volume.
        None => !version.at_least(42),
    };
    let (deleted, reclaimed) = s
        .runtime
        .volume_prune(&node_env(&s), |v| {
            (all || v.is_anonymous()) && f.prune_labels(v.labels.as_ref())
        })
        .await?;
    Ok(Json(
        json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn vol(name: &str, labels: Option<&[(&str, &str)]>) -> Volume {
        Volume {
            name: name.into(),
            mountpoint: PathBuf::from(format!("/v/{name}/_data")),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            labels: labels.map(|l| {
                l.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            options: None,
        }
    }

    fn filters(raw: &str) -> Filters {
        Filters::parse(Some(raw)).unwrap()
    }

    #[test]
    fn list_filters_select_like_dockerd() {
        let stack = vol("app_db", Some(&[("com.docker.stack.namespace", "app")]));
        let plain = vol("cache", None);
        let f = filters(r#"{"label":{"com.docker.stack.namespace=app":true}}"#);
        assert!(listed(&f, None, &stack, false));
        assert!(!listed(&f, None, &plain, false));
        let f = filters(r#"{"name":{"^app":true}}"#);
        assert!(listed(&f, None, &stack, true));
        assert!(!listed(&f, None, &plain, true));
        let f = filters(r#"{"driver":{"local":true}}"#);
        assert!(listed(&f, None, &plain, true));
        let f = filters(r#"{"driver":{"nfs":true}}"#);
        assert!(!listed(&f, None, &plain, true));
        assert!(listed(&Filters::default(), Some(true), &plain, false));
        assert!(!listed(&Filters::default(), Some(true), &plain, true));
        assert!(listed(&Filters::default(), Some(false), &plain, true));
    }

    #[test]
    fn bad_filters_get_dockerds_words() {
        let mut q = crate::body::Query::new();
        q.insert("filters".into(), r#"{"bogus":{"x":true}}"#.into());
        assert_eq!(
            parse_filters(&q, LIST_FILTERS).unwrap_err().message,
            "Invalid filter 'bogus'"
        );
        let f = filters(r#"{"dangling":{"maybe":true}}"#);
        assert_eq!(
            bool_filter(&f, "dangling").unwrap_err().message,
            "Invalid filter 'dangling=[maybe]'"
        );
        assert_eq!(
            bool_filter(&filters(r#"{"dangling":["1"]}"#), "dangling").unwrap(),
            Some(true)
        );
    }

    #[test]
    fn label_not_excludes_only_when_all_match() {
        let v = vol("x", Some(&[("a", "1"), ("b", "2")]));
        let f = filters(r#"{"label!":{"a=1":true}}"#);
        assert!(!f.prune_labels(v.labels.as_ref()));
        let f = filters(r#"{"label!":{"a=2":true}}"#);
        assert!(f.prune_labels(v.labels.as_ref()));
        assert!(Filters::default().prune_labels(v.labels.as_ref()));
    }

    #[test]
    fn rendered_like_dockerd() {
        let v = vol("app_db", Some(&[("k", "v")]));
        let j = render(&v);
        assert_eq!(j["Driver"], "local");
        assert_eq!(j["Scope"], "local");
        assert_eq!(j["Mountpoint"], "/v/app_db/_data");
        assert_eq!(j["CreatedAt"], "1970-01-01T00:00:00Z");
        assert_eq!(j["Labels"]["k"], "v");
        assert!(j["Options"].is_null());
    }
}
