//! Running a standalone container: start, the monitor that waits for its
//! exit and applies the restart policy, stop, kill, restart, remove, and
//! the daemon's start (adopting what still runs, starting what the policy
//! says should run).

use std::net::TcpListener;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use swarm::exec::HostPort;
use swarm::exec::PortProtocol;
use swarm::exec::TaskNetns;

use super::error::Error;
use super::error::Result;
use super::io;
use super::net_events;
use super::net_events::Joined;
use super::net_events::OVERLAY_DRIVER;
use super::policy;
use super::policy::Policy;
use super::spec::NetworkMode;
use super::Attached;
use super::Live;
use super::Standalone;
use crate::exec::endpoints::Endpoint;
use crate::exec::endpoints::Endpoints;
use crate::logs::Copier;
use crate::networks::BRIDGE_DRIVER;
use crate::view::state::Status;
use crate::view::ContainerInfo;

const SIGKILL: u32 = 9;
/// How often the monitor asks again while containerd is away.
const RETRY: Duration = Duration::from_secs(1);
/// How long a stop waits for the monitor to tell the `die` before the
/// container leaves its networks.
const DIE_WAIT: Duration = Duration::from_secs(5);

/// Who starts a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    /// `docker start`, `docker restart`: a user stop is forgotten.
    User,
    /// Its restart policy, after an exit.
    Policy,
    /// The daemon's own start, by the restart policy.
    Daemon,
}

fn view_err(e: crate::view::Error) -> Error {
    match e {
        crate::view::Error::Runtime(r) => Error::Runtime(r),
        other => Error::Failed(other.to_string()),
    }
}

impl Standalone {
    /// `docker start`: a container that runs already is
    /// [`Error::AlreadyStarted`] (304).
    /// A `--rm` container that fails to start is removed, as dockerd
    /// removes it (a `docker run --rm` waits for that).
    pub async fn start(self: &Arc<Self>, id: &str) -> Result<()> {
        let live = self.live(id);
        let _op = live.op.lock().await;
        let started = self.start_locked(id, &live, By::User).await;
        if let Err(e) = &started {
            let auto_remove = self
                .record(id)
                .is_ok_and(|r| r.host_config().auto_remove.unwrap_or(false));
            if auto_remove && !e.is_not_modified() {
                if let Err(r) = self.remove_locked(id, true).await {
                    tracing::warn!(container = %id, error = %r, "removing a --rm container that did not start");
                }
            }
        }
        started
    }

    async fn start_locked(self: &Arc<Self>, id: &str, live: &Arc<Live>, by: By) -> Result<()> {
        let c = self
            .ctd
            .container_info(&self.env, id)
            .await
            .map_err(view_err)?;
        match c.state.status {
            Status::Running => return Err(Error::AlreadyStarted),
            Status::Paused => return Err(Error::StartPaused),
            _ => {}
        }
        let mut record = self.record(id)?;
        if self.ctd.task_state(id).await?.is_some() {
            self.ctd.task_delete(id).await?;
        }
        let hc = record.host_config();
        let mode = NetworkMode::of(&hc)?;
        record.run.published.clear();
        let (netns, published) = self.attach_network(id, &mode, &record, true).await?;
        record.run.published = published;
        let started = self.launch(id, live, &record, netns.as_ref()).await;
        let copier = match started {
            Ok(c) => c,
            Err(e) => {
                self.detach_network(id).await;
                return Err(e);
            }
        };
        match by {
            By::User => {
                record.run.manually_stopped = false;
                live.no_restart.send_replace(false);
            }
            // Counted with the start, so no reader sees the count of a
            // restart that has not happened.
            By::Policy => record.run.restart_count += 1,
            By::Daemon => {}
        }
        record.run.started = true;
        record
            .save(&self.dir(id))
            .map_err(Error::files("write the container's record"))?;
        let volumes = self.ctd.container_volumes(&self.env, id).await;
        self.ctd.volume_events(id, &volumes, true);
        let actor = self.ctd.container_actor(id).await;
        self.ctd.container_event("start", &actor, &[]);
        let run = live.begin_run();
        tokio::spawn(
            self.clone()
                .monitor(id.to_string(), live.clone(), run, copier),
        );
        Ok(())
    }

    /// Writes the spec for this run, opens the stdio and starts the task.
    async fn launch(
        &self,
        id: &str,
        live: &Live,
        record: &super::record::Record,
        netns: Option<&TaskNetns>,
    ) -> Result<Copier> {
        let mounts = self.ctd.snapshot_mounts(id).await?;
        let (spec, _) = self.build(id, record, &mounts, netns)?;
        self.ctd.container_update(id, Some(spec), None).await?;
        let dir = self.dir(id);
        let (copier, out, err) = self.copy_output(id, live)?;
        let open_stdin = record.config.open_stdin.unwrap_or(false);
        if open_stdin {
            // A pipe opened by an attach that came first keeps what was
            // written into it for the process.
            let mut stdin = live.stdin.lock().await;
            if stdin.is_none() {
                match io::open_stdin(&dir) {
                    Ok(s) => *stdin = Some(s),
                    Err(e) => {
                        drop(stdin);
                        copier.finish().await;
                        return Err(Error::files("open the stdin pipe")(e));
                    }
                }
            }
        }
        let stdin = if open_stdin {
            io::stdin_path(&dir).display().to_string()
        } else {
            String::new()
        };
        let created = self
            .ctd
            .task_create(
                id,
                mounts,
                &stdin,
                &out.display().to_string(),
                &err.display().to_string(),
                record.config.tty.unwrap_or(false),
            )
            .await;
        let ran = match created {
            Ok(_) => self.ctd.task_start(id).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = ran {
            let _ = self.ctd.task_delete(id).await;
            live.stdin.lock().await.take();
            copier.finish().await;
            return Err(e.into());
        }
        {
            let mut stdin = live.stdin.lock().await;
            live.running.store(true, Ordering::SeqCst);
            if live.stdin_ended.swap(false, Ordering::SeqCst) && stdin.take().is_some() {
                let _ = self.ctd.exec_close_stdin(id, "").await;
            }
        }
        crate::exec::files::record_start(&dir);
        Ok(copier)
    }

    /// Waits for the run's exit, tells it, and applies the policy. Boxed:
    /// a restart starts the next run's monitor from inside this one.
    fn monitor(
        self: Arc<Self>,
        id: String,
        live: Arc<Live>,
        run: u64,
        copier: Copier,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.follow(id, live, run, copier).await })
    }

    async fn follow(self: Arc<Self>, id: String, live: Arc<Live>, run: u64, copier: Copier) {
        let began = Instant::now();
        let code = self.wait_exit(&id).await;
        copier.finish().await;
        let actor = self.ctd.container_actor(&id).await;
        self.ctd
            .container_event("die", &actor, &[("exitCode", code.to_string())]);
        let volumes = self.ctd.container_volumes(&self.env, &id).await;
        self.ctd.volume_events(&id, &volumes, false);
        live.exits.send_modify(|e| {
            e.count += 1;
            e.code = code;
        });
        let op = live.op.lock().await;
        if !live.is_run(run) {
            return; // removed, restarted or started again meanwhile
        }
        {
            let mut stdin = live.stdin.lock().await;
            live.running.store(false, Ordering::SeqCst);
            stdin.take();
        }
        let Ok(record) = self.record(&id) else {
            return;
        };
        let hc = record.host_config();
        if hc.auto_remove.unwrap_or(false) {
            if let Err(e) = self.remove_locked(&id, true).await {
                tracing::warn!(container = %id, error = %e, "auto-removing a container");
            }
            return;
        }
        let policy = Policy::from_api(hc.restart_policy.as_ref()).unwrap_or_default();
        let restart = !*live.no_restart.borrow()
            && policy.should_restart(code, record.run.manually_stopped, record.run.restart_count);
        if !restart {
            self.detach_network(&id).await;
            return;
        }
        let delay = live.next_delay(began.elapsed());
        drop(op);
        let mut stop = live.no_restart.subscribe();
        let cancelled = tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        let _op = live.op.lock().await;
        if !live.is_run(run) {
            return;
        }
        if cancelled || *live.no_restart.borrow() {
            self.detach_network(&id).await;
            return;
        }
        if let Err(e) = self.start_locked(&id, &live, By::Policy).await {
            tracing::warn!(container = %id, error = %e, "restarting a container");
            self.detach_network(&id).await;
        }
    }

    /// The exit code of the current run, waiting through containerd
    /// restarts.
    async fn wait_exit(&self, id: &str) -> i64 {
        loop {
            match self.ctd.task_wait(id).await {
                Ok(code) => return code as i64,
                Err(e) if e.kind() == crate::ErrorKind::Unavailable => {
                    tokio::time::sleep(RETRY).await;
                }
                Err(_) => match self.ctd.task_state(id).await {
                    Ok(Some(p)) if !p.running => return p.exit_code as i64,
                    Ok(Some(_)) => tokio::time::sleep(RETRY).await,
                    // The task is gone (removed, or containerd lost it).
                    Ok(None) => return 137,
                    Err(_) => tokio::time::sleep(RETRY).await,
                },
            }
        }
    }

    /// `docker stop`: the user stopped it, so no restart policy brings it
    /// back (until it is started again).
    pub async fn stop(
        &self,
        c: &ContainerInfo,
        signal: u32,
        timeout: Option<Duration>,
    ) -> crate::view::Result<()> {
        let live = self.live(&c.id);
        let _op = live.op.lock().await;
        live.no_restart.send_replace(true);
        if let Ok(mut record) = self.record(&c.id) {
            record.run.manually_stopped = true;
            if let Err(e) = record.save(&self.dir(&c.id)) {
                tracing::warn!(container = %c.id, error = %e, "recording a stop");
            }
        }
        let mut exits = live.exits.subscribe();
        let before = exits.borrow().count;
        self.ctd.container_stop(c, signal, timeout).await?;
        // As under dockerd, it leaves its networks after its `die` (told
        // by its monitor, which detaches it once this stop lets go).
        let _ = tokio::time::timeout(DIE_WAIT, exits.wait_for(|e| e.count > before)).await;
        self.set_joined(&c.id, Vec::new(), true);
        Ok(())
    }

    /// `docker kill`: with the container's stop signal the restart policy
    /// is cancelled for this exit, as dockerd does; other signals leave it.
    pub async fn kill(&self, c: &ContainerInfo, signal: u32) -> crate::view::Result<()> {
        let live = self.live(&c.id);
        let stop_signal = self
            .record(&c.id)
            .ok()
            .and_then(|r| r.config.stop_signal)
            .and_then(|s| crate::exec::controller::parse_signal(&s))
            .unwrap_or(15);
        if signal == stop_signal {
            live.no_restart.send_replace(true);
        }
        self.ctd.container_kill(c, signal).await
    }

    /// `docker restart`: stops it (if it runs) and starts it again.
    pub async fn restart(
        self: &Arc<Self>,
        c: &ContainerInfo,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let live = self.live(&c.id);
        let _op = live.op.lock().await;
        if c.state.status.is_running() {
            live.no_restart.send_replace(true);
            let signal = self
                .record(&c.id)?
                .config
                .stop_signal
                .and_then(|s| crate::exec::controller::parse_signal(&s))
                .unwrap_or(15);
            match self.ctd.container_stop(c, signal, timeout).await {
                Ok(()) | Err(crate::view::Error::AlreadyStopped) => {}
                Err(e) => return Err(view_err(e)),
            }
        }
        self.start_locked(&c.id, &live, By::User).await?;
        let actor = self.ctd.container_actor(&c.id).await;
        self.ctd.container_event("restart", &actor, &[]);
        Ok(())
    }

    /// `docker rm`: refuses a running container unless `force`; removes
    /// it with its network and, with `volumes`, its anonymous volumes.
    pub async fn remove(
        &self,
        c: &ContainerInfo,
        reference: &str,
        force: bool,
        volumes: bool,
    ) -> crate::view::Result<()> {
        if c.state.status.is_running() && !force {
            return Err(crate::view::Error::RemoveRunning(reference.to_string()));
        }
        let live = self.live(&c.id);
        let _op = live.op.lock().await;
        self.remove_locked(&c.id, volumes)
            .await
            .map_err(|e| crate::view::Error::Teardown(e.to_string()))
    }

    async fn remove_locked(&self, id: &str, volumes: bool) -> Result<()> {
        let live = self.live(id);
        live.no_restart.send_replace(true);
        live.begin_run();
        if let Some(p) = self.ctd.task_state(id).await? {
            if p.running {
                let actor = self.ctd.container_actor(id).await;
                self.ctd
                    .container_event("kill", &actor, &[("signal", SIGKILL.to_string())]);
            }
        }
        let actor = self.ctd.container_actor(id).await;
        // Addresses first: once the container is gone (what `docker run
        // --rm` waits for) the next one may take them.
        self.detach_network(id).await;
        self.swarm_detach(id).await;
        let removed = if volumes {
            crate::exec::controller::remove_container(&self.ctd, &self.env, id).await
        } else {
            crate::exec::controller::delete_container(&self.ctd, &self.env, id).await
        };
        removed.map_err(|e| Error::Failed(e.to_string()))?;
        self.forget(id);
        self.ctd.container_event("destroy", &actor, &[]);
        Ok(())
    }

    /// `docker attach`: the container's output from now on (its next run's
    /// when it is not running), and its input.
    pub async fn attach(&self, c: &ContainerInfo) -> Result<Attached> {
        if c.state.status == Status::Paused {
            return Err(Error::AttachPaused(c.name.clone()));
        }
        let record = self.record(&c.id)?;
        let mut a = Attached::new(self.live(&c.id), self.ctd.clone(), &c.id, self.dir(&c.id));
        a.tty = record.config.tty.unwrap_or(false);
        a.open_stdin = record.config.open_stdin.unwrap_or(false);
        a.stdin_once = record.config.stdin_once.unwrap_or(false);
        let actor = self.ctd.container_actor(&c.id).await;
        self.ctd.container_event("attach", &actor, &[]);
        Ok(a)
    }

    /// Resizes the container's terminal.
    pub async fn resize(&self, c: &ContainerInfo, width: u32, height: u32) -> Result<()> {
        if !c.state.status.is_running() {
            return Err(Error::NotRunning(c.id.clone()));
        }
        self.ctd.resize_pty(&c.id, "", width, height).await?;
        Ok(())
    }

    /// At the daemon's start: adopts the standalone containers that still
    /// run (their output and exit are followed again), removes exited
    /// `--rm` ones, and starts those their restart policy says should run.
    pub async fn restore(self: &Arc<Self>) -> Result<()> {
        self.restore_networks().await;
        for id in Standalone::ids(&self.ctd).await? {
            let live = self.live(&id);
            let _op = live.op.lock().await;
            let Ok(record) = self.record(&id) else {
                continue;
            };
            let hc = record.host_config();
            let state = self.ctd.task_state(&id).await?;
            if let Some(p) = state.filter(|p| p.running) {
                tracing::info!(container = %id, pid = p.pid, "adopting a running container");
                if let Err(e) = self.adopt(&id, &live, &record).await {
                    tracing::warn!(container = %id, error = %e, "adopting a container");
                }
                continue;
            }
            if !record.run.started {
                continue;
            }
            if hc.auto_remove.unwrap_or(false) {
                if let Err(e) = self.remove_locked(&id, true).await {
                    tracing::warn!(container = %id, error = %e, "removing an exited --rm container");
                }
                continue;
            }
            let policy = Policy::from_api(hc.restart_policy.as_ref()).unwrap_or_default();
            // A task lost with the machine's reboot left no exit code.
            let code = state.map(|p| p.exit_code as i64).unwrap_or(255);
            if policy.start_with_daemon(code, record.run.manually_stopped, record.run.restart_count)
            {
                tracing::info!(container = %id, "starting a container by its restart policy");
                if let Err(e) = self.start_locked(&id, &live, By::Daemon).await {
                    tracing::warn!(container = %id, error = %e, "starting a container");
                }
            }
        }
        Ok(())
    }

    async fn adopt(
        self: &Arc<Self>,
        id: &str,
        live: &Arc<Live>,
        record: &super::record::Record,
    ) -> Result<()> {
        let hc = record.host_config();
        let mode = NetworkMode::of(&hc)?;
        // The driver's attach is idempotent: it brings back what lived in
        // the previous daemon (the DNS server, port checks). Its networks
        // were joined under that daemon: no events.
        self.attach_network(id, &mode, record, false).await?;
        let dir = self.dir(id);
        let (copier, _, _) = self.copy_output(id, live)?;
        {
            let mut stdin = live.stdin.lock().await;
            if record.config.open_stdin.unwrap_or(false) {
                *stdin = io::open_stdin(&dir).ok();
            }
            live.running.store(true, Ordering::SeqCst);
        }
        let run = live.begin_run();
        tokio::spawn(
            self.clone()
                .monitor(id.to_string(), live.clone(), run, copier),
        );
        Ok(())
    }

    /// Starts copying the init process's output FIFOs into the log and to
    /// attached clients; returns the copier and the FIFO paths.
    fn copy_output(
        &self,
        id: &str,
        live: &Live,
    ) -> Result<(Copier, std::path::PathBuf, std::path::PathBuf)> {
        let dir = self.dir(id);
        Copier::start_tapped(
            &dir,
            crate::logs::log_path(&dir, id),
            self.env.log_rotation,
            Some(live.tap.clone()),
        )
        .map_err(Error::files("open the log pipes"))
    }

    /// The container's network namespace for `mode`, with the networks
    /// `docker network connect` added: the gateway bridge for `bridge`,
    /// local networks and an attachable swarm network, with the published
    /// ports; none for `host` (the host's) and `none` (a new one with
    /// loopback only). Called again on a running container, it moves it
    /// onto the networks its record names now. With `announce`, the
    /// networks joined and left are told as dockerd's network events.
    pub(super) async fn attach_network(
        &self,
        id: &str,
        mode: &NetworkMode,
        record: &super::record::Record,
        announce: bool,
    ) -> Result<(Option<TaskNetns>, Vec<HostPort>)> {
        let Some(net) = &self.net else {
            return Ok((None, Vec::new()));
        };
        if matches!(mode, NetworkMode::Host | NetworkMode::None) {
            return Ok((None, Vec::new()));
        }
        let plan = self.local_plan(record, mode)?;
        let atts: Vec<swarm::exec::Attachment> = match mode {
            NetworkMode::Network(_) => self.swarm_attachment(id, record).await?,
            _ => None,
        }
        .into_iter()
        .collect();
        let networks = self.container_networks(id, &record.name, &plan, mode, atts.clone());
        let ns = net
            .attach_container(id, &networks)
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        // An adopted container keeps the ports it was given.
        let ports = if record.run.published.is_empty() {
            host_ports(record)?
        } else {
            record.run.published.clone()
        };
        if let Err(e) = net.publish_host_ports(id, &ports).await {
            let _ = net.detach(id).await;
            return Err(Error::Failed(format!(
                "driver failed programming external connectivity on endpoint {}: {e}",
                record.name
            )));
        }
        let mut endpoints = Vec::new();
        let mut joined = Vec::new();
        if *mode == NetworkMode::Bridge {
            joined.push(Joined::new(&self.bridge_id, "bridge", BRIDGE_DRIVER));
            let (address, gateway) = ns.egress.clone().unwrap_or_default();
            endpoints.push(Endpoint::new(
                "bridge",
                &self.bridge_id,
                &address,
                Vec::new(),
                &gateway,
            ));
        }
        endpoints.extend(Self::local_endpoints(id, &plan, &ns));
        endpoints.extend(Endpoints::of(&ns, &atts).endpoints);
        joined.extend(
            plan.networks
                .iter()
                .map(|(n, _)| Joined::new(&n.id, &n.name, BRIDGE_DRIVER)),
        );
        joined.extend(
            atts.iter()
                .map(|a| Joined::new(&a.network.id, &a.network.name, OVERLAY_DRIVER)),
        );
        self.set_joined(id, joined, announce);
        let old = Endpoints::read(&self.dir(id));
        let eps = Endpoints {
            sandbox: ns.path.clone(),
            endpoints,
        }
        .keeping_ids(old.as_ref());
        eps.write(&self.dir(id))
            .map_err(Error::files("record the endpoints"))?;
        Ok((Some(ns), ports))
    }

    /// Records that container `id` is on `now`, telling the networks left
    /// and joined when `announce`.
    fn set_joined(&self, id: &str, now: Vec<Joined>, announce: bool) {
        let live = self.live(id);
        let mut held = live.joined.lock().unwrap_or_else(|e| e.into_inner());
        if announce {
            let (left, joined) = net_events::changes(&held, &now);
            for n in left {
                net_events::network_event(&self.ctd, "disconnect", id, n);
            }
            for n in joined {
                net_events::network_event(&self.ctd, "connect", id, n);
            }
        }
        *held = now;
    }

    async fn detach_network(&self, id: &str) {
        self.set_joined(id, Vec::new(), true);
        if let Some(net) = &self.net {
            if let Err(e) = net.detach(id).await {
                tracing::warn!(container = %id, error = %e, "detaching a container's network");
            }
        }
    }
}

/// The ports to publish: `-p` bindings (an empty host port gets a free
/// one), and with `-P` every exposed port of the request and the image.
fn host_ports(record: &super::record::Record) -> Result<Vec<HostPort>> {
    let hc = record.host_config();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (port, bindings) in hc.port_bindings.iter().flatten() {
        for b in bindings.iter().flatten() {
            wanted.push((port.clone(), b.host_port.clone().unwrap_or_default()));
        }
    }
    if hc.publish_all_ports.unwrap_or(false) {
        let mut exposed: Vec<String> = record
            .config
            .exposed_ports
            .iter()
            .flat_map(|m| m.keys().cloned())
            .collect();
        if let Some(m) = record
            .image_config
            .get("config")
            .and_then(|c| c.get("ExposedPorts"))
            .and_then(|v| v.as_object())
        {
            exposed.extend(m.keys().cloned());
        }
        for p in exposed {
            if !wanted.iter().any(|(w, _)| *w == p) {
                wanted.push((p, String::new()));
            }
        }
    }
    let mut out = Vec::new();
    for (port, host) in wanted {
        let (num, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
        let protocol = match proto {
            "tcp" => PortProtocol::Tcp,
            "udp" => PortProtocol::Udp,
            "sctp" => PortProtocol::Sctp,
            other => return Err(Error::Invalid(format!("invalid proto: {other}"))),
        };
        let target: u16 = num
            .parse()
            .map_err(|_| Error::Invalid(format!("invalid containerPort: {num}")))?;
        // A range of host ports takes its first (one container port each).
        let host = host.split('-').next().unwrap_or("");
        let published = if host.is_empty() || host == "0" {
            free_port(protocol)?
        } else {
            host.parse()
                .map_err(|_| Error::Invalid(format!("invalid hostPort: {host}")))?
        };
        out.push(HostPort {
            protocol,
            published,
            target,
        });
    }
    Ok(out)
}

/// A port nothing on the node listens on, from the kernel's ephemeral
/// range, as dockerd's port allocator picks one.
fn free_port(protocol: PortProtocol) -> Result<u16> {
    let port = match protocol {
        PortProtocol::Udp => UdpSocket::bind("0.0.0.0:0").and_then(|s| s.local_addr()),
        _ => TcpListener::bind("0.0.0.0:0").and_then(|s| s.local_addr()),
    };
    port.map(|a| a.port())
        .map_err(Error::files("find a free port"))
}

impl Live {
    /// A new run begins: earlier monitors stand down.
    fn begin_run(&self) -> u64 {
        self.run.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    fn is_run(&self, run: u64) -> bool {
        self.run.load(std::sync::atomic::Ordering::SeqCst) == run
    }

    /// The delay before the next policy restart after a run of `ran`.
    fn next_delay(&self, ran: Duration) -> Duration {
        let mut d = self.delay.lock().unwrap_or_else(|e| e.into_inner());
        let next = policy::next_delay(*d, ran);
        *d = Some(next);
        next
    }
}

impl Standalone {
    /// `docker wait`: the exit code once `condition` holds, from the
    /// container's own exits (a `--rm` container is gone before a poll
    /// could read its code).
    pub async fn wait(
        &self,
        c: &ContainerInfo,
        condition: crate::view::WaitCondition,
    ) -> crate::view::Result<i64> {
        use crate::view::WaitCondition;
        let live = self.live(&c.id);
        let mut exits = live.exits.subscribe();
        let seen = exits.borrow_and_update().count;
        drop(live);
        let mut code = c.state.exit_code;
        let running = c.state.status.is_running();
        let next_exit = |exits: &mut tokio::sync::watch::Receiver<super::Exit>| {
            let mut exits = exits.clone();
            async move {
                match exits.wait_for(|e| e.count > seen).await {
                    Ok(e) => Some(e.code),
                    Err(_) => None,
                }
            }
        };
        match condition {
            WaitCondition::NotRunning if !running => Ok(code),
            WaitCondition::NotRunning | WaitCondition::NextExit => {
                Ok(next_exit(&mut exits).await.unwrap_or(128 + SIGKILL as i64))
            }
            WaitCondition::Removed => {
                let mut exited = Box::pin(next_exit(&mut exits));
                let mut told = false;
                loop {
                    if !self.owns(&c.id) {
                        // An exit told with the removal wins over a poll.
                        if !told {
                            if let Ok(Some(c)) =
                                tokio::time::timeout(Duration::from_millis(1), &mut exited).await
                            {
                                code = c;
                            }
                        }
                        return Ok(code);
                    }
                    tokio::select! {
                        c = &mut exited, if !told => {
                            told = true;
                            if let Some(c) = c {
                                code = c;
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }
}
