//! The side-by-side cluster benchmark behind `shoal-cluster-bench`: the same
//! scenarios, driven by the stock CLI (and a plain HTTP client where the
//! CLI's own cost would dominate), on a lab of shoald nodes and on a lab of
//! Debian dockerd nodes, reported as figures with the ratio
//! shoald/dockerd.
//!
//! One repetition builds one fresh 5-node lab per engine and runs, in
//! order (each step needs the cluster the steps before it made):
//! - a1: `swarm init` on node1, node2 and node3 join as managers;
//! - d: sequential secret writes through the leader (3 managers);
//! - e: 30 replicas of the test image over those 3 nodes;
//! - a2: node4 and node5 join as workers; `node ls` on node2 shows 5 Ready,
//!   1 Leader, 2 Reachable;
//! - f: idle memory of a manager and a worker in that 3+2 cluster;
//! - c: a replicated service with a task on every node; node4 killed whole,
//!   then node5's link set down: time until all replicas run elsewhere;
//! - b: writes every 100 ms through a manager while the leader's node is
//!   killed: time to the first acknowledged write after the kill, and
//!   acknowledged writes missing afterwards;
//! - g (with `--tasks N`, after f): N replicas over all 5 nodes until all
//!   run, with the per-task timeline (see [`spread`]).

pub mod load;
pub mod report;
pub mod scenarios;
pub mod spread;

use std::collections::BTreeMap;

use crate::cluster::Engine;

/// One figure's samples for one engine.
pub type Samples = Vec<f64>;

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Figures {
    /// Samples per (figure, engine).
    pub samples: BTreeMap<(String, Engine), Samples>,
    /// What failed: (engine, repetition, scenario, why).
    pub failures: Vec<Failure>,
}

/// A scenario that did not produce its figures.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The engine of the lab.
    pub engine: Engine,
    /// The repetition (from 1).
    pub rep: u32,
    /// The scenario's letter and step, e.g. `a1`.
    pub scenario: String,
    /// Why.
    pub why: String,
}

impl Figures {
    /// Adds one sample of `figure` for `engine`.
    pub fn add(&mut self, figure: &str, engine: Engine, value: f64) {
        self.samples
            .entry((figure.to_string(), engine))
            .or_default()
            .push(value);
    }

    /// Records a failed or skipped scenario.
    pub fn fail(&mut self, engine: Engine, rep: u32, scenario: &str, why: String) {
        self.failures.push(Failure {
            engine,
            rep,
            scenario: scenario.to_string(),
            why,
        });
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engines, in order.
    pub engines: Vec<Engine>,
    /// Repetitions per engine.
    pub reps: u32,
    /// Secret writes in scenario d.
    pub writes: u32,
    /// Replicas of scenario g (0: not run).
    pub tasks: u32,
}

/// Runs every repetition for every engine and returns the figures. Never
/// panics on a scenario's failure: it is recorded and the run goes on.
pub fn run(opts: &Options) -> Figures {
    let mut figs = Figures::default();
    for &engine in &opts.engines {
        for rep in 1..=opts.reps {
            eprintln!("== {engine}: repetition {rep} of {}", opts.reps);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut local = Figures::default();
                scenarios::repetition(engine, rep, opts, &mut local);
                local
            }));
            match outcome {
                Ok(local) => merge(&mut figs, local),
                Err(p) => {
                    let why = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into());
                    figs.fail(engine, rep, "*", why);
                }
            }
        }
    }
    figs
}

fn merge(into: &mut Figures, from: Figures) {
    for (k, v) in from.samples {
        into.samples.entry(k).or_default().extend(v);
    }
    into.failures.extend(from.failures);
}
