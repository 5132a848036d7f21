#!/usr/bin/env bash
# Runs api_bench.py against shoald and against Debian's dockerd (swarm mode,
# in its own network and mount namespace), on this machine in the same run,
# and prints each figure with the shoald/dockerd ratio.
#
# Usage (root): compat-tests/bench/side-by-side.sh [--services N] [--replicas R] [--commits C]
# Needs docker.io installed (apt-get install docker.io) for the reference dockerd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/api-fixtures/lib/refd.sh"
export PATH="/usr/local/bin:$PATH"
args=("$@")

cargo build -q --release --manifest-path "$repo/Cargo.toml" -p engine-api
T=$(mktemp -d /tmp/shoalbench.XXXXXX)
SHOALD_PID=
cleanup() {
    [ -n "$SHOALD_PID" ] && { kill -TERM "$SHOALD_PID" 2>/dev/null || true; wait "$SHOALD_PID" 2>/dev/null || true; }
    refd_stop
    rm -rf "$T"
}
trap cleanup EXIT

"$repo/compat-tests/scripts/make-test-image.sh" "$T/image.tar" >/dev/null

# shoald
"$repo/target/release/shoald" --host "unix://$T/shoal.sock" --data-root "$T/shoal-data" 2>"$T/shoald.log" &
SHOALD_PID=$!
for _ in $(seq 1 200); do curl -sf --unix-socket "$T/shoal.sock" http://localhost/_ping >/dev/null && break; sleep 0.05; done
DOCKER_HOST="unix://$T/shoal.sock" docker swarm init --advertise-addr 127.0.0.1 >/dev/null
sleep 2
python3 "$here/api_bench.py" --socket "$T/shoal.sock" --pid "$SHOALD_PID" --tag shoal "${args[@]}" >"$T/shoal.json"

# dockerd
refd_start "$T/d" shoalbench
DOCKER_HOST="unix://$T/d/docker.sock" docker load -q -i "$T/image.tar" >/dev/null
DOCKER_HOST="unix://$T/d/docker.sock" docker swarm init --advertise-addr 127.0.0.1 >/dev/null
sleep 2
DPID=$(pgrep -f -- "--data-root $T/d/docker" | head -1)
python3 "$here/api_bench.py" --socket "$T/d/docker.sock" --pid "$DPID" --tag docker "${args[@]}" >"$T/docker.json"

python3 - "$T/shoal.json" "$T/docker.json" <<'PY'
import json, sys
s, d = (json.load(open(p)) for p in sys.argv[1:3])
def row(name, a, b, better):
    r = a / b if b else float("nan")
    print(f"| {name} | {a:.2f} | {b:.2f} | {r:.2f} ({better}) |")
print("| figure | shoald | dockerd | ratio shoald/dockerd |")
print("| --- | --- | --- | --- |")
row("commits per second (secret create)", s["commits"]["per_sec"], d["commits"]["per_sec"], "higher is better")
row("commit p99 ms", s["commits"]["p99_ms"], d["commits"]["p99_ms"], "lower is better")
row("service creates per second", s["service_create_per_sec"], d["service_create_per_sec"], "higher is better")
for k in ("get_services", "get_services_status", "get_tasks"):
    row(f"GET {k[4:]} p50 ms", s[k]["p50_ms"], d[k]["p50_ms"], "lower is better")
    row(f"GET {k[4:]} p99 ms", s[k]["p99_ms"], d[k]["p99_ms"], "lower is better")
row("RSS idle after init MB", s["rss_idle_mb"], d["rss_idle_mb"], "lower is better")
row("RSS with data loaded MB", s["rss_loaded_mb"], d["rss_loaded_mb"], "lower is better")
print(f"tasks stored: shoald {s['tasks_seen']}, dockerd {d['tasks_seen']}")
PY
