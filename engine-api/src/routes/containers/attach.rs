//! `POST /containers/{id}/attach`: a standalone container's output as it
//! comes, and the client's input to it, over a hijacked connection, as
//! `docker attach` and `docker run` without `-d` use it. Without a
//! terminal the output is multiplexed (dockerd's 8-byte frame headers).

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::Request;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use runtime::standalone::Attached;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;

use super::find;
use crate::body::query_bool;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::routes::exec::write_chunk;
use crate::server::hijack::Hijack;
use crate::server::hijack::Input;
use crate::server::hijack::Output;
use crate::server::hijack::MUX_STREAM;
use crate::server::hijack::RAW_STREAM;
use crate::server::version::ApiVersion;
use crate::AppState;

/// Bytes read from the client at a time.
const CHUNK: usize = 32 * 1024;

/// Which streams the client asked for.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=`.
pub(super) async fn attach(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
    mut req: Request,
) -> ApiResult<Response> {
    let hijack = Hijack::new(&mut req);
    let c = find(&s, &id).await?;
    if !c.standalone {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "container {} belongs to swarm task {}: use docker service logs",
                c.name,
                c.task_id()
            ),
        ));
    }
    let wanted = Wanted {
        stdin: query_bool(&q, "stdin"),
        stdout: query_bool(&q, "stdout"),
        stderr: query_bool(&q, "stderr"),
    };
    // `stream=0` asks only for what was written (with `logs=1`); clients
    // that leave `stream` out get the live output, as they always did here.
    let live = !q.contains_key("stream") || query_bool(&q, "stream");
    // Subscribed before the log is read, so no line falls between the two.
    let attached = match live {
        true => Some(s.standalone.attach(&c).await?),
        false => None,
    };
    let past = if query_bool(&q, "logs") {
        runtime::logs::tasks::backlog(&c, Default::default())
            .await
            .0
    } else {
        Vec::new()
    };
    let mux = !attached.as_ref().map_or(c.spec.tty, |a| a.tty);
    let content_type = if !mux || !version.at_least(42) {
        RAW_STREAM
    } else {
        MUX_STREAM
    };
    Ok(
        hijack.respond(content_type, move |input, mut output| async move {
            // dockerd's `logs=1`: what the container wrote so far, first.
            for e in past {
                let (stream, want) = match e.source {
                    runtime::logs::reader::Source::Stderr => (2u8, wanted.stderr),
                    runtime::logs::reader::Source::Stdout => (1u8, wanted.stdout),
                };
                if want
                    && write_chunk(&mut output, mux, stream, &e.line)
                        .await
                        .is_err()
                {
                    return;
                }
            }
            match attached {
                Some(a) => session(a, wanted, mux, input, output).await,
                None => {
                    let _ = output.shutdown().await;
                }
            }
        }),
    )
}

/// Copies the client's input into the container and the container's
/// output to the client until the run ends.
async fn session(
    mut attached: Attached,
    wanted: Wanted,
    mux: bool,
    input: Option<Input>,
    mut output: Output,
) {
    let feeder = match input {
        Some(mut input) if wanted.stdin && attached.open_stdin => {
            let stdin = attached.stdin();
            Some(tokio::spawn(async move {
                let mut buf = vec![0u8; CHUNK];
                while let Ok(n @ 1..) = input.read(&mut buf).await {
                    if !stdin.write(&buf[..n]).await {
                        break;
                    }
                }
                stdin.end().await;
            }))
        }
        _ => None,
    };
    let mut connected = true;
    loop {
        let Some(chunk) = attached.next().await else {
            break;
        };
        let (stream, want) = if chunk.stderr {
            (2u8, wanted.stderr)
        } else {
            (1u8, wanted.stdout)
        };
        if connected
            && want
            && write_chunk(&mut output, mux, stream, &chunk.data)
                .await
                .is_err()
        {
            connected = false;
        }
    }
    let _ = output.shutdown().await;
    if let Some(f) = feeder {
        f.abort();
    }
}
