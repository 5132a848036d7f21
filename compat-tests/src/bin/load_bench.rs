//! `shoal-load-bench`: many services on a 3-manager lab while clients poll
//! and follow logs as the CLI does (see `compat_tests::bench::load`).
//!
//! ```text
//! bash compat-tests/bench/load-bench.sh [--engine shoald|dockerd|both] [--services N] [--replicas N]
//! ```

use clap::Parser;
use compat_tests::bench::load;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "shoal-load-bench",
    about = "many services under polling clients"
)]
struct Args {
    /// shoald, dockerd or both.
    #[arg(long, default_value = "shoald")]
    engine: String,
    /// Services to create (each kept pending).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Replicas of each.
    #[arg(long, default_value_t = 10)]
    replicas: usize,
    /// Concurrent `service ps` pollers.
    #[arg(long, default_value_t = 100)]
    pollers: usize,
    /// Concurrent `service logs -f` followers.
    #[arg(long, default_value_t = 50)]
    followers: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 4)]
    creators: usize,
    /// Seconds the clients go on once everything is listed.
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let engines = match a.engine.as_str() {
        "both" => vec![Engine::Shoald, Engine::Dockerd],
        one => vec![one.parse::<Engine>()?],
    };
    anyhow::ensure!(
        (1..=5000).contains(&a.services) && (1..=50).contains(&a.replicas),
        "--services 1-5000, --replicas 1-50"
    );
    let opts = load::Options {
        services: a.services,
        replicas: a.replicas,
        pollers: a.pollers.clamp(1, 500),
        followers: a.followers.clamp(1, 200),
        creators: a.creators.clamp(1, 16),
        hold: std::time::Duration::from_secs(a.hold_secs.min(3600)),
    };
    let mut failed = false;
    for e in engines {
        if let Some(why) = Lab::missing(e) {
            eprintln!("{e}: cannot run here: {why}");
            continue;
        }
        eprintln!("== {e}: {opts:?}");
        let out = load::run(e, &opts)?;
        println!("\n| {e} | value |\n| --- | --- |");
        for (name, v) in &out.figures {
            println!("| {name} | {v:.1} |");
        }
        for f in &out.failures {
            println!("FAILED: {f}");
            failed = true;
        }
    }
    anyhow::ensure!(!failed, "some checks failed");
    Ok(())
}
