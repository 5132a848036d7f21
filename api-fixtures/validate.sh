#!/bin/bash
# Validate mode: replays every scenario against a fresh reference dockerd
# (the daemon the fixtures were recorded from) and reports the differences.
# A dockerd replayed against its own recording should (nearly) all match;
# what does not is run-to-run noise that rules.toml must normalize.
#
# Usage (as root): api-fixtures/validate.sh [shoal-replay options, e.g. --only 04 --show-known]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "validate.sh: must run as root" >&2; exit 1; }
export PATH="/usr/local/bin:$PATH"

cargo build -q --manifest-path "$repo/Cargo.toml" -p compat-tests --bin shoal-replay
T=$(mktemp -d /tmp/shoalval.XXXXXX)
NS=shoalval
cleanup() {
    bash "$here/lib/refd-ctl.sh" stop "$T/d" "$NS" || true
    rm -rf "$T" 2>/dev/null || true
}
trap cleanup EXIT

"$repo/compat-tests/scripts/make-test-image.sh" "$T/image.tar" >/dev/null
bash "$here/lib/refd-ctl.sh" start "$T/d" "$NS"
"$repo/target/debug/shoal-replay" \
    --socket "$T/d/docker.sock" \
    --scenarios "$here/scenarios" \
    --known "$here/VALIDATE_KNOWN.md" \
    --image-tar "$T/image.tar" \
    --before-each "bash '$here/lib/refd-ctl.sh' reset '$T/d' '$NS'" \
    "$@"
