//! `docker exec` on task containers: exec records, kept in memory as
//! dockerd keeps them (and, like dockerd, forgotten when shoald restarts),
//! and the processes behind them, started through containerd with the
//! container's own OCI process settings and the requested command,
//! environment, user, working directory and TTY.
//!
//! Stdio goes through FIFOs in the container's directory that the shim
//! opens. Why the ends are opened the way they are:
//! - The output FIFOs are read through read-only ends, so a read sees
//!   end-of-file exactly when the shim closes its writer, which it does
//!   once the process's own pipe (or PTY) is drained. That is where the
//!   exec's stream ends, as in dockerd. Until the shim has connected, a
//!   short-lived writer of ours ("keeper") stands in so that no early read
//!   sees a false end-of-file.
//! - The stdin FIFO is written through a read-write end, whose open never
//!   blocks or fails for want of a reader. The shim holds a writer of its
//!   own on it, so ending the process's input takes containerd's CloseIO
//!   after our end is closed.
//!
//! The FIFO names are unlinked as soon as the shim holds them open; the
//! process is deleted from containerd once it has exited and its output
//! has been read.

mod io;
mod process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::Duration;
use std::time::Instant;

use tokio::sync::oneshot;
use tokio::sync::watch;

use self::io::Fifos;
pub use self::io::Session;
pub use self::io::StdinPipe;
use self::process::detach_keys;
use self::process::process_json;
use self::process::runtime_message;
use self::process::user_ids;
use self::process::LaunchError;
use super::state::Status;
use super::ContainerInfo;
use crate::containers::NewExec;
use crate::error::ErrorKind;
use crate::exec::ids;
use crate::exec::NodeEnv;
use crate::Containerd;

/// How long an ended exec stays inspectable (dockerd drops it on the
/// second pass of a five-minute clean-up).
const KEEP_ENDED: Duration = Duration::from_secs(10 * 60);
/// How long a resize waits for the process to have started (dockerd's).
const READY_WAIT: Duration = Duration::from_secs(10);

/// What `POST /containers/{id}/exec` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `K=V` to set, `K` to unset, over the container's environment.
    pub env: Vec<String>,
    /// `user[:group]` (names or numbers); empty: the container's.
    pub user: String,
    /// Working directory; empty: the container's.
    pub working_dir: String,
    /// Whether the process gets a terminal.
    pub tty: bool,
    /// Full capabilities (not supported: refused at create).
    pub privileged: bool,
    /// Forward the client's input to the process.
    pub attach_stdin: bool,
    /// Send the process's stdout to the client.
    pub attach_stdout: bool,
    /// Send the process's stderr to the client.
    pub attach_stderr: bool,
    /// The key sequence that detaches (`ctrl-p,ctrl-q` form).
    pub detach_keys: String,
    /// Initial terminal size `[height, width]`.
    pub console_size: Option<[u32; 2]>,
}

/// What can go wrong with an exec, with dockerd's texts.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The create request has no command.
    #[error("No exec command specified")]
    NoCommand,
    /// No exec has this ID.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// The container is paused.
    #[error("Container {0} is paused, unpause the container before exec")]
    Paused(String),
    /// Starting an exec that has ended.
    #[error("exec command {0} has already run")]
    AlreadyRan(String),
    /// Starting an exec that runs.
    #[error("exec command {0} is already running")]
    AlreadyRunning(String),
    /// Detach keys that do not parse.
    #[error("Invalid escape keys ({0}) provided")]
    DetachKeys(String),
    /// The user does not resolve in the container.
    #[error("{0}")]
    User(String),
    /// `--privileged` is not supported here.
    #[error("privileged exec is not supported")]
    Privileged,
    /// Resizing an exec whose process failed to start.
    #[error("exec process is not started")]
    NotStarted,
    /// Resizing an exec that was not started in time.
    #[error("timeout waiting for exec session ready")]
    NotReady,
    /// The process could not be started; `invalid` when the command or
    /// settings are at fault rather than the runtime.
    #[error("{message}")]
    Start {
        /// containerd's (or the setup's) message.
        message: String,
        /// Whether it is the request's fault (HTTP 400, else 500).
        invalid: bool,
    },
    /// Finding or reaching the container failed.
    #[error(transparent)]
    Container(#[from] super::Error),
}

impl ExecError {
    /// The behaviour class, for the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExecError::NoCommand
            | ExecError::User(_)
            | ExecError::Privileged
            | ExecError::NotStarted
            | ExecError::Start { invalid: true, .. } => ErrorKind::InvalidArgument,
            ExecError::NoSuchExec(_) => ErrorKind::NotFound,
            ExecError::Paused(_) | ExecError::AlreadyRan(_) | ExecError::AlreadyRunning(_) => {
                ErrorKind::Conflict
            }
            ExecError::DetachKeys(_) | ExecError::NotReady | ExecError::Start { .. } => {
                ErrorKind::Internal
            }
            ExecError::Container(e) => e.kind(),
        }
    }
}

impl From<crate::Error> for ExecError {
    fn from(e: crate::Error) -> Self {
        ExecError::Container(e.into())
    }
}

/// One exec as `GET /exec/{id}/json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInfo {
    /// The exec ID (64 hex digits).
    pub id: String,
    /// Whether its process runs (or is being started).
    pub running: bool,
    /// Its exit code once it ended.
    pub exit_code: Option<i64>,
    /// Host PID of its process (0 before it started).
    pub pid: u32,
    /// Whether it has a terminal.
    pub tty: bool,
    /// The command.
    pub entrypoint: String,
    /// Its arguments.
    pub arguments: Vec<String>,
    /// Whether it was asked for full capabilities.
    pub privileged: bool,
    /// The user it runs as (the container's when none was asked for).
    pub user: String,
    /// Whether input is forwarded.
    pub open_stdin: bool,
    /// Whether stdout is sent.
    pub open_stdout: bool,
    /// Whether stderr is sent.
    pub open_stderr: bool,
    /// The container's full ID.
    pub container_id: String,
    /// The detach key codes.
    pub detach_keys: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    running: bool,
    pid: u32,
    exit_code: Option<i64>,
    ended: Option<Instant>,
}

/// One exec record.
#[derive(Debug)]
pub struct Exec {
    id: String,
    container_id: String,
    dir: PathBuf,
    cfg: ExecConfig,
    user: String,
    detach_keys: Vec<u8>,
    state: Mutex<State>,
    /// Set once a start attempt is over (successful or not).
    started: watch::Sender<bool>,
    exited: watch::Sender<Option<i64>>,
}

impl Exec {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exec ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The command as dockerd's exec events show it: the program, a space,
    /// and its arguments joined by spaces.
    pub fn command_line(&self) -> String {
        let (first, rest) = self
            .cfg
            .cmd
            .split_first()
            .map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
        format!("{first} {}", rest.join(" "))
    }

    /// Whether the process was created with a terminal.
    pub fn tty(&self) -> bool {
        self.cfg.tty
    }

    fn pid(&self) -> u32 {
        self.lock().pid
    }

    fn begin(&self) -> Result<(), ExecError> {
        let mut st = self.lock();
        if st.exit_code.is_some() {
            return Err(ExecError::AlreadyRan(self.id.clone()));
        }
        if st.running {
            return Err(ExecError::AlreadyRunning(self.id.clone()));
        }
        st.running = true;
        Ok(())
    }

    fn launched(&self, pid: u32) {
        self.lock().pid = pid;
        self.started.send_replace(true);
    }

    fn ended(&self, code: i64) {
        {
            let mut st = self.lock();
            st.running = false;
            st.exit_code = Some(code);
            st.ended = Some(Instant::now());
        }
        self.started.send_replace(true);
        self.exited.send_replace(Some(code));
    }

    fn info(&self) -> ExecInfo {
        let st = self.lock();
        ExecInfo {
            id: self.id.clone(),
            running: st.running,
            exit_code: st.exit_code,
            pid: st.pid,
            tty: self.cfg.tty,
            entrypoint: self.cfg.cmd.first().cloned().unwrap_or_default(),
            arguments: self.cfg.cmd.iter().skip(1).cloned().collect(),
            privileged: self.cfg.privileged,
            user: self.user.clone(),
            open_stdin: self.cfg.attach_stdin,
            open_stdout: self.cfg.attach_stdout,
            open_stderr: self.cfg.attach_stderr,
            container_id: self.container_id.clone(),
            detach_keys: self.detach_keys.clone(),
        }
    }
}

/// An exec whose container runs, ready to start or resize.
#[derive(Debug, Clone)]
pub struct LiveExec {
    exec: Arc<Exec>,
    init_pid: u32,
}

impl LiveExec {
    /// The exec record.
    pub fn exec(&self) -> &Exec {
        &self.exec
    }
}

/// The exec records of this daemon. Cheap to clone (one shared map).
#[derive(Debug, Clone, Default)]
pub struct Execs {
    map: Arc<Mutex<HashMap<String, Arc<Exec>>>>,
}

impl Execs {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Exec>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<Exec>, ExecError> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| ExecError::NoSuchExec(id.to_string()))
    }

    /// `POST /containers/{id}/exec` on container `c` (which the client
    /// called `reference`): checks it runs, the user resolves in it and
    /// the detach keys parse, then records the exec. `default_user` is the
    /// container's user as its inspect shows it. Returns the new exec ID.
    pub fn create(
        &self,
        c: &ContainerInfo,
        reference: &str,
        cfg: ExecConfig,
        default_user: &str,
    ) -> Result<String, ExecError> {
        if cfg.cmd.is_empty() {
            return Err(ExecError::NoCommand);
        }
        live_state(c, reference)?;
        if cfg.privileged {
            return Err(ExecError::Privileged);
        }
        if !cfg.user.is_empty() {
            user_ids(c.state.pid, &cfg.user).map_err(ExecError::User)?;
        }
        let detach_keys = detach_keys(&cfg.detach_keys)?;
        let id = ids::random_hex(32);
        let user = if cfg.user.is_empty() {
            default_user.to_string()
        } else {
            cfg.user.clone()
        };
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: c.id.clone(),
            dir: c.dir.clone(),
            cfg,
            user,
            detach_keys,
            state: Mutex::new(State::default()),
            started: watch::channel(false).0,
            exited: watch::channel(None).0,
        });
        let mut map = self.map();
        map.retain(|_, e| e.lock().ended.is_none_or(|t| t.elapsed() < KEEP_ENDED));
        map.insert(id.clone(), exec);
        Ok(id)
    }

    /// The exec record `id`, for the event of its creation.
    pub fn record(&self, id: &str) -> Option<Arc<Exec>> {
        self.get(id).ok()
    }

    /// The exec `id` if its container still runs (dockerd's check before
    /// a start or a resize): a removed container is "No such container"
    /// (naming the exec, as dockerd does), a stopped one "is not running".
    pub async fn live(
        &self,
        ctd: &Containerd,
        env: &NodeEnv,
        id: &str,
    ) -> Result<LiveExec, ExecError> {
        let exec = self.get(id)?;
        let c = match ctd.container_info(env, &exec.container_id).await {
            Ok(c) if c.id == exec.container_id => c,
            Ok(_) | Err(super::Error::NoSuchContainer(_)) => {
                return Err(super::Error::NoSuchContainer(id.to_string()).into())
            }
            Err(e) => return Err(e.into()),
        };
        live_state(&c, &c.id)?;
        Ok(LiveExec {
            exec,
            init_pid: c.state.pid,
        })
    }

    /// Starts the process of `live`. With `attach`, its stdio is returned
    /// in the [`Session`]; without, it runs detached with no stdio.
    /// `console` (`[height, width]`) overrides the size given at create.
    /// A failed start records dockerd's exit code for it (126, 127, 128).
    pub async fn start(
        &self,
        ctd: &Containerd,
        live: &LiveExec,
        console: Option<[u32; 2]>,
        attach: bool,
    ) -> Result<Session, ExecError> {
        let exec = &live.exec;
        exec.begin()?;
        // Told before the process runs, as dockerd tells it (a failed start
        // too): a process that ends at once would otherwise show its
        // `exec_die` first.
        let action = format!("exec_start: {}", exec.command_line());
        ctd.exec_event(&exec.container_id, &action, &exec.id, &[])
            .await;
        match launch(ctd, exec, live.init_pid, console, attach).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let (code, err) = e.classify();
                exec.ended(code);
                Err(err)
            }
        }
    }

    /// `POST /exec/{id}/resize`: waits (bounded) for the process to have
    /// started, then resizes its terminal (a no-op without one).
    pub async fn resize(
        &self,
        ctd: &Containerd,
        env: &NodeEnv,
        id: &str,
        height: u32,
        width: u32,
    ) -> Result<(), ExecError> {
        let live = self.live(ctd, env, id).await?;
        let exec = &live.exec;
        let mut started = exec.started.subscribe();
        match tokio::time::timeout(READY_WAIT, started.wait_for(|s| *s)).await {
            Ok(Ok(_)) => {}
            _ => return Err(ExecError::NotReady),
        }
        if exec.pid() == 0 {
            return Err(ExecError::NotStarted);
        }
        ctd.resize_pty(&exec.container_id, &exec.id, width, height)
            .await?;
        Ok(())
    }

    /// `GET /exec/{id}/json`; an exec whose container is gone is unknown.
    pub async fn inspect(&self, ctd: &Containerd, id: &str) -> Result<ExecInfo, ExecError> {
        let exec = self.get(id)?;
        if ctd.container_get(&exec.container_id).await?.is_none() {
            return Err(ExecError::NoSuchExec(id.to_string()));
        }
        Ok(exec.info())
    }
}

/// dockerd's checks that a container can take an exec.
fn live_state(c: &ContainerInfo, reference: &str) -> Result<(), ExecError> {
    match c.state.status {
        Status::Paused => Err(ExecError::Paused(reference.to_string())),
        Status::Running => Ok(()),
        Status::Created | Status::Exited => Err(super::Error::NotRunning(c.id.clone()).into()),
    }
}

async fn launch(
    ctd: &Containerd,
    exec: &Arc<Exec>,
    init_pid: u32,
    console: Option<[u32; 2]>,
    attach: bool,
) -> Result<Session, LaunchError> {
    let cid = &exec.container_id;
    let spec = ctd
        .container_spec(cid)
        .await
        .map_err(|e| LaunchError::Setup(e.to_string()))?
        .ok_or_else(|| LaunchError::Setup("container has no spec".into()))?;
    let user = match exec.cfg.user.as_str() {
        "" => None,
        u => Some(user_ids(init_pid, u).map_err(LaunchError::Setup)?),
    };
    let console = console.or(exec.cfg.console_size);
    let process =
        process_json(&spec, &exec.cfg, user.as_ref(), console).map_err(LaunchError::Setup)?;
    let mut io = if attach {
        Fifos::open(&exec.dir, &exec.id, exec.cfg.tty, exec.cfg.attach_stdin)
            .map_err(|e| LaunchError::Setup(format!("create exec pipes: {e}")))?
    } else {
        Fifos::default()
    };
    let new = NewExec {
        exec_id: exec.id.clone(),
        process,
        stdin: io.name(0),
        stdout: io.name(1),
        stderr: io.name(2),
        terminal: exec.cfg.tty,
    };
    let started = ctd.exec_start(cid, new).await;
    // The shim holds what it needs open; the names can go either way.
    io.unlink();
    let pid = match started {
        Ok(pid) => pid,
        Err(e) => {
            let _ = ctd.exec_delete(cid, &exec.id).await;
            return Err(LaunchError::Runtime(runtime_message(&e)));
        }
    };
    io.keepers.clear();
    exec.launched(pid);
    let (output_read, read_rx) = oneshot::channel();
    tokio::spawn(watch_exit(ctd.clone(), exec.clone(), read_rx));
    Ok(Session {
        stdin: io.stdin.take().map(|sender| StdinPipe {
            sender: Some(sender),
            ctd: ctd.clone(),
            container_id: cid.clone(),
            exec_id: exec.id.clone(),
        }),
        stdout: io.stdout.take(),
        stderr: io.stderr.take(),
        exec: exec.clone(),
        _output_read: output_read,
    })
}

/// Records the exit, then deletes the process once its output was read.
async fn watch_exit(ctd: Containerd, exec: Arc<Exec>, output_read: oneshot::Receiver<()>) {
    let code = match ctd.exec_wait(&exec.container_id, &exec.id).await {
        Ok(code) => code as i64,
        Err(e) => {
            // The container went away under it: its processes were killed.
            tracing::warn!(exec = %exec.id, error = %e, "waiting for exec process");
            128 + 9
        }
    };
    exec.ended(code);
    ctd.exec_event(
        &exec.container_id,
        "exec_die",
        &exec.id,
        &[("exitCode", code.to_string())],
    )
    .await;
    let _ = output_read.await;
    let _ = ctd.exec_delete(&exec.container_id, &exec.id).await;
}
