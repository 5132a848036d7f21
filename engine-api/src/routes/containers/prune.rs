//! `POST /containers/prune`: every container that is not running, with
//! the `until`, `label` and `label!` filters. A swarm task's stopped
//! container goes too; the task stays in the service's history.

use axum::extract::Query;
use axum::extract::State;
use axum::Json;
use serde_json::json;
use serde_json::Value;

use super::node_env;
use crate::error::ApiResult;
use crate::filters::Filters;
use crate::AppState;

/// The handler.
pub async fn prune(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Value>> {
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["label", "label!", "until"])?;
    let until = crate::until::from_filters(&f, time::OffsetDateTime::now_utc())?;
    let select = |c: &runtime::view::ContainerInfo| {
        let old_enough = match (until, c.created) {
            (Some(u), Some(t)) => t < u,
            _ => true,
        };
        old_enough && f.prune_labels(Some(&c.labels))
    };
    // Standalone containers go through their own removal, which gives
    // back their network addresses.
    let (mut deleted, mut reclaimed) = s
        .runtime
        .container_prune(&node_env(&s), |c| !c.standalone && select(c))
        .await?;
    for c in s.runtime.container_infos(&node_env(&s)).await? {
        if !c.standalone || c.state.status.is_running() || !select(&c) {
            continue;
        }
        let size = s.runtime.container_size_rw(&c.id).await;
        match s.standalone.remove(&c, &c.id, false, false).await {
            Ok(()) => {
                reclaimed += size.max(0) as u64;
                deleted.push(c.id);
            }
            Err(e) => tracing::warn!(container = %c.id, error = %e, "pruning a container"),
        }
    }
    // Go writes an empty list as null.
    let deleted = if deleted.is_empty() {
        Value::Null
    } else {
        json!(deleted)
    };
    Ok(Json(
        json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}
