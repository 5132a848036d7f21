//! `shoal-record`: records Docker API traffic between a client and a daemon.
//!
//! ```text
//! shoal-record --listen /tmp/proxy.sock --upstream /var/run/docker.sock --out traffic.jsonl
//! DOCKER_HOST=unix:///tmp/proxy.sock docker info
//! ```

use std::path::PathBuf;

use clap::Parser;

/// Unix-socket proxy that writes each HTTP exchange as one JSON line.
#[derive(Parser, Debug)]
#[command(name = "shoal-record", version)]
struct Args {
    /// Socket to listen on (clients connect here).
    #[arg(long)]
    listen: PathBuf,
    /// Daemon socket to forward to.
    #[arg(long)]
    upstream: PathBuf,
    /// Cassette file (JSON lines).
    #[arg(long)]
    out: PathBuf,
    /// Body bytes kept per exchange.
    #[arg(long, default_value_t = compat_tests::record::proxy::DEFAULT_CAP)]
    cap: usize,
    /// Append to the cassette instead of truncating it.
    #[arg(long)]
    append: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    compat_tests::record::run(
        &args.listen,
        &args.upstream,
        &args.out,
        args.cap,
        args.append,
    )
    .await
}
