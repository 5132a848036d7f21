#!/usr/bin/env bash
# Runs api_bench.py against shoald and against Debian's dockerd (swarm mode,
# in its own network and mount namespace), on this machine in the same run,
# one daemon after the other, and prints each figure with the shoald/dockerd
# ratio as a Markdown table.
#
# Usage (root): compat-tests/bench/side-by-side.sh [--out DIR] [--no-build]
#                   [--services N] [--replicas R] [--commits C] [--list-requests L]
#   --out DIR    keep shoal.json, docker.json, table.md and the daemon logs in DIR
#   --no-build   use the existing target/release/shoald
#   other flags go to api_bench.py (defaults: 1000 services x 10 replicas,
#   300 secret creates + 300 removes, 50 requests per list endpoint)
# Needs docker.io installed (apt-get install docker.io) for the reference dockerd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/api-fixtures/lib/refd.sh"
# The stock CLI (28.x) must win over Debian's /usr/bin/docker.
export PATH="/usr/local/bin:$PATH"

out_dir=
build=1
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out_dir=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
[ -z "$out_dir" ] || mkdir -p "$out_dir"
command -v dockerd >/dev/null || { echo "side-by-side: no dockerd (apt-get install docker.io)" >&2; exit 1; }

if [ "$build" = 1 ]; then
    cargo build -q --release --manifest-path "$repo/Cargo.toml" -p engine-api --bin shoald
fi
shoald_bin=${CARGO_TARGET_DIR:-$repo/target}/release/shoald
T=$(mktemp -d /tmp/shoalbench.XXXXXX)
SHOALD_PID=
cleanup() {
    if [ -n "$SHOALD_PID" ]; then
        kill -TERM "$SHOALD_PID" 2>/dev/null || true
        wait "$SHOALD_PID" 2>/dev/null || true
    fi
    refd_stop
    if [ -n "$out_dir" ]; then
        cp "$T"/shoald.log "$out_dir/" 2>/dev/null || true
        cp "$T"/d/dockerd.log "$out_dir/" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT

# A free TCP port for the swarm listener of shoald (host network namespace;
# another shoald on this machine may already hold 2377).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

"$repo/compat-tests/scripts/make-test-image.sh" "$T/image.tar" >/dev/null

# shoald
"$shoald_bin" --host "unix://$T/shoal.sock" --data-root "$T/shoal-data" 2>"$T/shoald.log" &
SHOALD_PID=$!
for _ in $(seq 1 200); do curl -sf --unix-socket "$T/shoal.sock" http://localhost/_ping >/dev/null && break; sleep 0.05; done
DOCKER_HOST="unix://$T/shoal.sock" docker swarm init --advertise-addr 127.0.0.1 \
    --listen-addr "127.0.0.1:$(free_port)" >/dev/null
sleep 2
echo "side-by-side: shoald (pid $SHOALD_PID) ..." >&2
python3 "$here/api_bench.py" --socket "$T/shoal.sock" --pid "$SHOALD_PID" --tag shoal "${args[@]}" >"$T/shoal.json"
kill -TERM "$SHOALD_PID" 2>/dev/null || true
wait "$SHOALD_PID" 2>/dev/null || true
SHOALD_PID=

# dockerd (its own netns: 2377 there is free). refd_start leaves REFD_PID =
# dockerd itself (inside-ns.sh execs it); its containerd is a separate process.
refd_start "$T/d" "shoalbench$$"
DOCKER_HOST="unix://$T/d/docker.sock" docker load -q -i "$T/image.tar" >/dev/null
DOCKER_HOST="unix://$T/d/docker.sock" docker swarm init --advertise-addr 127.0.0.1 >/dev/null
sleep 2
CPID=$(cat "$T/d/containerd.pid")
echo "side-by-side: dockerd (pid $REFD_PID, containerd pid $CPID) ..." >&2
python3 "$here/api_bench.py" --socket "$T/d/docker.sock" --pid "$REFD_PID" --extra-pid "$CPID" \
    --tag docker "${args[@]}" >"$T/docker.json"

python3 - "$T/shoal.json" "$T/docker.json" >"$T/table.md" <<'PY'
import json, sys
s, d = (json.load(open(p)) for p in sys.argv[1:3])
def row(name, a, b, better):
    r = a / b if b else float("nan")
    print(f"| {name} | {a:.2f} | {b:.2f} | {r:.2f} ({better}) |")
print("| figure | shoald | dockerd | ratio shoald/dockerd |")
print("| --- | --- | --- | --- |")
n = s["commits"]["n"]
row(f"secret create: commits/s ({n} sequential)", s["commits"]["per_sec"], d["commits"]["per_sec"], "higher is better")
row("secret create: p50 ms", s["commits"]["p50_ms"], d["commits"]["p50_ms"], "lower is better")
row("secret create: p99 ms", s["commits"]["p99_ms"], d["commits"]["p99_ms"], "lower is better")
row(f"secret rm: commits/s ({n} sequential)", s["removes"]["per_sec"], d["removes"]["per_sec"], "higher is better")
row("secret rm: p99 ms", s["removes"]["p99_ms"], d["removes"]["p99_ms"], "lower is better")
a = s["args"]
row(f"service create/s ({a['services']} x {a['replicas']} replicas)", s["service_create_per_sec"], d["service_create_per_sec"], "higher is better")
row("s from first service create until all tasks listed", s["tasks_all_created_s"], d["tasks_all_created_s"], "lower is better")
row(f"s after that until daemon idle (<5% CPU for 3 s; cap {a['settle_max']} s)", s["settle_s"], d["settle_s"], "lower is better")
for k, label in (("get_services", "GET /services"), ("get_services_status", "GET /services?status=true"), ("get_tasks", "GET /tasks")):
    row(f"{label} p50 ms", s[k]["p50_ms"], d[k]["p50_ms"], "lower is better")
    row(f"{label} p99 ms", s[k]["p99_ms"], d[k]["p99_ms"], "lower is better")
row("RSS idle after swarm init, MB (dockerd process only)", s["rss_idle_mb"], d["rss_idle_mb"], "lower is better")
row("RSS with data loaded, MB (dockerd process only)", s["rss_loaded_mb"], d["rss_loaded_mb"], "lower is better")
if d.get("extra_rss_idle_mb") is not None:
    row("RSS idle, MB (dockerd + its containerd)", s["rss_idle_mb"], d["rss_idle_mb"] + d["extra_rss_idle_mb"], "lower is better")
    row("RSS loaded, MB (dockerd + its containerd)", s["rss_loaded_mb"], d["rss_loaded_mb"] + d["extra_rss_loaded_mb"], "lower is better")
print()
print(f"tasks listed: shoald {s['tasks_seen']}, dockerd {d['tasks_seen']} (wanted {a['services'] * a['replicas']})")
if d.get("extra_rss_idle_mb") is not None:
    print(f"dockerd's containerd RSS: idle {d['extra_rss_idle_mb']:.2f} MB, loaded {d['extra_rss_loaded_mb']:.2f} MB")
PY
cat "$T/table.md"
if [ -n "$out_dir" ]; then
    cp "$T/shoal.json" "$T/docker.json" "$T/table.md" "$out_dir/"
fi
