//! `shoal-cluster-bench`: the same cluster scenarios on a lab of shoald nodes
//! and on a lab of Debian dockerd nodes, side by side.
//!
//! One command from the repository root (installs what is missing, builds,
//! runs as root):
//!
//! ```text
//! bash compat-tests/bench/cluster-bench.sh [--engine shoald|dockerd|both] [--reps N]
//! ```
//!
//! It prints a Markdown table of medians with the ratio shoald/dockerd,
//! the raw samples and every scenario that failed with its reason. The
//! scenarios are described in `compat-tests/src/bench/mod.rs`.

use clap::Parser;
use compat_tests::bench;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "shoal-cluster-bench",
    about = "shoald and dockerd clusters side by side"
)]
struct Args {
    /// shoald, dockerd or both.
    #[arg(long, default_value = "both")]
    engine: String,
    /// Repetitions per engine (each on a fresh 5-node lab).
    #[arg(long, default_value_t = 3)]
    reps: u32,
    /// Sequential secret writes in scenario d.
    #[arg(long, default_value_t = 300)]
    writes: u32,
    /// Replicas of scenario g, spread over all nodes (0: not run).
    #[arg(long, default_value_t = 0)]
    tasks: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let engines = match args.engine.as_str() {
        "both" => vec![Engine::Shoald, Engine::Dockerd],
        one => vec![one.parse::<Engine>()?],
    };
    anyhow::ensure!((1..=50).contains(&args.reps), "--reps must be 1 to 50");
    let mut runnable = Vec::new();
    for e in engines.iter().copied() {
        match Lab::missing(e) {
            Some(why) => eprintln!("{e}: cannot run here: {why}"),
            None => runnable.push(e),
        }
    }
    let opts = bench::Options {
        engines: runnable,
        reps: args.reps,
        writes: args.writes.clamp(10, 100_000),
        tasks: args.tasks.min(5_000),
    };
    let figs = bench::run(&opts);
    println!("{}", bench::report::render(&figs, &engines));
    Ok(())
}
