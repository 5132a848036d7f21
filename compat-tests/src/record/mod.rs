//! The recorder: a proxy that writes Docker API traffic as a cassette.
//!
//! [`format`] defines the JSON line format shared with the replayer;
//! [`proxy`] is the man in the middle; [`run`] ties them to a file.

pub mod format;
pub mod proxy;

use std::io::Write;
use std::path::Path;

use tokio::net::UnixListener;
use tokio::sync::mpsc;

/// Runs the recorder until SIGINT or SIGTERM: listens on `listen`, proxies to
/// `upstream`, appends one line per exchange to `out` (flushed per line, so
/// a killed recorder leaves a valid file). `cap` bounds the body bytes kept.
pub async fn run(
    listen: &Path,
    upstream: &Path,
    out: &Path,
    cap: usize,
    append: bool,
) -> anyhow::Result<()> {
    if listen.exists() {
        std::fs::remove_file(listen)?;
    }
    let listener = UnixListener::bind(listen)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(out)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<format::Exchange>();
    let shared = proxy::Shared::new(upstream.to_path_buf(), tx, cap);
    let server = tokio::spawn(proxy::serve(listener, shared));
    let writer = async move {
        while let Some(mut ex) = rx.recv().await {
            format::scrub(&mut ex);
            let mut line = serde_json::to_string(&ex)?;
            line.push('\n');
            file.write_all(line.as_bytes())?;
            file.flush()?;
        }
        anyhow::Ok(())
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = writer => r?,
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
        r = server => { r??; }
    }
    let _ = std::fs::remove_file(listen);
    Ok(())
}
