//! `/_ping`, `/version`, `/info`.

use axum::extract::State;
use axum::http::header;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Json;
use axum::Router;
use swarm::model::api;
use swarm::model::Node;

use crate::server::version;
use crate::AppState;

/// The system routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version_info))
        .route("/info", get(info))
}

async fn ping(State(s): State<AppState>) -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let swarm = match s.node.local_state() {
        api::LocalNodeState::ACTIVE if s.node.is_manager() => "active/manager",
        api::LocalNodeState::ACTIVE => "active/worker",
        api::LocalNodeState::LOCKED => "locked",
        _ => "inactive",
    };
    h.insert("Swarm", HeaderValue::from_static(swarm));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    r
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

async fn version_info(State(s): State<AppState>) -> Json<serde_json::Value> {
    let kernel = kernel_version();
    let details = serde_json::json!({
        "ApiVersion": version::MAX.to_string(),
        "Arch": arch(),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": "",
        "KernelVersion": kernel,
        "MinAPIVersion": version::MIN.to_string(),
        "Os": "linux",
    });
    Json(serde_json::json!({
        "Platform": { "Name": "shoal" },
        "Components": [
            { "Name": "Engine", "Version": s.engine.version, "Details": details }
        ],
        "Version": s.engine.version,
        "ApiVersion": version::MAX.to_string(),
        "MinAPIVersion": version::MIN.to_string(),
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
}

fn swarm_info(s: &AppState) -> api::SwarmInfo {
    let state = s.node.local_state();
    let mut info = api::SwarmInfo {
        node_id: Some(String::new()),
        node_addr: Some(String::new()),
        local_node_state: Some(state),
        control_available: Some(false),
        error: Some(String::new()),
        remote_managers: None,
        ..Default::default()
    };
    if let Some(m) = s.node.membership() {
        info.node_id = Some(m.node_id.clone());
        info.node_addr = Some(
            m.advertise_addr
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_default(),
        );
    }
    if let Some(w) = s.node.worker_info() {
        info.remote_managers = Some(
            w.managers
                .iter()
                .map(|addr| api::PeerNode {
                    node_id: None,
                    addr: Some(addr.clone()),
                })
                .collect(),
        );
        return info;
    }
    let Some(mgr) = s.node.manager_even_without_leader() else {
        return info;
    };
    info.control_available = Some(true);
    if !mgr.has_leader() {
        info.error = Some(swarm::Error::no_leader().message().to_string());
    }
    let (nodes, cluster) = mgr.store().view(|tx| {
        let t = tx.tables();
        (t.iter::<Node>().cloned().collect::<Vec<_>>(), tx.cluster())
    });
    let managers: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.api.manager_status.is_some())
        .collect();
    info.nodes = Some(nodes.len() as i64);
    info.managers = Some(managers.len() as i64);
    info.remote_managers = Some(
        managers
            .iter()
            .map(|n| api::PeerNode {
                node_id: n.api.id.clone(),
                addr: n.api.manager_status.as_ref().and_then(|m| m.addr.clone()),
            })
            .collect(),
    );
    if let Some(c) = cluster {
        let sw = c.api;
        info.cluster = Some(api::ClusterInfo {
            id: sw.id,
            version: sw.version,
            created_at: sw.created_at,
            updated_at: sw.updated_at,
            spec: sw.spec,
            tls_info: sw.tls_info,
            root_rotation_in_progress: sw.root_rotation_in_progress,
            data_path_port: sw.data_path_port,
            default_addr_pool: sw.default_addr_pool,
            subnet_size: sw.subnet_size,
        });
    }
    info
}

async fn info(
    State(s): State<AppState>,
    Extension(api_version): Extension<version::ApiVersion>,
) -> Json<serde_json::Value> {
    let mut swarm = serde_json::to_value(swarm_info(&s)).unwrap_or_default();
    if let Some(c) = swarm.get_mut("Cluster") {
        super::swarm::null_addr_pool(c);
    }
    // dockerd has the key even with no managers to name (outside a swarm).
    if let Some(o) = swarm.as_object_mut() {
        o.entry("RemoteManagers").or_insert(serde_json::Value::Null);
    }
    let kernel = kernel_version();
    // Counts of what this node's containerd holds; zero while it is away.
    let env = super::containers::node_env(&s);
    let containers = s.runtime.container_infos(&env).await.unwrap_or_default();
    let count = |st: runtime::view::state::Status| {
        containers.iter().filter(|c| c.state.status == st).count()
    };
    let running = count(runtime::view::state::Status::Running);
    let paused = count(runtime::view::state::Status::Paused);
    let images = s.runtime.image_list().await.map(|i| i.len()).unwrap_or(0);
    let mut info = serde_json::json!({
        "ID": s.engine.id,
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running - paused,
        "Images": images,
        "Driver": "overlayfs",
        "DriverStatus": [],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null", "overlay"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": swarm::model::now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2",
        "NEventsListener": s.events.listeners(),
        "KernelVersion": kernel,
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": [] },
        "NCPU": swarm::host::cpus(),
        "MemTotal": swarm::host::memory_bytes(),
        "GenericResources": null,
        "DockerRootDir": s.engine.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": s.engine.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": s.engine.version,
        "Runtimes": { "runc": { "path": "runc" } },
        "DefaultRuntime": "runc",
        "Swarm": swarm,
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": { "ID": "" },
        "RuncCommit": { "ID": "" },
        "InitCommit": { "ID": "" },
        "SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"],
        "Warnings": null,
    });
    crate::compat::info_out(&mut info, api_version);
    Json(info)
}
