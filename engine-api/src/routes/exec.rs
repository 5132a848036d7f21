//! `docker exec` on task containers: `POST /containers/{id}/exec`,
//! `POST /exec/{id}/start`, `POST /exec/{id}/resize` and
//! `GET /exec/{id}/json`.
//!
//! A start that is not detached takes the connection over as dockerd
//! does ([`crate::server::hijack`]): the process's output goes to the
//! client (framed per stream without a TTY, raw with one) and the client's
//! input to the process. Once the output has ended, the exit code is
//! recorded before the connection closes, so the CLI's `GET
//! /exec/{id}/json` that follows reads it.

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::Request;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Extension;
use axum::Json;
use axum::Router;
use base64::Engine;
use runtime::view::exec::ExecConfig;
use runtime::view::exec::ExecInfo;
use runtime::view::exec::LiveExec;
use runtime::view::exec::Session;
use runtime::view::ExecError;
use runtime::view::Execs;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use super::containers::config_user;
use super::containers::find;
use super::containers::node_env;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::server::hijack::Hijack;
use crate::server::hijack::Input;
use crate::server::hijack::Output;
use crate::server::hijack::MUX_STREAM;
use crate::server::hijack::RAW_STREAM;
use crate::server::version::ApiVersion;
use crate::AppState;

/// The largest request body read for a create or start.
const BODY_LIMIT: usize = 1 << 20;
/// Bytes read from a process's pipe per frame.
const CHUNK: usize = 32 * 1024;

/// The exec routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

/// `POST /containers/{id}/exec` body (Go's field names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    user: Option<String>,
    privileged: Option<bool>,
    tty: Option<bool>,
    console_size: Option<[u32; 2]>,
    attach_stdin: Option<bool>,
    attach_stderr: Option<bool>,
    attach_stdout: Option<bool>,
    detach_keys: Option<String>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    cmd: Option<Vec<String>>,
}

/// `POST /exec/{id}/start` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: Option<bool>,
    tty: Option<bool>,
    console_size: Option<[u32; 2]>,
}

/// A JSON body where an empty one means all defaults, as dockerd reads it.
fn decode_or_default<T: DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::body::decode(bytes)
}

/// `POST /containers/{id}/exec`.
async fn create(
    State(s): State<AppState>,
    Extension(execs): Extension<Execs>,
    Extension(version): Extension<ApiVersion>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: CreateBody = decode_or_default(&body)?;
    let cfg = ExecConfig {
        cmd: b.cmd.unwrap_or_default(),
        env: b.env.unwrap_or_default(),
        user: b.user.unwrap_or_default(),
        working_dir: b.working_dir.unwrap_or_default(),
        tty: b.tty.unwrap_or(false),
        privileged: b.privileged.unwrap_or(false),
        attach_stdin: b.attach_stdin.unwrap_or(false),
        attach_stdout: b.attach_stdout.unwrap_or(false),
        attach_stderr: b.attach_stderr.unwrap_or(false),
        detach_keys: b.detach_keys.unwrap_or_default(),
        console_size: b.console_size.filter(|_| version.at_least(42)),
    };
    // The command is checked before the container is looked up.
    if cfg.cmd.is_empty() {
        return Err(ExecError::NoCommand.into());
    }
    let c = find(&s, &name).await?;
    let id = execs.create(&c, &name, cfg, &config_user(&s, &c))?;
    if let Some(e) = execs.record(&id) {
        let action = format!("exec_create: {}", e.command_line());
        s.runtime.exec_event(&c.id, &action, &id, &[]).await;
    }
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))).into_response())
}

/// What a started session needs besides its connection.
struct Start {
    rt: runtime::Containerd,
    execs: Execs,
    live: LiveExec,
    console: Option<[u32; 2]>,
    /// Frame the output per stream (no TTY in the start request).
    mux: bool,
}

/// `POST /exec/{id}/start`.
async fn start(
    State(s): State<AppState>,
    Extension(execs): Extension<Execs>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let hijack = Hijack::new(&mut req);
    let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let b: StartBody = decode_or_default(&body)?;
    let live = execs.live(&s.runtime, &node_env(&s), &id).await?;
    let tty = b.tty.unwrap_or(false);
    let console = b.console_size.filter(|_| tty && version.at_least(42));
    if b.detach.unwrap_or(false) {
        execs.start(&s.runtime, &live, console, false).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let ctx = Start {
        rt: s.runtime.clone(),
        execs,
        live,
        console,
        mux: !tty,
    };
    let content_type = if tty || !version.at_least(42) {
        RAW_STREAM
    } else {
        MUX_STREAM
    };
    Ok(hijack.respond(content_type, |input, output| run(ctx, input, output)))
}

/// Starts the process and copies its stdio over the connection. A start
/// that fails after the connection was taken over is reported in the
/// stream, as dockerd does.
async fn run(ctx: Start, input: Option<Input>, mut output: Output) {
    let started = ctx.execs.start(&ctx.rt, &ctx.live, ctx.console, true).await;
    match started {
        Ok(session) => copy(session, input, output, ctx.mux).await,
        Err(e) => {
            tracing::debug!(exec = %ctx.live.exec().id(), error = %e, "exec start failed");
            let _ = write_chunk(&mut output, ctx.mux, 1, format!("{e}\r\n").as_bytes()).await;
            let _ = output.shutdown().await;
        }
    }
}

/// One piece of output: with `mux`, behind dockerd's 8-byte header
/// (stream, three zero bytes, big-endian length).
pub(crate) async fn write_chunk<W: AsyncWrite + Unpin>(
    w: &mut W,
    mux: bool,
    stream: u8,
    data: &[u8],
) -> std::io::Result<()> {
    if mux {
        let mut framed = Vec::with_capacity(data.len() + 8);
        framed.extend_from_slice(&[stream, 0, 0, 0]);
        framed.extend_from_slice(&(data.len() as u32).to_be_bytes());
        framed.extend_from_slice(data);
        w.write_all(&framed).await?;
    } else {
        w.write_all(data).await?;
    }
    w.flush().await
}

async fn read_some(rx: &mut Option<pipe::Receiver>, buf: &mut [u8]) -> Option<usize> {
    match rx {
        Some(r) => match r.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// Copies the client's input to the process (ending it when the client
/// half-closes or goes) and the process's output to the client until the
/// process's pipes end; then waits for the exit code before closing. A
/// client that went away stops getting output, but the pipes are still
/// drained so the process never blocks on them.
async fn copy(mut session: Session, input: Option<Input>, mut output: Output, mux: bool) {
    let feeder = match (session.stdin.take(), input) {
        (Some(mut stdin), Some(mut input)) => Some(tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            while let Ok(n @ 1..) = input.read(&mut buf).await {
                if stdin.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            stdin.close().await;
        })),
        (Some(stdin), None) => {
            stdin.close().await;
            None
        }
        (None, _) => None,
    };
    let wanted_streams = session.attached();
    let (mut stdout, mut stderr) = (session.stdout.take(), session.stderr.take());
    let (mut out_buf, mut err_buf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut connected = true;
    while stdout.is_some() || stderr.is_some() {
        let (stream, wanted, data) = tokio::select! {
            n = read_some(&mut stdout, &mut out_buf) => match n {
                Some(n) => (1u8, wanted_streams.0, &out_buf[..n]),
                None => { stdout = None; continue; }
            },
            n = read_some(&mut stderr, &mut err_buf) => match n {
                Some(n) => (2u8, wanted_streams.1, &err_buf[..n]),
                None => { stderr = None; continue; }
            },
        };
        if connected && wanted && write_chunk(&mut output, mux, stream, data).await.is_err() {
            connected = false;
        }
    }
    if session.wait_exit().await.is_none() {
        tracing::debug!("exec output ended before its process exited");
    }
    let _ = output.shutdown().await;
    if let Some(f) = feeder {
        f.abort();
    }
}

/// `POST /exec/{id}/resize?h=&w=`.
async fn resize(
    State(s): State<AppState>,
    Extension(execs): Extension<Execs>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let height = dimension(&q, "h", "height")?;
    let width = dimension(&q, "w", "width")?;
    execs
        .resize(&s.runtime, &node_env(&s), &id, height, width)
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// A `h`/`w` value as dockerd parses it (unsigned 32-bit, no sign).
pub(crate) fn dimension(q: &crate::body::Query, key: &str, what: &str) -> ApiResult<u32> {
    let raw = q.get(key).map_or("", String::as_str);
    let (digits, negative) = match raw.strip_prefix('-') {
        Some(d) => (d, true),
        None => (raw, false),
    };
    let why = if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        "invalid syntax"
    } else if negative || digits.parse::<u32>().is_err() {
        "value out of range"
    } else {
        return digits
            .parse::<u32>()
            .map_err(|e| ApiError::bad_request(e.to_string()));
    };
    Err(ApiError::bad_request(format!(
        "invalid resize {what} {}: {why}",
        serde_json::Value::from(raw)
    )))
}

/// `GET /exec/{id}/json` in dockerd's field order.
#[derive(Debug, Serialize)]
struct InspectJson {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Running")]
    running: bool,
    #[serde(rename = "ExitCode")]
    exit_code: Option<i64>,
    #[serde(rename = "ProcessConfig")]
    process_config: ProcessConfigJson,
    #[serde(rename = "OpenStdin")]
    open_stdin: bool,
    #[serde(rename = "OpenStderr")]
    open_stderr: bool,
    #[serde(rename = "OpenStdout")]
    open_stdout: bool,
    #[serde(rename = "CanRemove")]
    can_remove: bool,
    #[serde(rename = "ContainerID")]
    container_id: String,
    #[serde(rename = "DetachKeys")]
    detach_keys: String,
    #[serde(rename = "Pid")]
    pid: u32,
}

#[derive(Debug, Serialize)]
struct ProcessConfigJson {
    tty: bool,
    entrypoint: String,
    arguments: Vec<String>,
    privileged: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
}

fn inspect_json(e: ExecInfo) -> InspectJson {
    InspectJson {
        id: e.id,
        running: e.running,
        exit_code: e.exit_code,
        process_config: ProcessConfigJson {
            tty: e.tty,
            entrypoint: e.entrypoint,
            arguments: e.arguments,
            privileged: e.privileged,
            user: e.user,
        },
        open_stdin: e.open_stdin,
        open_stderr: e.open_stderr,
        open_stdout: e.open_stdout,
        can_remove: false,
        container_id: e.container_id,
        // Go writes a byte slice as base64.
        detach_keys: base64::engine::general_purpose::STANDARD.encode(&e.detach_keys),
        pid: e.pid,
    }
}

/// `GET /exec/{id}/json`.
async fn inspect(
    State(s): State<AppState>,
    Extension(execs): Extension<Execs>,
    Path(id): Path<String>,
) -> ApiResult<Json<InspectJson>> {
    Ok(Json(inspect_json(execs.inspect(&s.runtime, &id).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_carry_stream_and_length() {
        let mut out = Vec::new();
        write_chunk(&mut out, true, 2, b"oops\n").await.unwrap();
        write_chunk(&mut out, false, 1, b"raw").await.unwrap();
        assert_eq!(out, b"\x02\0\0\0\0\0\0\x05oops\nraw");
    }

    #[test]
    fn resize_dimensions_parse_like_dockerd() {
        let q = |v: &str| {
            let mut q = crate::body::Query::new();
            q.insert("h".into(), v.into());
            q
        };
        assert_eq!(dimension(&q("40"), "h", "height").unwrap(), 40);
        assert_eq!(
            dimension(&q("x"), "h", "height").unwrap_err().message,
            "invalid resize height \"x\": invalid syntax"
        );
        assert_eq!(
            dimension(&q("-1"), "h", "height").unwrap_err().message,
            "invalid resize height \"-1\": value out of range"
        );
        assert_eq!(
            dimension(&crate::body::Query::new(), "h", "height")
                .unwrap_err()
                .message,
            "invalid resize height \"\": invalid syntax"
        );
    }

    #[test]
    fn inspect_has_dockerds_fields() {
        let v = serde_json::to_value(inspect_json(ExecInfo {
            id: "e".into(),
            running: false,
            exit_code: Some(3),
            pid: 42,
            tty: true,
            entrypoint: "sh".into(),
            arguments: vec![],
            privileged: false,
            user: String::new(),
            open_stdin: true,
            open_stdout: true,
            open_stderr: true,
            container_id: "c".into(),
            detach_keys: vec![16, 17],
        }))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "ID": "e", "Running": false, "ExitCode": 3,
                "ProcessConfig": {"tty": true, "entrypoint": "sh", "arguments": [], "privileged": false},
                "OpenStdin": true, "OpenStderr": true, "OpenStdout": true, "CanRemove": false,
                "ContainerID": "c", "DetachKeys": "EBE=", "Pid": 42
            })
        );
    }
}
