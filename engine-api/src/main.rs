//! shoald: the composition root. Parses flags, sets up logging, opens the swarm
//! node and serves the Docker Engine API until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use engine_api::config::Config;
use engine_api::config::FileConfig;
use engine_api::config::Flags;
use engine_api::server::listener;
use engine_api::server::router;
use engine_api::AppState;
use engine_api::EngineInfo;
use swarm::node::NodeConfig;
use swarm::node::SwarmNode;
use tokio::signal::unix::signal;
use tokio::signal::unix::SignalKind;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Registry;

/// Changes the log level of a running daemon (SIGHUP).
type LevelHandle = reload::Handle<EnvFilter, Registry>;

fn filter(level: &str) -> EnvFilter {
    EnvFilter::new(format!("{level},openraft=warn"))
}

fn init_tracing(cfg: &Config) -> LevelHandle {
    // RUST_LOG, when set, wins over the configured level at start.
    let initial = EnvFilter::try_from_default_env().unwrap_or_else(|_| filter(&cfg.log_level));
    let (level, handle) = reload::Layer::new(initial);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(level);
    if cfg.log_format == "json" {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
    handle
}

/// SIGHUP: applies the log level the configuration file now sets, as
/// dockerd reloads its file (a bad file changes nothing).
fn reload(cfg: &Config, handle: &LevelHandle) {
    let Some(path) = &cfg.config_file else {
        tracing::info!("SIGHUP: no configuration file to reload");
        return;
    };
    match FileConfig::read(path) {
        Ok(file) => {
            if let Some(level) = file.log_level() {
                match handle.reload(filter(&level)) {
                    Ok(()) => tracing::info!(log_level = %level, "Reloaded configuration"),
                    Err(e) => tracing::error!(error = %e, "Error reconfiguring the daemon"),
                }
            } else {
                tracing::info!("Reloaded configuration: nothing to change");
            }
        }
        Err(e) => tracing::error!(error = format!("{e:#}"), "Error reconfiguring the daemon"),
    }
}

/// Every API connection, task and shim pipe is a descriptor: the soft
/// limit (often 1024) goes up to the hard one, as Go programs such as
/// dockerd do by themselves.
fn raise_open_files_limit() {
    use nix::sys::resource::getrlimit;
    use nix::sys::resource::setrlimit;
    use nix::sys::resource::Resource;
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, "raising the open files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "reading the open files limit"),
    }
}

fn daemon_id(data_root: &std::path::Path) -> anyhow::Result<String> {
    let path = data_root.join("engine-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_string());
    }
    let id = swarm::model::new_id();
    std::fs::write(&path, &id).with_context(|| format!("write {}", path.display()))?;
    Ok(id)
}

/// Brings back the standalone containers (adopting running ones, starting
/// those their restart policy asks for), waiting for containerd if it is
/// not up yet.
async fn restore_containers(standalone: Arc<runtime::standalone::Standalone>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match standalone.restore().await {
            Ok(()) => return,
            Err(runtime::standalone::Error::Runtime(e))
                if e.kind() == runtime::ErrorKind::Unavailable =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::warn!(error = %e, "restoring standalone containers");
                return;
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::load(Flags::parse())?;
    let levels = init_tracing(&cfg);
    raise_open_files_limit();
    std::fs::create_dir_all(&cfg.data_root)
        .with_context(|| format!("create data root {}", cfg.data_root.display()))?;
    let _pidfile = engine_api::pidfile::PidFile::create(&cfg.pidfile)?;
    // Bad TLS files stop the start before anything else is opened.
    let listen = listener::ListenOptions {
        group: cfg.group.clone(),
        tls: engine_api::server::tls::server_config(&cfg.tls)?,
        verify: cfg.tls.verify,
        tls_explicitly_off: cfg.tls.explicitly_off,
    };
    let hostname = swarm::host::hostname();
    let engine = Arc::new(EngineInfo {
        version: engine_api::VERSION.to_string(),
        data_root: cfg.data_root.display().to_string(),
        hostname: hostname.clone(),
        id: daemon_id(&cfg.data_root)?,
        started: Instant::now(),
    });
    let events = swarm::events::EventBus::new();
    let containerd = runtime::Containerd::new(&cfg.containerd, cfg.data_root.join("tmp"))
        .with_events(events.clone());
    // Made here, on the main thread: the namespace shoald starts in is the
    // one tasks reach the outside and published ports from.
    let network: Arc<dyn swarm::exec::NetworkAttacher> = Arc::new(
        netdrv::OverlayDriver::new(cfg.data_root.join("netdrv"))
            .context("open the network driver's state")?,
    );
    let node_env = runtime::exec::NodeEnv::new(
        &cfg.data_root,
        hostname.clone(),
        engine_api::VERSION.to_string(),
    )
    .with_cgroup_parent(&cfg.cgroup_parent);
    let executor = runtime::exec::ContainerdExecutor::new(containerd.clone(), node_env.clone())
        .with_network(network.clone());
    let node = SwarmNode::open(NodeConfig {
        data_root: cfg.data_root.clone(),
        engine_version: engine_api::VERSION.to_string(),
        hostname,
        executor: Some(Arc::new(executor)),
        events: events.clone(),
    })
    .await
    .context("open swarm state")?;
    let local_networks = runtime::networks::LocalNetworks::open(cfg.data_root.join("networks"))
        .context("open the local networks' records")?;
    let standalone = runtime::standalone::Standalone::new(
        containerd.clone(),
        node_env,
        Some(network),
        swarm::controlapi::network::local_id(&engine.id, "bridge"),
        Some(node.clone() as Arc<dyn swarm::exec::AttachmentAllocator>),
        Arc::new(local_networks),
    );
    let state = AppState {
        node: node.clone(),
        engine,
        services_json: Default::default(),
        runtime: containerd,
        events: events.clone(),
        standalone: standalone.clone(),
    };
    tokio::spawn(restore_containers(standalone));
    let app = router::app(state.clone());
    let cancel = CancellationToken::new();
    let mut servers = tokio::task::JoinSet::new();
    for h in &cfg.hosts {
        let host = listener::Host::parse(h)?;
        servers.spawn(listener::serve(
            host,
            listen.clone(),
            app.clone(),
            cancel.clone(),
        ));
    }
    if let Some(addr) = cfg.metrics_addr.clone() {
        servers.spawn(engine_api::metrics::serve(
            addr,
            state.clone(),
            cancel.clone(),
        ));
    }
    // The store is loaded and the listeners are bound (or failing): a
    // systemd unit of Type=notify starts its dependents now. Outside
    // systemd there is no socket to tell and nothing happens.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "telling systemd the daemon is ready");
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&cfg, &levels),
            Some(r) = servers.join_next() => {
                r.context("listener panicked")?.context("listener failed")?;
            }
        }
    }
    tracing::info!("shutting down");
    // Followers of `docker events` end first: connections close gracefully
    // only once their responses are complete.
    events.close();
    cancel.cancel();
    node.shutdown().await;
    while servers.join_next().await.is_some() {}
    Ok(())
}
