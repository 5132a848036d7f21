//! End-to-end: `docker exec` in the task containers of a swarm service,
//! against shoald on a private containerd, driven by the stock CLI (and,
//! for the terminal session, the CLI under a pseudo-terminal).
//!
//! The CLI's exit code is the process's: it reads it from
//! `GET /exec/{id}/json` once the stream has ended.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use common::wait_for;
use common::Containerd;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

/// How long one CLI run may take: a stream that never ends must fail the
/// test, not stall it.
const CLI_LIMIT: u64 = 60;

/// containerd, shoald in a one-node swarm with the test image loaded, and
/// one service task running `httpd`; returns its container's full ID.
fn setup() -> Option<(Containerd, Daemon, String)> {
    let (ctrd, mut d) = common::swarm_with_test_image()?;
    d.set_cli_limit(Duration::from_secs(CLI_LIMIT));
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let id = wait_for(60, "the task's container running", || {
        let out = d.ok(&[
            "container",
            "ls",
            "--no-trunc",
            "--filter",
            "label=com.docker.swarm.service.name=web",
            "--format",
            "{{.ID}} {{.State}}",
        ]);
        let rows: Vec<&str> = out.lines().collect();
        match rows.as_slice() {
            [row] => row
                .strip_suffix(" running")
                .map(str::to_string)
                .filter(|id| id.len() == 64),
            _ => None,
        }
    });
    Some((ctrd, d, id))
}

/// A raw request over the socket, bounded like the CLI calls; returns (status,
/// body).
fn curl(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let limit = CLI_LIMIT.to_string();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-g", "-m", &limit, "-o", "-", "-w", "\n%{http_code}"])
        .args(["-X", method, "--unix-socket"])
        .arg(d.socket())
        .arg(format!("http://localhost{path}"));
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn exec_runs_commands_with_their_settings_and_exit_codes() {
    let Some((_ctrd, d, c)) = setup() else {
        return;
    };
    let hi = d.docker_stdin(&["exec", &c, "echo", "hi"], None);
    assert_eq!((hi.code, hi.stdout.as_str()), (0, "hi\n"), "{}", hi.stderr);
    let both = d.docker_stdin(&["exec", &c, "sh", "-c", "echo out; echo err >&2"], None);
    assert_eq!(
        (both.stdout.as_str(), both.stderr.as_str()),
        ("out\n", "err\n")
    );
    let seven = d.docker_stdin(&["exec", &c, "sh", "-c", "exit 7"], None);
    assert_eq!(seven.code, 7, "{seven:?}");

    // Environment, working directory and user.
    let out = d.ok(&[
        "exec",
        "-e",
        "A=b",
        "-w",
        "/tmp",
        "-u",
        "1000",
        &c,
        "sh",
        "-c",
        "echo $A; pwd; id -u; id -g",
    ]);
    assert_eq!(out, "b\n/tmp\n1000\n0\n");
    assert_eq!(d.ok(&["exec", "-u", "nobody", &c, "id", "-u"]), "65534\n");
    // Without -w and -u: the container's own directory and user.
    assert_eq!(d.ok(&["exec", &c, "sh", "-c", "pwd; id -u"]), "/\n0\n");
    let err = d.fail(&["exec", "-u", "nosuch", &c, "true"]);
    assert!(
        err.contains(
            "Error response from daemon: unable to find user nosuch: no matching entries in passwd file"
        ),
        "{err}"
    );

    // Input: small, then more than a pipe holds.
    let cat = d.docker_stdin(&["exec", "-i", &c, "cat"], Some(b"data\n"));
    assert_eq!((cat.code, cat.stdout.as_str()), (0, "data\n"), "{cat:?}");
    let big = vec![b'x'; 300_000];
    let wc = d.docker_stdin(&["exec", "-i", &c, "wc", "-c"], Some(&big));
    assert_eq!(wc.stdout.trim(), "300000", "{wc:?}");

    // A command that does not exist: runc's text, dockerd's 127.
    let missing = d.docker_stdin(&["exec", &c, "nosuchcmd"], None);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(
        format!("{}{}", missing.stdout, missing.stderr).contains("executable file not found"),
        "{missing:?}"
    );

    // Detached: runs without the client; by ID prefix.
    d.ok(&["exec", "-d", &c[..12], "sh", "-c", "echo later > /tmp/d"]);
    wait_for(10, "the detached exec's file", || {
        (d.docker_stdin(&["exec", &c, "cat", "/tmp/d"], None).stdout == "later\n").then_some(())
    });

    let err = d.fail(&["exec", "nope", "true"]);
    assert!(
        err.contains("Error response from daemon: No such container: nope"),
        "{err}"
    );
    d.ok(&["version"]);
}

#[test]
fn exec_api_answers_like_dockerd() {
    let Some((_ctrd, d, c)) = setup() else {
        return;
    };
    let (code, body) = curl(
        &d,
        "POST",
        &format!("/v1.50/containers/{c}/exec"),
        Some("{}"),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("No exec command specified"), "{body}");
    let (code, body) = curl(
        &d,
        "POST",
        "/v1.50/containers/nope/exec",
        Some(r#"{"Cmd":["true"]}"#),
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such container: nope"), "{body}");
    for (method, path, status, text) in [
        (
            "GET",
            "/v1.50/exec/nope/json",
            404,
            "No such exec instance: nope",
        ),
        (
            "POST",
            "/v1.50/exec/nope/start",
            404,
            "No such exec instance: nope",
        ),
        (
            "POST",
            "/v1.50/exec/nope/resize?h=1&w=1",
            404,
            "No such exec instance: nope",
        ),
        // A known path with another method is dockerd's 404.
        ("GET", "/v1.50/exec/nope/start", 404, "page not found"),
        ("DELETE", "/v1.50/exec/nope/json", 404, "page not found"),
    ] {
        let (code, body) = curl(&d, method, path, None);
        assert_eq!(code, status, "{method} {path}: {body}");
        assert!(body.contains(text), "{method} {path}: {body}");
    }

    // Create, inspect before start, start detached, inspect after.
    let (code, body) = curl(
        &d,
        "POST",
        &format!("/v1.50/containers/{c}/exec"),
        Some(r#"{"Cmd":["sh","-c","exit 4"],"AttachStdout":true}"#),
    );
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["Id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    let (code, body) = curl(&d, "GET", &format!("/v1.50/exec/{id}/json"), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Running"], false);
    assert_eq!(v["ExitCode"], serde_json::Value::Null);
    assert_eq!(v["ContainerID"], c.as_str());
    assert_eq!(v["Pid"], 0);
    assert_eq!(
        v["ProcessConfig"],
        serde_json::json!({"tty": false, "entrypoint": "sh", "arguments": ["-c", "exit 4"], "privileged": false})
    );
    let (code, body) = curl(
        &d,
        "POST",
        &format!("/v1.50/exec/{id}/resize?h=x&w=1"),
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("invalid resize height \\\"x\\\": invalid syntax"),
        "{body}"
    );
    let (code, body) = curl(
        &d,
        "POST",
        &format!("/v1.50/exec/{id}/start"),
        Some(r#"{"Detach":true}"#),
    );
    assert_eq!((code, body.as_str()), (200, ""));
    let v = wait_for(10, "the detached exec's exit", || {
        let (_, body) = curl(&d, "GET", &format!("/v1.50/exec/{id}/json"), None);
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["ExitCode"] == 4).then_some(v)
    });
    assert_eq!(v["Running"], false);
    assert!(v["Pid"].as_u64().unwrap() > 0, "{v}");
    let (code, body) = curl(
        &d,
        "POST",
        &format!("/v1.50/exec/{id}/start"),
        Some(r#"{"Detach":true}"#),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(&format!("exec command {id} has already run")),
        "{body}"
    );

    // A client that does not ask for the upgrade gets a 200 whose body is
    // the framed output.
    let (_, body) = curl(
        &d,
        "POST",
        &format!("/v1.50/containers/{c}/exec"),
        Some(r#"{"Cmd":["echo","plain"],"AttachStdout":true,"AttachStderr":true}"#),
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["Id"].as_str().unwrap();
    let (code, body) = curl(&d, "POST", &format!("/v1.50/exec/{id}/start"), Some("{}"));
    assert_eq!(code, 200, "{body}");
    assert!(body.ends_with("\u{1}\0\0\0\0\0\0\u{6}plain\n"), "{body:?}");
}

#[test]
fn exec_on_a_stopped_container_fails_with_dockerds_text() {
    let Some((_ctrd, d, c)) = setup() else {
        return;
    };
    d.ok(&["stop", "-t", "1", &c]);
    let err = d.fail(&["exec", &c, "true"]);
    assert!(
        err.contains(&format!(
            "Error response from daemon: container {c} is not running"
        )),
        "{err}"
    );
}

/// Runs `docker exec -it CONTAINER sh` on a pseudo-terminal of 33x77,
/// checks `stty size`, resizes the terminal to 40x100 and checks again,
/// then runs `echo $((6*7)); exit 3`. Prints the CLI's exit status on the
/// last line; exits non-zero (with what it read) when something is
/// missing within the deadline.
const PTY_SCRIPT: &str = r#"
import os, pty, select, signal, struct, sys, time, fcntl, termios
docker, container, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
def winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
pid, fd = pty.fork()
if pid == 0:
    winsize(0, 33, 77)
    os.execv(docker, [docker, "exec", "-it", container, "sh"])
deadline = time.monotonic() + limit
seen = b""
def fail(why):
    os.kill(pid, signal.SIGKILL)
    sys.exit("%s; read %r" % (why, seen))
def read_until(token):
    global seen
    while token not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("timed out waiting for %r" % token)
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                fail("end of output waiting for %r" % token)
            seen += data
def size_shows(rows_cols, mark):
    start = len(seen)
    os.write(fd, ("stty size; echo %s$((1+1))\n" % mark).encode())
    read_until((mark + "2").encode())
    return rows_cols.encode() in seen[start:]
if not size_shows("33 77", "A"):
    fail("initial size not seen")
winsize(fd, 40, 100)
for i in range(50):
    if size_shows("40 100", "B%d-" % i):
        break
    time.sleep(0.1)
else:
    fail("resize not seen")
os.write(fd, b"echo $((6*7)); exit 3\n")
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        fail("timed out waiting for the end")
    ready, _, _ = select.select([fd], [], [], min(left, 0.5))
    if ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            break
        seen += data
_, status = os.waitpid(pid, 0)
tail = seen[seen.rfind(b"exit 3"):]
print(repr(tail))
print(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn exec_tty_session_under_a_pseudo_terminal() {
    let Some((_ctrd, d, c)) = setup() else {
        return;
    };
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PTY_SCRIPT)
        .arg(common::docker_bin())
        .arg(&c)
        .arg("60")
        .env("DOCKER_HOST", d.docker_host())
        .env("DOCKER_CONFIG", d.dir.path().join("cli-config"))
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pty session failed: {stderr}\n{stdout}\n--- shoald log ---\n{}",
        d.log()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"3"),
        "exit code of the session: {stdout}"
    );
    assert!(stdout.contains("42\\r\\n"), "{stdout}");
}
