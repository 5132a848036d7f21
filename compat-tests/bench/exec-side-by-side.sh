#!/usr/bin/env bash
# Runs exec_bench.py (swarm tasks as real containers) against shoald and then
# against Debian's dockerd, on this machine in the same run, one daemon after
# the other, both on ONE private containerd, and prints each figure with the
# shoald/dockerd ratio as a Markdown table.
#
# Layout: a network namespace and a mount namespace of our own hold the
# containerd (started by exec-ns.sh; config without CRI, its own socket, root
# and state under the temp dir). shoald and dockerd are entered into those
# namespaces with nsenter (their network drivers build bridges and rules
# there; dockerd mounts its overlay2 layers itself, and runc must see them)
# and use the same containerd through its socket (containerd namespaces
# `shoal` and `moby`); dockerd with `--bridge none --iptables=false`. Each
# swarm task gets a network namespace of its own from either daemon.
#
# Usage (root): compat-tests/bench/exec-side-by-side.sh [--out DIR] [--no-build] [--shoald BIN] [--dockerd-first]
#                   [--reps N] [--sizes 1,10,50] [--update-replicas 10] [--only create,replace,update,density,standalone]
#                   [--shim-groups 8,1] [--density-sizes 200]
#   --out DIR    keep shoal.json, docker.json, table.md and the daemon logs in DIR
#   --shim-groups LIST  run shoald's half once per shim group size (SHOAL_SHIM_GROUP_SIZE; 1 = a shim
#                per container, as dockerd); the first is the main shoald column, the others get
#                columns in the density table (default: shoald's built-in size only)
#   --no-build   use the existing shoald in ${CARGO_TARGET_DIR:-target}/release
#   --shoald BIN use this shoald binary (implies --no-build)
#   --dockerd-first  run dockerd's half first (default: shoald first)
#   other flags go to exec_bench.py
# Needs docker.io (dockerd), containerd, runc, busybox-static.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/api-fixtures/lib/refd.sh"
# The stock CLI (28.x) must win over Debian's /usr/bin/docker.
export PATH="/usr/local/bin:$PATH"

out_dir=
build=1
shoald_bin=
dockerd_first=0
shim_groups=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out_dir=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --shoald) shoald_bin=$2; build=0; shift 2 ;;
        --dockerd-first) dockerd_first=1; shift ;;
        --shim-groups) shim_groups=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
[ -z "$out_dir" ] || mkdir -p "$out_dir"
for b in dockerd containerd runc ctr nsenter unshare; do
    command -v "$b" >/dev/null || { echo "exec-side-by-side: $b missing" >&2; exit 1; }
done

if [ "$build" = 1 ]; then
    cargo build -q --release --manifest-path "$repo/Cargo.toml" -p engine-api --bin shoald
fi
[ -n "$shoald_bin" ] || shoald_bin=${CARGO_TARGET_DIR:-$repo/target}/release/shoald
T=$(mktemp -d /tmp/shoalxb.XXXXXX)
NS=shoalxb$$
CTD_SOCK=$T/containerd.sock
CTD_PID=
SHOALD_PID=
DOCKERD_PID=
NETNS_MADE=

stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || true
    refd_wait_gone "$1"
    wait "$1" 2>/dev/null || true
}

# Kills and deletes every task and container of containerd namespace $1
# (bounded: ~15 s). The daemon that made them must be stopped first.
ctr_clean() {
    local ns=$1 ids id
    [ -n "$CTD_PID" ] && kill -0 "$CTD_PID" 2>/dev/null || return 0
    ids=$(timeout 10 ctr --address "$CTD_SOCK" -n "$ns" tasks ls -q 2>/dev/null || true)
    for id in $ids; do
        timeout 5 ctr --address "$CTD_SOCK" -n "$ns" tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $ids; do
        for _ in $(seq 1 50); do
            timeout 5 ctr --address "$CTD_SOCK" -n "$ns" tasks ls 2>/dev/null |
                awk -v id="$id" '$1 == id && $NF != "STOPPED" {f=1} END {exit !f}' || break
            sleep 0.1
        done
        timeout 5 ctr --address "$CTD_SOCK" -n "$ns" tasks rm --force "$id" >/dev/null 2>&1 || true
    done
    for id in $(timeout 10 ctr --address "$CTD_SOCK" -n "$ns" containers ls -q 2>/dev/null || true); do
        timeout 5 ctr --address "$CTD_SOCK" -n "$ns" containers rm "$id" >/dev/null 2>&1 || true
    done
}

cleanup() {
    set +e
    stop_pid "$SHOALD_PID"
    SHOALD_PID=
    ctr_clean shoal
    stop_pid "$DOCKERD_PID"
    DOCKERD_PID=
    ctr_clean moby
    if [ -n "$CTD_PID" ]; then
        # Shims outlive containerd; ours carry our socket path. Note their
        # PIDs before containerd goes, then end them by PID.
        local shims
        shims=$(pgrep -f -- "-address $CTD_SOCK" || true)
        stop_pid "$CTD_PID"
        for s in $shims; do
            kill -KILL "$s" 2>/dev/null || true
        done
        CTD_PID=
    fi
    [ -z "$NETNS_MADE" ] || ip netns delete "$NS" 2>/dev/null
    if [ -n "$out_dir" ]; then
        cp "$T"/shoald.log "$T"/dockerd.log "$T"/containerd.log "$out_dir/" 2>/dev/null
    fi
    # Mounts made in our mount namespace died with it; shoald mounts nothing
    # here (no secrets). Refuse to delete through a mount that is left.
    if grep -q " $T/" /proc/self/mounts; then
        echo "exec-side-by-side: mounts left under $T; not removing it" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

api_ping() {
    local sock=$1 pid=$2
    for _ in $(seq 1 300); do
        curl -sf --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { echo "exec-side-by-side: daemon $pid exited" >&2; return 1; }
        sleep 0.1
    done
    echo "exec-side-by-side: no /_ping on $sock in 30 s" >&2
    return 1
}

# Two tags of the same image: a rolling --image update without a registry or
# `docker tag`.
"$repo/compat-tests/scripts/make-test-image.sh" "$T/image.tar" shoal-test/busybox:latest >/dev/null
"$repo/compat-tests/scripts/make-test-image.sh" "$T/image2.tar" shoal-test/busybox:v2 >/dev/null

# The shared containerd, in its own network and mount namespace.
ip netns add "$NS"
NETNS_MADE=1
ip netns exec "$NS" ip link set lo up
cat >"$T/containerd.toml" <<TOML
version = 2
root = "$T/containerd-root"
state = "$T/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
[debug]
  address = "$T/containerd-debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
TOML
nsenter --net="/run/netns/$NS" unshare --mount --propagation slave \
    bash "$here/exec-ns.sh" "$T" </dev/null >"$T/exec-ns.log" 2>&1 &
CTD_PID=$!
for _ in $(seq 1 200); do
    ctr --address "$CTD_SOCK" version >/dev/null 2>&1 && break
    kill -0 "$CTD_PID" 2>/dev/null || { cat "$T/exec-ns.log" "$T/containerd.log" >&2; exit 1; }
    sleep 0.1
done
echo "exec-side-by-side: containerd pid $CTD_PID, socket $CTD_SOCK" >&2

# shoald, on the shared containerd and in its namespaces (like dockerd: the
# network driver makes bridges and nftables rules wherever shoald runs).
run_shoald() {
    local group=$1 json=$2
    env ${group:+SHOAL_SHIM_GROUP_SIZE=$group} nsenter --target "$CTD_PID" --net --mount "$shoald_bin" \
        --host "unix://$T/shoal.sock" --data-root "$T/shoal-data$group" \
        --containerd "$CTD_SOCK" 2>>"$T/shoald.log" &
    SHOALD_PID=$!
    api_ping "$T/shoal.sock" "$SHOALD_PID"
    export DOCKER_HOST="unix://$T/shoal.sock"
    docker load -q -i "$T/image.tar" >/dev/null
    docker load -q -i "$T/image2.tar" >/dev/null
    docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$(free_port)" >/dev/null
    sleep 2
    echo "exec-side-by-side: shoald (pid $SHOALD_PID, shim group size ${group:-default}) ..." >&2
    python3 "$here/exec_bench.py" --socket "$T/shoal.sock" --pid "$SHOALD_PID" \
        --ctr-address "$CTD_SOCK" --ctr-namespace shoal --ctr-pid "$CTD_PID" --tag shoal \
        "${args[@]}" >"$json"
    stop_pid "$SHOALD_PID"
    SHOALD_PID=
    ctr_clean shoal
}

# Every shoald variant (each on a data root of its own: a fresh swarm): the first writes shoal.json, the others shoal-gK.json.
run_shoalds() {
    local g first=1
    if [ -z "$shim_groups" ]; then
        run_shoald "" "$T/shoal.json"
        return
    fi
    for g in ${shim_groups//,/ }; do
        if [ "$first" = 1 ]; then
            run_shoald "$g" "$T/shoal.json"
            first=0
        else
            run_shoald "$g" "$T/shoal-g$g.json"
        fi
    done
}

# dockerd, entered into containerd's network and mount namespace, on the same
# containerd. DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: without it dockerd tries a
# registry pull before every task (and fails: no network), which shoald does
# not do for an image it has.
run_dockerd() {
    mkdir -p "$T/docker" "$T/exec"
    echo '{}' >"$T/daemon.json"
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nsenter --target "$CTD_PID" --net --mount \
        dockerd --config-file "$T/daemon.json" --containerd "$CTD_SOCK" \
        --data-root "$T/docker" --exec-root "$T/exec" --pidfile "$T/docker.pid" \
        -H "unix://$T/docker.sock" --bridge none --iptables=false --ip6tables=false \
        </dev/null >"$T/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    api_ping "$T/docker.sock" "$DOCKERD_PID"
    export DOCKER_HOST="unix://$T/docker.sock"
    docker load -q -i "$T/image.tar" >/dev/null
    docker load -q -i "$T/image2.tar" >/dev/null
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    sleep 2
    echo "exec-side-by-side: dockerd (pid $DOCKERD_PID) ..." >&2
    python3 "$here/exec_bench.py" --socket "$T/docker.sock" --pid "$DOCKERD_PID" \
        --ctr-address "$CTD_SOCK" --ctr-namespace moby --ctr-pid "$CTD_PID" --tag docker \
        "${args[@]}" >"$T/docker.json"
    stop_pid "$DOCKERD_PID"
    DOCKERD_PID=
    ctr_clean moby
}

if [ "$dockerd_first" = 1 ]; then
    run_dockerd
    run_shoalds
else
    run_shoalds
    run_dockerd
fi

python3 - "$T/shoal.json" "$T/docker.json" "$shim_groups" >"$T/table.md" <<'PY'
import json, os, statistics, sys
s, d = (json.load(open(p)) for p in sys.argv[1:3])
groups = [g for g in sys.argv[3].split(",") if g]
variants = [(f"shoald (group {groups[0]})" if groups else "shoald", s)]
for g in groups[1:]:
    variants.append((f"shoald (group {g})", json.load(open(os.path.join(os.path.dirname(sys.argv[1]), f"shoal-g{g}.json")))))
reps = s["args"]["reps"]
def row(name, a, b):
    r = a / b if b else float("nan")
    print(f"| {name} | {a:.2f} | {b:.2f} | {r:.2f} |")
print(f"| figure (seconds, median of {reps}; lower is better) | shoald | dockerd | ratio shoald/dockerd |")
print("| --- | --- | --- | --- |")
row("first task on a fresh daemon (1 sample)", s["warmup"], d["warmup"])
for n in s["median"]["create"]:
    row(f"create, {n} replica(s): until all running", s["median"]["create"][n], d["median"]["create"][n])
    if int(n) > 1:
        row(f"create, {n} replicas: until the first runs", statistics.median(s["create_first"][n]),
            statistics.median(d["create_first"][n]))
for n in s["median"]["remove"]:
    row(f"remove, {n} replica(s): until containers gone", s["median"]["remove"][n], d["median"]["remove"][n])
labels = {"default": "kill -9 of a task: until its replacement runs (restart delay 5 s, default)",
          "delay0": "kill -9 of a task: until its replacement runs (restart delay 0)"}
for k, label in labels.items():
    if k in s["median"]["replace"]:
        row(label, s["median"]["replace"][k], d["median"]["replace"][k])
if "update_tasks" in s["median"]:
    n = s["args"]["update_replicas"]
    row(f"rolling --image update of {n} (parallelism 2): until {n} new tasks run",
        s["median"]["update_tasks"], d["median"]["update_tasks"])
    row(f"rolling --image update of {n}: until UpdateStatus completed",
        s["median"]["update_completed"], d["median"]["update_completed"])
sa, da = s["median"].get("standalone", {}), d["median"].get("standalone", {})
if "run_rm" in sa:
    row("`docker run --rm --network none busybox true`: CLI start to exit", sa["run_rm"], da["run_rm"])
if "stats" in sa:
    n = s["args"]["stats_containers"]
    row(f"`docker stats --no-stream` of {n} running containers", sa["stats"], da["stats"])
big = max(s["create_cpu"], key=int, default=None)
if big:
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    row(f"CPU s of the daemon while creating {big} replicas",
        med(s["create_cpu"][big], 0), med(d["create_cpu"][big], 0))
    row(f"CPU s of containerd while creating {big} replicas",
        med(s["create_cpu"][big], 1), med(d["create_cpu"][big], 1))
print()
la = lambda x: "/".join(f"{v:.1f}" for v in x)
print(f"load average (1/5/15 min) at start and end: shoald {la(s['loadavg_start'])} -> {la(s['loadavg_end'])}, "
      f"dockerd {la(d['loadavg_start'])} -> {la(d['loadavg_end'])}")
print()
print("samples (shoald | dockerd):")
for n in s["create"]:
    print(f"- create {n}: {[round(x, 2) for x in s['create'][n]]} | {[round(x, 2) for x in d['create'][n]]}")
for k in s["replace"]:
    print(f"- replace {k}: {[round(x, 2) for x in s['replace'][k]]} | {[round(x, 2) for x in d['replace'][k]]}")
for k in s["replace_phases"]:
    for who, x in (("shoald", s), ("dockerd", d)):
        ph = x["replace_phases"][k]
        print(f"- replace {k}, {who}: old task seen ended at {[round(p.get('old_not_running', -1), 2) for p in ph]}, "
              f"replacement listed at {[round(p.get('new_task', -1), 2) for p in ph]}")
if s["update_tasks"]:
    print(f"- update: slots seen running old and new task at once (stop-first broken): "
          f"{s['update_overlap_slots']} | {d['update_overlap_slots']}")
    print(f"- update tasks: {[round(x, 2) for x in s['update_tasks']]} | {[round(x, 2) for x in d['update_tasks']]}")
    print(f"- update completed: {[round(x, 2) for x in s['update_completed']]} | {[round(x, 2) for x in d['update_completed']]}")

# Density: per size, median (min-max) of each figure per daemon variant.
cols = variants + [("dockerd", d)]
for n in d.get("density", {}):
    print()
    print(f"density, {n} replicas (median of {reps}, min-max in brackets; ratios against dockerd's median):")
    print()
    print("| figure | " + " | ".join(c for c, _ in cols) + " |")
    print("| --- |" + " --- |" * len(cols))
    def fig(name, get, fmt="{:.2f}"):
        cells = []
        dm = statistics.median(get(r) for r in d["density"][n])
        for _, x in cols:
            runs = x.get("density", {}).get(n, [])
            if not runs:
                cells.append("n/a")
                continue
            v = [get(r) for r in runs]
            m = statistics.median(v)
            rat = f" ({m / dm:.2f}x)" if dm and x is not d else ""
            cells.append(f"{fmt.format(m)} [{fmt.format(min(v))}-{fmt.format(max(v))}]{rat}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    fig("s until all running", lambda r: r["all_running"])
    fig("node overhead per task, kB PSS (daemon + containerd + shims, after - before) / N",
        lambda r: r["overhead_kb_per_task"], "{:.0f}")
    for part in ("daemon", "containerd", "shims"):
        fig(f"PSS of {part} with the tasks, MB", lambda r, p=part: r["after"][p] / 1024, "{:.1f}")
    fig("shim processes", lambda r: r["after"]["shim_count"], "{:.0f}")
    for part in ("daemon", "containerd", "shims"):
        fig(f"CPU s of {part} until all running", lambda r, p=part: r["cpu"][p])
        fig(f"CPU ms of {part} per task", lambda r, p=part: 1000 * r["cpu"][p] / r["n"], "{:.1f}")
    for k in ("assigned", "container_create", "container_start", "running"):
        fig(f"timeline: p50 of tasks' '{k}', s after the create", lambda r, k=k: (r["timeline"][k] or {}).get("p50", float("nan")))
        fig(f"timeline: p90 of tasks' '{k}', s after the create", lambda r, k=k: (r["timeline"][k] or {}).get("p90", float("nan")))
    fig("remove until containers gone, s (nan: some were left behind)",
        lambda r: float("nan") if r["remove"] is None else r["remove"])
PY
cat "$T/table.md"
if [ -n "$out_dir" ]; then
    cp "$T/shoal.json" "$T/docker.json" "$T/table.md" "$out_dir/"
fi
