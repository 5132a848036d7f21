#!/usr/bin/env bash
# Runs every check and test: format, lints, unit tests, end-to-end tests that
# drive the stock docker CLI (and the Python SDK) against live shoald daemons,
# and the replay of recorded dockerd traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
export SHOALD_BIN="$PWD/target/debug/shoald"
# deps.sh installed containerd: tests that need it must not skip.
export SHOAL_REQUIRE_CONTAINERD=1
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
# Further suites (Python SDK, replay) hook in here.
for extra in scripts/test.d/*.sh; do
  [ -e "$extra" ] || continue
  echo "== $extra"
  bash "$extra"
done
