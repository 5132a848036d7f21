//! `shoal-replay`: replays recorded Docker API scenarios against a daemon
//! socket and reports how its answers differ from the recording.
//!
//! ```text
//! shoal-replay --socket /run/shoal.sock --scenarios api-fixtures/scenarios \
//!     [--only 04] [--known api-fixtures/KNOWN_DIFFERENCES.md]
//! ```
//!
//! Ends with `compat: N exchanges, M match, K differ`; exits 1 when a
//! difference is not listed in the known-differences file.

use std::path::PathBuf;

use clap::Parser;
use compat_tests::replay;
use compat_tests::replay::report::KnownDifferences;
use compat_tests::replay::report::Report;

/// Replays api-fixtures scenarios and compares the answers.
#[derive(Parser, Debug)]
#[command(name = "shoal-replay", version)]
struct Args {
    /// Daemon socket to replay against.
    #[arg(long)]
    socket: PathBuf,
    /// Folder of scenario folders.
    #[arg(long, default_value = "api-fixtures/scenarios")]
    scenarios: PathBuf,
    /// Only scenarios whose name starts with this (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Accepted differences (markdown table of keys and reasons).
    #[arg(long)]
    known: Option<PathBuf>,
    /// Send requests back to back instead of at the recorded times.
    #[arg(long)]
    no_pace: bool,
    /// Test image tar (docker-archive); built with make-test-image.sh when absent.
    #[arg(long)]
    image_tar: Option<PathBuf>,
    /// Shell command run before each scenario, with the scenario name as $1
    /// (validate mode uses it to restart the reference daemon).
    #[arg(long)]
    before_each: Option<String>,
    /// Also print accepted differences.
    #[arg(long)]
    show_known: bool,
    /// Print markdown rows for unlisted differences (for KNOWN_DIFFERENCES.md).
    #[arg(long)]
    emit_known: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios = replay::cassette::load_all(&args.scenarios, &args.only)?;
    anyhow::ensure!(
        !scenarios.is_empty(),
        "no scenarios under {}",
        args.scenarios.display()
    );
    let known = match &args.known {
        Some(p) => KnownDifferences::load(p)?,
        None => KnownDifferences::default(),
    };
    let tmp = tempfile::tempdir()?;
    let image_tar = match &args.image_tar {
        Some(p) => p.clone(),
        None => {
            let p = tmp.path().join("test-image.tar");
            replay::build_test_image(&args.scenarios, &p)?;
            p
        }
    };
    let mut opts = replay::Options::new(&args.socket);
    opts.pace = !args.no_pace;
    opts.image_tar = Some(image_tar);
    let mut report = Report::default();
    for scenario in &scenarios {
        if let Some(cmd) = &args.before_each {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .arg("sh")
                .arg(&scenario.name)
                .status()?;
            anyhow::ensure!(
                status.success(),
                "--before-each failed for {}",
                scenario.name
            );
        }
        eprintln!(
            "== {} ({} exchanges)",
            scenario.name,
            scenario.exchanges.len()
        );
        let mut one = Report::default();
        for r in replay::replay_scenario(scenario, &opts).await {
            one.push(r);
        }
        print!("{}", one.render(&known, args.show_known));
        eprintln!("   {}", Report::closing_line(&one.summary(&known)));
        report.results.extend(one.results);
    }
    let summary = report.summary(&known);
    if args.emit_known {
        print!("{}", report.unlisted_rows(&known));
    }
    println!("{}", Report::closing_line(&summary));
    if summary.unlisted > 0 {
        eprintln!(
            "shoal-replay: {} difference(s) not listed as known",
            summary.unlisted
        );
        std::process::exit(1);
    }
    Ok(())
}
