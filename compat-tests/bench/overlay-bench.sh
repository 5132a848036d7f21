#!/usr/bin/env bash
# The overlay benchmark in one command, from the repository root, as root:
#
#   bash compat-tests/bench/overlay-bench.sh [--engine shoald|dockerd|both] [--reps N] [--conns N] [--mib N]
#
# Installs what is missing (the test dependencies, and Debian's docker.io for
# the reference dockerd, without starting its service), builds shoald and the
# bench, and runs each engine on a 3-node lab: task-to-task traffic across
# nodes (direct, VIP, routing mesh), the same over an encrypted overlay, and
# a scale from 1 to 10 (see RESULTS.md, "Overlay across nodes").
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/deps.sh
bash compat-tests/bench/reference-dockerd.sh
# shoald as users run it (optimized): the encrypted tunnel's user-space
# AES-GCM in a debug build would measure the build, not the design.
cargo build -q --release -p engine-api --bin shoald
cargo build -q -p compat-tests --bin shoal-overlay-bench
export SHOALD_BIN="$PWD/target/release/shoald"
exec target/debug/shoal-overlay-bench "$@"
