//! Prometheus metrics at `--metrics-addr` (`GET /metrics`, OpenMetrics
//! text): the engine, the swarm as this manager's store and raft see it,
//! and the latency of every API call by route.
//!
//! Names follow dockerd's and swarmkit's where they have one
//! (`engine_daemon_engine_info`, `swarm_node_manager`,
//! `swarm_manager_leader`, `swarm_manager_nodes`, `swarm_manager_tasks_total`
//! ...); what they lack is under `shoal_`. Gauges of the store are read at
//! scrape time, so a scrape costs one read view and nothing runs between
//! scrapes.

use std::sync::LazyLock;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use axum::extract::MatchedPath;
use axum::extract::Request;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use swarm::model::api;
use swarm::model::Node;
use swarm::model::Task;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The latency buckets of dockerd's timers (seconds).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What the endpoint answers with.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabels {
    version: String,
    os: String,
    kernel: String,
    architecture: String,
    daemon_id: String,
}

type Latencies = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Every metric, registered once.
struct Metrics {
    registry: Registry,
    engine_info: Family<EngineLabels, Gauge>,
    node_manager: Gauge,
    leader: Gauge,
    nodes: Family<StateLabel, Gauge>,
    tasks: Family<StateLabel, Gauge>,
    services: Gauge,
    networks: Gauge,
    secrets: Gauge,
    configs: Gauge,
    raft_term: Gauge,
    raft_last_log: Gauge,
    raft_applied: Gauge,
    raft_snapshot: Gauge,
}

/// The swarmkit node states, each reported even at zero (as swarmkit
/// does).
const NODE_STATES: [&str; 4] = ["unknown", "down", "ready", "disconnected"];
/// The task states, each reported even at zero.
const TASK_STATES: [&str; 15] = [
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
    "complete",
    "shutdown",
    "failed",
    "rejected",
    "remove",
    "orphaned",
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The API latencies: outside [`METRICS`]'s lock, which only scrapes take.
static REQUESTS: LazyLock<Latencies> =
    LazyLock::new(|| Latencies::new_with_constructor(histogram as fn() -> Histogram));

static METRICS: LazyLock<Mutex<Metrics>> = LazyLock::new(|| Mutex::new(Metrics::new()));

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        registry.register(
            "shoal_api_request_duration_seconds",
            "Time to answer Engine API calls, by method, route and status",
            REQUESTS.clone(),
        );
        let mut m = Metrics {
            registry,
            engine_info: Family::default(),
            node_manager: Gauge::default(),
            leader: Gauge::default(),
            nodes: Family::default(),
            tasks: Family::default(),
            services: Gauge::default(),
            networks: Gauge::default(),
            secrets: Gauge::default(),
            configs: Gauge::default(),
            raft_term: Gauge::default(),
            raft_last_log: Gauge::default(),
            raft_applied: Gauge::default(),
            raft_snapshot: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "engine_daemon_engine_info",
            "The information related to the engine and the OS it is running on",
            m.engine_info.clone(),
        );
        r.register(
            "swarm_node_manager",
            "Whether this node is a manager or not",
            m.node_manager.clone(),
        );
        r.register(
            "swarm_manager_leader",
            "Indicates if this manager node is a leader",
            m.leader.clone(),
        );
        r.register(
            "swarm_manager_nodes",
            "The number of nodes",
            m.nodes.clone(),
        );
        r.register(
            "swarm_manager_tasks_total",
            "The number of tasks in the cluster object store",
            m.tasks.clone(),
        );
        r.register(
            "swarm_manager_services_total",
            "The number of services in the cluster object store",
            m.services.clone(),
        );
        r.register(
            "swarm_manager_networks_total",
            "The number of networks in the cluster object store",
            m.networks.clone(),
        );
        r.register(
            "swarm_manager_secrets_total",
            "The number of secrets in the cluster object store",
            m.secrets.clone(),
        );
        r.register(
            "swarm_manager_configs_total",
            "The number of configs in the cluster object store",
            m.configs.clone(),
        );
        r.register(
            "shoal_raft_term",
            "The raft term this manager is in",
            m.raft_term.clone(),
        );
        r.register(
            "shoal_raft_last_log_index",
            "The index of the last entry of this manager's raft log",
            m.raft_last_log.clone(),
        );
        r.register(
            "shoal_raft_applied_index",
            "The index of the last raft entry applied to this manager's store",
            m.raft_applied.clone(),
        );
        r.register(
            "shoal_raft_snapshot_index",
            "The raft index this manager's last snapshot covers",
            m.raft_snapshot.clone(),
        );
        m
    }

    /// Sets the gauges from the daemon's state now.
    fn refresh(&self, state: &AppState) {
        let e = &state.engine;
        self.engine_info
            .get_or_create(&EngineLabels {
                version: e.version.clone(),
                os: std::env::consts::OS.to_string(),
                kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
                architecture: std::env::consts::ARCH.to_string(),
                daemon_id: e.id.clone(),
            })
            .set(1);
        let manager = state.node.manager_even_without_leader();
        self.node_manager.set(i64::from(manager.is_some()));
        let Some(manager) = manager else {
            // A worker or a node out of any swarm knows no store.
            self.leader.set(0);
            for s in NODE_STATES {
                self.nodes.get_or_create(&label(s)).set(0);
            }
            for s in TASK_STATES {
                self.tasks.get_or_create(&label(s)).set(0);
            }
            for g in [&self.services, &self.networks, &self.secrets, &self.configs] {
                g.set(0);
            }
            return;
        };
        let raft = manager.raft_facts();
        self.leader.set(i64::from(raft.leader));
        self.raft_term.set(clamp(raft.term));
        self.raft_last_log.set(clamp(raft.last_log_index));
        self.raft_applied.set(clamp(raft.applied_index));
        self.raft_snapshot.set(clamp(raft.snapshot_index));
        let counts = manager.store().view(|tx| {
            let t = tx.tables();
            let mut nodes = NODE_STATES.map(|s| (s, 0i64));
            for n in t.iter::<Node>() {
                let s = n
                    .api
                    .status
                    .as_ref()
                    .and_then(|st| st.state)
                    .unwrap_or(api::NodeState::UNKNOWN)
                    .to_string();
                if let Some(c) = nodes.iter_mut().find(|(name, _)| *name == s) {
                    c.1 += 1;
                }
            }
            let mut tasks = TASK_STATES.map(|s| (s, 0i64));
            for task in t.iter::<Task>() {
                let s = task.state().to_string();
                if let Some(c) = tasks.iter_mut().find(|(name, _)| *name == s) {
                    c.1 += 1;
                }
            }
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            (
                nodes,
                tasks,
                [
                    count(t.count::<swarm::model::Service>()),
                    count(t.count::<swarm::model::Network>()),
                    count(t.count::<swarm::model::Secret>()),
                    count(t.count::<swarm::model::Config>()),
                ],
            )
        });
        let (nodes, tasks, kinds) = counts;
        for (s, n) in nodes {
            self.nodes.get_or_create(&label(s)).set(n);
        }
        for (s, n) in tasks {
            self.tasks.get_or_create(&label(s)).set(n);
        }
        for (g, n) in [&self.services, &self.networks, &self.secrets, &self.configs]
            .into_iter()
            .zip(kinds)
        {
            g.set(n);
        }
    }
}

fn label(s: &str) -> StateLabel {
    StateLabel {
        state: s.to_string(),
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Records the call's latency by method, matched route and status; a
/// route layer, so only matched routes count (an ID in a path never
/// becomes a label).
pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let response = next.run(req).await;
    let labels = RequestLabels {
        method,
        route,
        code: response.status().as_u16().to_string(),
    };
    REQUESTS
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The metrics as OpenMetrics text, refreshed from `state`.
pub fn render(state: &AppState) -> String {
    let m = METRICS.lock().unwrap_or_else(|e| e.into_inner());
    m.refresh(state);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &m.registry);
    out
}

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, OPENMETRICS)], render(&state))
}

/// Serves `GET /metrics` on `addr` (plain HTTP, as dockerd's
/// `--metrics-addr`) until `cancel`.
pub async fn serve(addr: String, state: AppState, cancel: CancellationToken) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(state);
    let l = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listen on {addr} for metrics"))?;
    tracing::info!(%addr, "metrics listening");
    axum::serve(l, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .context("metrics listener")
}
