//! `/networks` routes: swarm-scoped overlay networks from the store, plus
//! the node-local networks: those dockerd always lists (`bridge`, `host`,
//! `none`, and `docker_gwbridge` while in a swarm) and those made with the
//! bridge driver (see [`local`]).

mod local;

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Json;
use axum::Router;
use serde_json::json;
use serde_json::Value;
use swarm::controlapi::network;
use swarm::model::api;
use swarm::model::Network;
use swarm::model::StoreObject;

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::filters::Filters;
use crate::AppState;

/// The `/networks` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

/// The names of dockerd's predefined networks.
const PREDEFINED: &[&str] = runtime::networks::PREDEFINED;

/// The node-local networks this daemon shows.
fn local_networks(s: &AppState) -> Vec<Value> {
    let started = time::OffsetDateTime::now_utc()
        - time::Duration::seconds_f64(s.engine.started.elapsed().as_secs_f64());
    let created = swarm::model::format_time(started);
    let mut out = Vec::new();
    let mut add = |name: &str, driver: &str, config: Value, options: Value| {
        out.push(json!({
            "Name": name,
            "Id": network::local_id(&s.engine.id, name),
            "Created": created,
            "Scope": "local",
            "Driver": driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": config},
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": {},
            "Options": options,
            "Labels": {},
        }));
    };
    // Standalone containers' default network: they get their address on
    // the node's gateway bridge (see `runtime::standalone`).
    add(
        "bridge",
        "bridge",
        json!([{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]),
        json!({
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "false",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.name": "shoal_gwbridge",
            "com.docker.network.driver.mtu": "1500",
        }),
    );
    add("host", "host", json!([]), json!({}));
    add("none", "null", json!([]), json!({}));
    if s.node.manager().is_ok() {
        add(
            "docker_gwbridge",
            "bridge",
            json!([{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]),
            json!({
                "com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.name": "docker_gwbridge",
            }),
        );
    }
    out.extend(s.standalone.networks().list().iter().map(local::view));
    out
}

/// dockerd's view of a swarm network (the cluster's copy).
fn swarm_view(n: &Network) -> Value {
    let a = &n.api;
    let ipam = a.ipam.clone().unwrap_or_default();
    json!({
        "Name": a.name,
        "Id": a.id,
        "Created": a.created,
        "Scope": "swarm",
        "Driver": a.driver,
        "EnableIPv6": a.enable_ipv6.unwrap_or(false),
        "IPAM": {
            "Driver": ipam.driver.unwrap_or_else(|| "default".into()),
            "Options": ipam.options,
            "Config": ipam.config.unwrap_or_default(),
        },
        "Internal": a.internal.unwrap_or(false),
        "Attachable": a.attachable.unwrap_or(false),
        "Ingress": a.ingress.unwrap_or(false),
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": null,
        "Options": a.options,
        "Labels": a.labels,
    })
}

/// The cluster object of a network (swarmkit's `Network`), as task
/// attachments show it.
pub fn cluster_view(n: &Network) -> Value {
    let a = &n.api;
    let sp = &n.spec;
    let mut spec = json!({
        "Name": a.name,
        "Labels": a.labels.clone().unwrap_or_default(),
        "DriverConfiguration": {},
        "Scope": "swarm",
    });
    // The spec as the client gave it (Go's `omitempty`): swarmkit's default
    // ingress names no driver and an empty IPAM driver.
    if let Some(d) = sp.driver.as_ref().filter(|d| !d.is_empty()) {
        spec["DriverConfiguration"]["Name"] = json!(d);
    }
    if let Some(o) = sp.options.clone().filter(|o| !o.is_empty()) {
        spec["DriverConfiguration"]["Options"] = json!(o);
    }
    let ipam = a.ipam.clone().unwrap_or_default();
    let allocated = ipam.config.clone().unwrap_or_default();
    if let Some(asked) = &sp.ipam {
        spec["IPAMOptions"] = spec_ipam(asked, &allocated);
    }
    for (key, on) in [
        ("Attachable", a.attachable),
        ("Ingress", a.ingress),
        ("Internal", a.internal),
    ] {
        if on.unwrap_or(false) {
            spec[key] = json!(true);
        }
    }
    let configs: Vec<Value> = allocated
        .iter()
        .map(|c| json!({"Subnet": c.subnet, "Gateway": c.gateway}))
        .collect();
    let vxlan = a
        .options
        .as_ref()
        .and_then(|o| o.get(swarm::allocator::network::VXLAN_KEY).cloned());
    json!({
        "ID": a.id,
        "Version": {"Index": n.version},
        "CreatedAt": a.created,
        "UpdatedAt": n.updated_at,
        "Spec": spec,
        "DriverState": {
            "Name": a.driver,
            "Options": vxlan.map(|v| json!({swarm::allocator::network::VXLAN_KEY: v})),
        },
        "IPAMOptions": {
            "Driver": {"Name": ipam.driver.unwrap_or_else(|| "default".into())},
            "Configs": configs,
        },
    })
}

/// A spec's `IPAMOptions` as swarmkit keeps them: what the client asked
/// for, each subnet with the gateway the allocator gave it.
fn spec_ipam(asked: &api::Ipam, allocated: &[api::IpamConfig]) -> Value {
    let mut driver = json!({});
    if let Some(d) = asked.driver.as_ref().filter(|d| !d.is_empty()) {
        driver["Name"] = json!(d);
    }
    if let Some(o) = asked.options.as_ref().filter(|o| !o.is_empty()) {
        driver["Options"] = json!(o);
    }
    let mut out = json!({"Driver": driver});
    let configs: Vec<Value> = asked
        .config
        .iter()
        .flatten()
        .map(|c| {
            let gateway = c.gateway.clone().or_else(|| {
                allocated
                    .iter()
                    .find(|g| g.subnet == c.subnet)
                    .and_then(|g| g.gateway.clone())
            });
            let mut v = json!({});
            for (key, val) in [
                ("Subnet", &c.subnet),
                ("Range", &c.ip_range),
                ("Gateway", &gateway),
            ] {
                if let Some(x) = val.as_ref().filter(|x| !x.is_empty()) {
                    v[key] = json!(x);
                }
            }
            v
        })
        .collect();
    if !configs.is_empty() {
        out["Configs"] = json!(configs);
    }
    out
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// dockerd's network filters: `name`/`id` match substrings, the rest exactly.
fn matches(f: &Filters, v: &Value) -> ApiResult<bool> {
    let contains = |key: &str, val: &str| {
        !f.contains(key) || f.get(key).any(|want| val.contains(want.as_str()))
    };
    let labels: Option<std::collections::HashMap<String, String>> = v
        .get("Labels")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok());
    let name = text(v, "Name");
    let builtin = PREDEFINED.contains(&name);
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "Invalid filter: 'type'='{t}'"
            )));
        }
    }
    let kind = if builtin { "builtin" } else { "custom" };
    Ok(contains("name", name)
        && contains("id", text(v, "Id"))
        && f.exact("driver", text(v, "Driver"))
        && f.exact("scope", text(v, "Scope"))
        && f.exact("type", kind)
        && f.labels("label", labels.as_ref()))
}

async fn list(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Vec<Value>>> {
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
    let mut all = local_networks(&s);
    if let Ok(m) = s.node.manager() {
        let mut nets = network::list(m.store());
        nets.sort_by(|a, b| a.api.created.cmp(&b.api.created));
        all.extend(nets.iter().map(swarm_view));
    } else if let Some(nets) = worker_networks(&s).await {
        all.extend(nets.iter().map(worker_view));
    }
    let mut out = Vec::new();
    for v in all {
        if matches(&f, &v)? {
            out.push(v);
        }
    }
    Ok(Json(out))
}

/// `POST /networks/prune`: removes the unused local networks, then the
/// unused swarm networks, picked by the `label`, `label!` and `until`
/// filters, as dockerd does, and names them. A built-in network is never
/// pruned.
async fn prune(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Value>> {
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["label", "label!", "until"])?;
    let until = crate::until::from_filters(&f, time::OffsetDateTime::now_utc())?;
    let mut gone = local::prune(&s, &f, until).await?;
    // A node that is not a manager has no swarm networks to prune.
    let Ok(m) = s.node.manager() else {
        return Ok(Json(json!({ "NetworksDeleted": go_list(gone) })));
    };
    let picked: Vec<String> = network::list(m.store())
        .iter()
        .filter(|n| pruned(&f, until, n.api.created.as_deref(), n.api.labels.as_ref()))
        .map(|n| n.id().to_string())
        .collect();
    gone.extend(network::prune(m.store(), &picked).await?);
    Ok(Json(json!({ "NetworksDeleted": go_list(gone) })))
}

/// Whether network prune's filters pick a network created at `created`
/// (RFC 3339) with `labels`: not after `until`, and its labels pass.
fn pruned(
    f: &Filters,
    until: Option<time::OffsetDateTime>,
    created: Option<&str>,
    labels: Option<&std::collections::HashMap<String, String>>,
) -> bool {
    let created = created.and_then(|c| {
        time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
    });
    let old_enough = match (until, created) {
        (Some(u), Some(c)) => c <= u,
        _ => true,
    };
    old_enough && f.prune_labels(labels)
}

/// On a worker, the swarm networks it is on, as the leader knows them
/// (none while it has no session: dockerd's worker, too, shows only what
/// it has joined).
async fn worker_networks(s: &AppState) -> Option<Vec<network::NodeNetwork>> {
    match s.node.worker_networks().await? {
        Ok(nets) => Some(nets),
        Err(e) => {
            tracing::debug!(error = %e, "asking the leader for this worker's networks");
            None
        }
    }
}

/// dockerd's worker's view of a swarm network it is on: the cluster's
/// object with its labels as a map (`{}` where a manager shows null).
fn worker_view(n: &network::NodeNetwork) -> Value {
    let mut v = swarm_view(&n.network);
    if v["Labels"].is_null() {
        v["Labels"] = json!({});
    }
    v
}

/// The network of `nets` that `input` names: full ID, name, then a unique
/// ID prefix, as dockerd resolves names.
fn pick<'a>(nets: &'a [network::NodeNetwork], input: &str) -> Option<&'a network::NodeNetwork> {
    let exact = nets.iter().find(|n| n.network.id() == input).or_else(|| {
        nets.iter()
            .find(|n| n.network.api.name.as_deref() == Some(input))
    });
    exact.or_else(|| {
        let mut by_prefix = nets.iter().filter(|n| n.network.id().starts_with(input));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) if !input.is_empty() => Some(n),
            _ => None,
        }
    })
}

/// A list as Go writes it: an empty one as null.
fn go_list(names: Vec<String>) -> Value {
    if names.is_empty() {
        Value::Null
    } else {
        json!(names)
    }
}

fn not_found(input: &str) -> ApiError {
    ApiError::not_found(format!("network {input} not found"))
}

/// Finds a network the way dockerd does: local by exact ID or name, then the
/// cluster's (ID, name, ID prefix), then a local ID prefix.
fn find(s: &AppState, input: &str, scope: &str) -> ApiResult<Value> {
    let locals = local_networks(s);
    let local_exact = locals
        .iter()
        .find(|v| text(v, "Id") == input || text(v, "Name") == input);
    if scope != "swarm" {
        if let Some(v) = local_exact {
            return Ok(v.clone());
        }
    }
    if scope != "local" {
        if let Ok(m) = s.node.manager() {
            match network::get(m.store(), input) {
                Ok(n) => return Ok(swarm_view(&n)),
                Err(e) if e.kind() != swarm::ErrorKind::NotFound => return Err(e.into()),
                Err(_) => {}
            }
        }
    }
    if scope != "swarm" && !input.is_empty() {
        if let Some(v) = locals.iter().find(|v| text(v, "Id").starts_with(input)) {
            return Ok(v.clone());
        }
    }
    Err(not_found(input))
}

async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Value>> {
    // dockerd refuses a `verbose` Go cannot read before it looks.
    crate::body::query_strict_bool(&q, "verbose", crate::body::BadBool::Wrapped)?;
    let scope = q.get("scope").map(String::as_str).unwrap_or("");
    let mut peers: Option<Vec<Value>> = None;
    let mut v = match find(&s, &id, scope) {
        Ok(v) => v,
        // A worker has no copy of the cluster's networks: the leader
        // tells it the ones it is on.
        Err(e) if scope != "local" && s.node.manager().is_err() => {
            let nets = worker_networks(&s).await.unwrap_or_default();
            let n = pick(&nets, &id).ok_or(e)?;
            peers = Some(
                n.peers
                    .iter()
                    .map(|p| json!({"Name": p.name, "IP": p.ip}))
                    .collect(),
            );
            worker_view(n)
        }
        Err(e) => return Err(e),
    };
    if text(&v, "Driver") == "bridge" && text(&v, "Scope") == "local" {
        let id = text(&v, "Id").to_string();
        let on = local_endpoints(&s, &id).await;
        v["Containers"] = if on.is_null() { json!({}) } else { on };
    }
    if text(&v, "Scope") == "swarm" {
        let id = text(&v, "Id").to_string();
        v["Containers"] = local_endpoints(&s, &id).await;
        // Once this node is on the network dockerd answers from its local
        // copy, whose labels are a map even when the spec has none.
        if !v["Containers"].is_null() && v["Labels"].is_null() {
            v["Labels"] = json!({});
        }
        // dockerd lists the nodes an overlay spans once this node is on it.
        if let Some(p) = peers.filter(|p| !p.is_empty()) {
            v["Peers"] = Value::Array(p);
        } else if let (Ok(m), false) = (s.node.manager(), v["Containers"].is_null()) {
            let peers: Vec<Value> = network::peers(m.store(), &id)
                .into_iter()
                .map(|p| json!({"Name": p.name, "IP": p.ip}))
                .collect();
            if !peers.is_empty() {
                v["Peers"] = Value::Array(peers);
            }
        }
    }
    Ok(Json(v))
}

/// dockerd's `Containers` of a swarm network: this node's task containers
/// on it (null when there are none, or when containerd cannot be asked).
async fn local_endpoints(s: &AppState, network_id: &str) -> Value {
    let env = super::containers::node_env(s);
    let all = s.runtime.container_infos(&env).await.unwrap_or_default();
    let mut out = serde_json::Map::new();
    for c in all.iter().filter(|c| c.state.pid > 0) {
        let eps = runtime::exec::endpoints::Endpoints::read(&c.dir);
        for e in eps.into_iter().flat_map(|e| e.endpoints) {
            if e.network_id == network_id {
                out.insert(
                    c.id.clone(),
                    json!({
                        "Name": c.name,
                        "EndpointID": e.id,
                        "MacAddress": e.mac,
                        "IPv4Address": e.address,
                        "IPv6Address": "",
                    }),
                );
            }
        }
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

async fn create(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<api::NetworkCreateRequest>,
) -> ApiResult<Response> {
    if req.name.is_empty() {
        // libnetwork's words; dockerd 20.10 answers them with a 500.
        return Err(ApiError::bad_request("invalid name: "));
    }
    if PREDEFINED.contains(&req.name.as_str()) {
        return Err(runtime::networks::Error::Predefined(req.name.clone()).into());
    }
    let taken_locally = local_networks(&s)
        .iter()
        .any(|v| text(v, "Name") == req.name);
    if taken_locally {
        return Err(runtime::networks::Error::NameTaken(req.name.clone()).into());
    }
    let driver = req.driver.as_deref().unwrap_or("");
    let swarm_scoped = driver == "overlay" || req.scope.as_deref() == Some("swarm");
    if !swarm_scoped {
        return local::create(&s, &req).await;
    }
    let m = s
        .node
        .manager()
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, swarm::error::NOT_MANAGER))?;
    let id = network::create(m.store(), req).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Warning": ""}))).into_response())
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let user = s.standalone.networks().get_exact(&id).or_else(|| {
        find(&s, &id, "local")
            .ok()
            .and_then(|v| s.standalone.networks().get_exact(text(&v, "Id")))
    });
    if let Some(n) = user {
        s.standalone.remove_network(&n).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if let Some(v) = local_networks(&s)
        .iter()
        .find(|v| text(v, "Id") == id || text(v, "Name") == id)
    {
        let name = text(v, "Name");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{name} is a pre-defined network and cannot be removed"),
        ));
    }
    let m = match s.node.manager() {
        Ok(m) => m,
        // A worker refuses a swarm network it shows as dockerd's does;
        // any other is not found.
        Err(e) => {
            let shown = worker_networks(&s)
                .await
                .is_some_and(|nets| pick(&nets, &id).is_some());
            return Err(if shown { e.into() } else { not_found(&id) });
        }
    };
    network::remove(m.store(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of `/networks/{id}/connect` and `/disconnect` (dockerd's
/// `NetworkConnect`/`NetworkDisconnect`; `Force` is not used here).
#[derive(serde::Deserialize)]
pub(super) struct AttachmentBody {
    #[serde(rename = "Container")]
    pub(super) container: String,
    #[serde(rename = "EndpointConfig")]
    pub(super) endpoint_config: Option<api::EndpointSettings>,
}

async fn connect(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AttachmentBody>,
) -> ApiResult<Response> {
    change_attachment(&s, &id, &req, true).await
}

async fn disconnect(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AttachmentBody>,
) -> ApiResult<Response> {
    change_attachment(&s, &id, &req, false).await
}

/// `docker network connect/disconnect` of a task's container (every
/// container here is a swarm task's). A swarm network is added to or taken
/// from the task in the store, the address coming from the allocator (not a
/// node-local IPAM as under dockerd, so no task elsewhere can take it); the
/// node then plumbs the interface into the running task's namespace, and
/// the call returns once the container shows the change.
async fn change_attachment(
    s: &AppState,
    id: &str,
    req: &AttachmentBody,
    connect: bool,
) -> ApiResult<Response> {
    let net = find(s, id, "")?;
    let name = text(&net, "Name").to_string();
    let net_id = text(&net, "Id").to_string();
    let container = req.container.as_str();
    let env = super::containers::node_env(s);
    let c = s.runtime.container_info(&env, container).await?;
    if c.standalone {
        return local::change_attachment(s, &net, &c, req, connect).await;
    }
    if text(&net, "Scope") != "swarm" {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("container {} is a swarm task: only swarm networks can be connected to it or disconnected from it", c.name),
        ));
    }
    let ingress = net["Ingress"].as_bool().unwrap_or(false);
    if connect && (ingress || !net["Attachable"].as_bool().unwrap_or(false)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Could not attach to network {name}: rpc error: code = PermissionDenied desc = network {name} not manually attachable"
            ),
        ));
    }
    let on_network = |c: &runtime::view::ContainerInfo| {
        runtime::exec::endpoints::Endpoints::read(&c.dir)
            .is_some_and(|e| e.endpoints.iter().any(|e| e.network_id == net_id))
    };
    let task = c.label("com.docker.swarm.task.id").to_string();
    let m = s
        .node
        .manager()
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, swarm::error::NOT_MANAGER))?;
    if connect {
        if on_network(&c) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "endpoint with name {} already exists in network {name}",
                    c.name
                ),
            ));
        }
        if c.state.pid == 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Container {} is not running", c.id),
            ));
        }
        let endpoint = req.endpoint_config.clone().unwrap_or_default();
        let fixed = endpoint.ipam_config.is_some_and(|c| {
            [c.ipv4_address, c.ipv6_address]
                .iter()
                .flatten()
                .any(|a| !a.is_empty())
        });
        if fixed {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "a swarm task's address on a network comes from the swarm's allocator: --ip and --ip6 are not supported",
            ));
        }
        let aliases = endpoint.aliases.unwrap_or_default();
        swarm::controlapi::task::connect_network(m.store(), &task, &net_id, aliases).await?;
    } else {
        if !on_network(&c) {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("container {} is not connected to network {name}", c.id),
            ));
        }
        swarm::controlapi::task::disconnect_network(m.store(), &task, &net_id).await?;
    }
    // The node applies the change through its agent; wait for it, bounded.
    let deadline = tokio::time::Instant::now() + APPLY_LIMIT;
    loop {
        let now = s.runtime.container_info(&env, &c.id).await?;
        if on_network(&now) == connect {
            return Ok(StatusCode::OK.into_response());
        }
        if now.state.pid == 0 || tokio::time::Instant::now() >= deadline {
            let verb = if connect { "connect" } else { "disconnect" };
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the node did not {verb} container {} and network {name} within {} s",
                    c.name,
                    APPLY_LIMIT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How long `docker network connect/disconnect` waits for the node.
const APPLY_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);
