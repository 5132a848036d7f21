#!/usr/bin/env bash
# The cluster benchmark in one command, from the repository root, as root:
#
#   bash compat-tests/bench/cluster-bench.sh [--engine shoald|dockerd|both] [--reps N] [--writes N]
#
# Installs what is missing (the test dependencies, and Debian's docker.io for
# the reference dockerd, without starting its service), builds shoald and the
# bench, and runs both engines' labs side by side (see RESULTS.md, "Cluster").
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/deps.sh
bash compat-tests/bench/reference-dockerd.sh
# shoald as users run it (optimized), like the other side-by-side benches.
cargo build -q --release -p engine-api --bin shoald
cargo build -q -p compat-tests --bin shoal-cluster-bench
export SHOALD_BIN="$PWD/target/release/shoald"
exec target/debug/shoal-cluster-bench "$@"
