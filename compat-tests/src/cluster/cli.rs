//! The stock `docker` CLI run against one engine's socket, always bounded by
//! `timeout` so a hung call fails its caller instead of hanging a suite.

use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;

/// How long one CLI call may take unless the caller says otherwise.
pub const CLI_LIMIT: Duration = Duration::from_secs(120);

/// The exit code `timeout` gives a command it had to stop.
pub const TIMED_OUT: i32 = 124;

/// The stock docker CLI: `$DOCKER_CLI`, else `/usr/local/bin/docker`.
pub fn docker_bin() -> PathBuf {
    std::env::var("DOCKER_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/local/bin/docker"))
}

/// The result of one command run to its end.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Converts a finished process's output.
    pub fn from_output(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Whether `timeout` had to stop the command.
    pub fn timed_out(&self) -> bool {
        self.code == TIMED_OUT
    }

    /// Stdout when the command succeeded, else an error carrying both
    /// streams, for callers that report rather than panic.
    pub fn into_result(self, what: &str) -> anyhow::Result<String> {
        if self.success() {
            return Ok(self.stdout);
        }
        anyhow::bail!(
            "{what} exited {}{}: {}{}",
            self.code,
            if self.timed_out() { " (timed out)" } else { "" },
            self.stderr.trim(),
            if self.stdout.trim().is_empty() {
                String::new()
            } else {
                format!(" / stdout: {}", self.stdout.trim())
            }
        )
    }
}

/// One engine as the CLI sees it: its `DOCKER_HOST` and a CLI config
/// directory of its own (so contexts or credentials of the machine never
/// leak in).
#[derive(Debug, Clone)]
pub struct Cli {
    /// `unix:///path/to/docker.sock`.
    pub host: String,
    /// `DOCKER_CONFIG` for the calls.
    pub config_dir: PathBuf,
}

impl Cli {
    /// The CLI for the engine listening on `socket`, with its config under
    /// `config_dir`.
    pub fn new(socket: &Path, config_dir: PathBuf) -> Cli {
        Cli {
            host: format!("unix://{}", socket.display()),
            config_dir,
        }
    }

    /// Starts `docker ARGS` for a caller that reads its output as it comes
    /// (`logs -f`), stdout piped, killed after `limit` at the latest.
    pub fn spawn(&self, limit: Duration, args: &[&str]) -> std::io::Result<std::process::Child> {
        Command::new("timeout")
            .args(["-k", "5", &limit.as_secs().max(1).to_string()])
            .arg(docker_bin())
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config_dir)
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    }

    /// Runs `docker ARGS` with `input` on stdin, killed after `limit` (then
    /// the result's code is [`TIMED_OUT`]). Never panics on the command's
    /// outcome; panics only when `timeout` itself cannot be started.
    pub fn run(&self, limit: Duration, args: &[&str], input: Option<&[u8]>) -> Run {
        let secs = limit.as_secs().max(1).to_string();
        let mut child = Command::new("timeout")
            .args(["-k", "5", &secs])
            .arg(docker_bin())
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config_dir)
            .env_remove("DOCKER_CONTEXT")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the docker CLI under timeout");
        // Fed from a thread: the CLI may write while it reads.
        let feeder = input.map(|data| {
            let mut stdin = child.stdin.take().expect("piped stdin");
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            })
        });
        let out = child.wait_with_output();
        if let Some(f) = feeder {
            let _ = f.join();
        }
        match out {
            Ok(o) => Run::from_output(o),
            Err(e) => Run {
                code: -1,
                stdout: String::new(),
                stderr: format!("wait for the docker CLI: {e}"),
            },
        }
    }
}
