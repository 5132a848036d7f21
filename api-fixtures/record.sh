#!/bin/bash
# Re-records the API fixtures against a reference dockerd (Debian docker.io)
# driven by the stock docker CLI, through shoal-record.
#
# Usage (as root): api-fixtures/record.sh [NN ...]   (default: every scenario)
#
# For each scenario: a fresh dockerd + containerd in network namespace
# `shoalrec` (own mount namespace, private sockets under a temp dir), the test
# image loaded directly (not recorded), shoal-record in front of the daemon
# socket, then scenarios/NN-name/script.sh with DOCKER_HOST pointing at the
# proxy. Writes scenarios/NN-name/traffic.jsonl and cli.log. Everything it
# starts is stopped by PID at the end, and the netns is removed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
source "$here/lib/refd.sh"

[ "$(id -u)" = 0 ] || { echo "record.sh: must run as root" >&2; exit 1; }
export PATH="/usr/local/bin:$PATH"   # the stock CLI comes first

cargo build -q --manifest-path "$repo/Cargo.toml" -p compat-tests --bin shoal-record
record_bin="$repo/target/debug/shoal-record"

T=$(mktemp -d /tmp/shoalrec.XXXXXX)
REC_PID=
cleanup() {
    if [ -n "$REC_PID" ]; then
        kill -TERM "$REC_PID" 2>/dev/null || true
        wait "$REC_PID" 2>/dev/null || true
    fi
    refd_stop
    rm -rf "$T" 2>/dev/null || true
}
trap cleanup EXIT

"$repo/compat-tests/scripts/make-test-image.sh" "$T/image.tar" >/dev/null

selected=("$@")
for dir in "$here"/scenarios/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    if [ ${#selected[@]} -gt 0 ]; then
        keep=
        for s in "${selected[@]}"; do
            [[ "$name" == "$s"* ]] && keep=1
        done
        [ -n "$keep" ] || continue
    fi
    echo "== $name"
    if [ -n "${REFD_PID:-}" ]; then
        refd_reset
    else
        refd_start "$T/d" shoalrec
    fi
    DOCKER_HOST="unix://$T/d/docker.sock" docker load -q -i "$T/image.tar" >/dev/null

    work="$T/work-$name"
    mkdir -p "$work"
    "$record_bin" --listen "$T/proxy.sock" --upstream "$T/d/docker.sock" --out "$dir/traffic.jsonl" &
    REC_PID=$!
    for _ in $(seq 1 100); do [ -S "$T/proxy.sock" ] && break; sleep 0.05; done

    (
        cd "$work"
        export DOCKER_HOST="unix://$T/proxy.sock" SOCK="$T/proxy.sock" WORK="$work" SCENARIO="$dir"
        export DOCKER_CONFIG="$work/.docker" DOCKER_CLI_HINTS=false
        timeout 900 bash -x "$dir/script.sh"
    ) >"$dir/cli.log" 2>&1 || echo "   (script exit $?)"
    sleep 0.5
    kill -TERM "$REC_PID" 2>/dev/null || true
    wait "$REC_PID" 2>/dev/null || true
    REC_PID=
    sed -i "s|$T|\$T|g" "$dir/cli.log" "$dir/traffic.jsonl"
    echo "   $(wc -l <"$dir/traffic.jsonl") exchanges"
done
