#!/usr/bin/env bash
# The load run in one command, from the repository root, as root:
#
#   bash compat-tests/bench/load-bench.sh [--engine shoald|dockerd|both] [--services N] [--replicas N]
#       [--pollers N] [--followers N] [--creators N]
#
# A 3-manager lab; 1,000 services of 10 pending replicas by default, created
# and a tenth updated while 100 clients poll as `docker service ps` does and
# 50 `docker service logs -f` follow running tasks (see RESULTS.md, "Load").
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/deps.sh
if [[ " $* " == *" both "* || " $* " == *" dockerd "* ]]; then
  bash compat-tests/bench/reference-dockerd.sh
fi
cargo build -q --release -p engine-api --bin shoald
cargo build -q -p compat-tests --bin shoal-load-bench
export SHOALD_BIN="$PWD/target/release/shoald"
exec target/debug/shoal-load-bench "$@"
