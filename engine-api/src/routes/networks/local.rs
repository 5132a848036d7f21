//! The node-local side of `/networks`: networks made with the bridge
//! driver (`runtime::networks`), shown, created, removed, pruned, and
//! standalone containers connected to them.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Json;
use runtime::networks::Network as LocalNetwork;
use serde_json::json;
use serde_json::Value;
use swarm::controlapi::network;
use swarm::model::api;

use super::AttachmentBody;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::filters::Filters;
use crate::AppState;

/// dockerd's view of a local network (its `Containers` filled by
/// inspect).
pub fn view(n: &LocalNetwork) -> Value {
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": runtime::networks::BRIDGE_DRIVER,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": n.ipam.driver.clone().unwrap_or_else(|| "default".into()),
            "Options": n.ipam.options,
            "Config": n.ipam.config.clone().unwrap_or_default(),
        },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": n.options,
        "Labels": n.labels,
    })
}

/// `POST /networks/create` of a local network, or dockerd's refusal of a
/// driver this node has no networks of.
pub async fn create(s: &AppState, req: &api::NetworkCreateRequest) -> ApiResult<Response> {
    let driver = req.driver.as_deref().unwrap_or("");
    match driver {
        "" | runtime::networks::BRIDGE_DRIVER => {}
        "host" | "null" => {
            return Err(runtime::networks::Error::SingleInstance(driver.into()).into())
        }
        "macvlan" | "ipvlan" => {
            return Err(runtime::networks::Error::Unsupported(format!(
                "the {driver} driver is not supported by this daemon"
            ))
            .into())
        }
        other => return Err(runtime::networks::Error::NoSuchDriver(other.into()).into()),
    }
    // The swarm's names are taken too, as dockerd finds them by name.
    if let Ok(m) = s.node.manager() {
        if network::list(m.store())
            .iter()
            .any(|n| n.api.name.as_deref() == Some(req.name.as_str()))
        {
            return Err(runtime::networks::Error::NameTaken(req.name.clone()).into());
        }
    }
    let n = s.standalone.create_network(req).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": n.id, "Warning": ""})),
    )
        .into_response())
}

/// `POST /networks/prune`'s local part: the local networks `f` picks
/// that no container is attached to, removed; their names.
pub async fn prune(
    s: &AppState,
    f: &Filters,
    until: Option<time::OffsetDateTime>,
) -> ApiResult<Vec<String>> {
    let mut gone = Vec::new();
    for n in s.standalone.networks().list() {
        if !super::pruned(f, until, Some(&n.created), Some(&n.labels)) {
            continue;
        }
        match s.standalone.remove_network(&n).await {
            Ok(()) => gone.push(n.name.clone()),
            Err(runtime::networks::Error::ActiveEndpoints { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(gone)
}

/// `docker network connect/disconnect` of a standalone container: local
/// networks only; dockerd's refusals for `host` and `none`.
pub async fn change_attachment(
    s: &AppState,
    net: &Value,
    c: &runtime::view::ContainerInfo,
    req: &AttachmentBody,
    connect: bool,
) -> ApiResult<Response> {
    let name = net["Name"].as_str().unwrap_or("");
    let id = net["Id"].as_str().unwrap_or("");
    match name {
        "host" => {
            return Err(ApiError::bad_request(
                "container cannot be disconnected from host network or connected to host network",
            ))
        }
        "none" if connect => {
            return Err(ApiError::bad_request(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode",
            ))
        }
        _ => {}
    }
    let Some(local) = s.standalone.networks().get_exact(id) else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "connecting standalone container {} to network {name} or disconnecting it is not supported by this daemon: only networks created with the bridge driver are",
                c.name
            ),
        ));
    };
    if connect {
        let ep = req.endpoint_config.clone().unwrap_or_default();
        s.standalone.connect(c, &local, ep).await?;
    } else {
        s.standalone.disconnect(c, &local).await?;
    }
    Ok(StatusCode::OK.into_response())
}
