#!/usr/bin/env bash
# Sends the schema-driven fuzz run (compat-tests/tests/e2e_fuzz_api.rs) to
# Debian's dockerd 20.10 as a one-node swarm manager, in a network and mount
# namespace of its own, and prints what it answered: the status histogram
# per route and every distinct 5xx with a request that gets it.
#
# Usage (root): compat-tests/bench/fuzz-reference.sh [--cases N] [--seed S] [--out DIR]
#   --cases N   cases to send (default 3000, as the test's default)
#   --seed S    the run's seed (default: the test's own)
#   --out DIR   keep the run's output and dockerd's log in DIR
# Needs docker.io installed (compat-tests/bench/reference-dockerd.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/api-fixtures/lib/refd.sh"
# The stock CLI (28.x) must win over Debian's /usr/bin/docker.
export PATH="/usr/local/bin:$PATH"

cases=3000
seed=
out_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --cases) cases=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --out) out_dir=$2; shift 2 ;;
        *) echo "fuzz-reference: unknown flag $1" >&2; exit 2 ;;
    esac
done
bash "$here/reference-dockerd.sh"

T=$(mktemp -d /tmp/shoalfuzz.XXXXXX)
cleanup() {
    refd_stop
    if [ -n "$out_dir" ]; then
        mkdir -p "$out_dir"
        cp "$T"/d/dockerd.log "$T"/fuzz.txt "$out_dir/" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT

refd_start "$T/d" "shoalfuzz$$"
DOCKER_HOST="unix://$T/d/docker.sock" docker swarm init --advertise-addr 127.0.0.1 >/dev/null
export SHOAL_FUZZ_SOCKET="$T/d/docker.sock" SHOAL_FUZZ_CASES="$cases"
[ -z "$seed" ] || export SHOAL_FUZZ_SEED="$seed"
set +e
cargo nextest run --manifest-path "$repo/Cargo.toml" -p compat-tests --test e2e_fuzz_api \
    --no-capture >"$T/fuzz.txt" 2>&1
status=$?
set -e
sed -n '/^fuzz run:/,/^test /p' "$T/fuzz.txt"
if ! kill -0 "$REFD_PID" 2>/dev/null; then
    echo "fuzz-reference: dockerd is gone" >&2
    status=1
fi
if grep -q "^panic\|goroutine .* \[running\]" "$T/d/dockerd.log"; then
    echo "fuzz-reference: dockerd's log holds a panic" >&2
fi
exit $status
