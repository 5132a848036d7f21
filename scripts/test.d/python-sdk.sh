#!/usr/bin/env bash
# Runs the Python `docker` SDK suite (compat-tests/python) against a shoald of
# its own: a venv in target/pyvenv with the pinned SDK and pytest from PyPI, a
# network and mount namespace of its own (held by a sleeping process; task
# namespaces, bridges and nftables rules stay in there), a
# private containerd (socket, root and state in a temp dir) that runs the
# swarm's tasks, shoald on a temp socket and data root, the busybox test image
# built into the temp dir, and pytest with DOCKER_HOST pointing at shoald.
# Exits non-zero when a test fails.
#
# On exit only what was started here is ended: shoald (by its PID), every task
# the private containerd runs (SIGKILL, then deleted), the containerd (by its
# PID), the namespace holder (by its PID); whatever is still mounted under the
# temp dir is lazily unmounted and the temp dir removed.
#
#   bash scripts/test.d/python-sdk.sh [PYTEST ARGS...]
#
# Needs: root, containerd + ctr + runc, a static busybox (for the image), curl.
# Env: SHOALD_BIN (default target/debug/shoald; build with
# `cargo build -p engine-api`), PYTHON (default python3), PYTEST_TIMEOUT
# (seconds, default 300). The suite sees SHOAL_TEST_IMAGE_TAR (the image's
# docker-archive tar, tag shoal-test/busybox:latest) and SHOALD_BIN.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

shoald_bin=${SHOALD_BIN:-$repo/target/debug/shoald}
case $shoald_bin in /*) ;; *) shoald_bin=$repo/$shoald_bin ;; esac
if [ ! -x "$shoald_bin" ]; then
    echo "python-sdk: $shoald_bin not found: run \`cargo build -p engine-api\` or set SHOALD_BIN" >&2
    exit 1
fi
for tool in containerd ctr runc curl; do
    command -v "$tool" >/dev/null 2>&1 \
        || { echo "python-sdk: $tool not found (bash scripts/deps.sh installs it)" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
    echo "python-sdk: needs root (containerd runs the swarm's tasks)" >&2
    exit 1
fi

# --- venv with the SDK and pytest ---------------------------------------------
venv=$repo/target/pyvenv
req=$repo/compat-tests/python/requirements.txt
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! cmp -s "$req" "$venv/.requirements.installed"; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements.installed"
fi
"$venv/bin/python" -c 'import docker, pytest' # fail here rather than skip every test

# --- cleanup: only what this script started -------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-pysdk.XXXXXX")
tmp=$(cd "$tmp" && pwd -P) # mountinfo shows resolved paths
sock=$tmp/docker.sock
csock=$tmp/c.sock
shoald_pid=
containerd_pid=
pytest_pid=
holder_pid=

# Sends SIGTERM to $1, waits up to $2 tenths of a second, then SIGKILL.
stop_pid() {
    local pid=$1 tenths=$2
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

ctr_shoal() {
    timeout 10 ctr --address "$csock" -n shoal "$@"
}

# Whether task $1 of the private containerd is listed and not yet STOPPED.
task_live() {
    ctr_shoal tasks ls 2>/dev/null \
        | awk -v id="$1" '$1 == id && $3 != "STOPPED" { f = 1 } END { exit !f }'
}

# Kills and deletes every task the private containerd runs: containers outlive
# shoald and their shims outlive containerd. Bounded: 10 s for all to stop.
end_tasks() {
    local ids id deadline
    ids=$(ctr_shoal tasks ls -q 2>/dev/null) || return 0
    [ -n "$ids" ] || return 0
    for id in $ids; do
        ctr_shoal tasks kill --all -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    deadline=$((SECONDS + 10))
    for id in $ids; do
        while [ "$SECONDS" -lt "$deadline" ] && task_live "$id"; do
            sleep 0.1
        done
        ctr_shoal tasks rm -f "$id" >/dev/null 2>&1 || true
    done
}

# Lazily unmounts everything mounted under $tmp, deepest first (secret and
# config tmpfs, rootfs of tasks that were not deleted).
unmount_all() {
    local m
    awk -v t="$tmp/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo \
        | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # pytest turns SIGTERM into an interrupt and tears its fixtures down.
    stop_pid "$pytest_pid" 300
    # shoald first, so that no replacement task starts while the tasks end.
    stop_pid "$shoald_pid" 200
    if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
        end_tasks
    fi
    stop_pid "$containerd_pid" 100
    stop_pid "$holder_pid" 20
    unmount_all
    if [ "$rc" -ne 0 ]; then
        for log in shoald containerd; do
            [ -s "$tmp/$log.log" ] || continue
            echo "--- python-sdk: $log log (last 25 lines) ---" >&2
            tail -n 25 "$tmp/$log.log" >&2 || true
        done
    fi
    if awk -v t="$tmp/" 'index($5, t) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        echo "python-sdk: mounts left under $tmp; not removing it" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a node namespace of our own ---------------------------------------------------
# containerd and shoald run inside it (nsenter execs them, so their PIDs are
# the ones recorded); the CLI and pytest reach shoald's socket from here.
unshare --net --mount --propagation slave sleep 7200 &
holder_pid=$!
for _ in $(seq 1 100); do
    [ "$(cat "/proc/$holder_pid/comm" 2>/dev/null)" = sleep ] && break
    sleep 0.1
done
[ "$(cat "/proc/$holder_pid/comm" 2>/dev/null)" = sleep ] \
    || { echo "python-sdk: the namespace holder did not start" >&2; exit 1; }
in_node() {
    nsenter -t "$holder_pid" --net --mount -- "$@"
}
in_node ip link set lo up

# --- a containerd of our own ------------------------------------------------------
cat >"$tmp/config.toml" <<TOML
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[plugins."io.containerd.internal.v1.opt"]
  path = "$tmp/opt"
TOML
nsenter -t "$holder_pid" --net --mount -- containerd --config "$tmp/config.toml" --address "$csock" \
    --root "$tmp/root" --state "$tmp/state" >/dev/null 2>"$tmp/containerd.log" &
containerd_pid=$!
up=
for _ in $(seq 1 200); do
    if timeout 5 ctr --address "$csock" version >/dev/null 2>&1; then
        up=1
        break
    fi
    if ! kill -0 "$containerd_pid" 2>/dev/null; then
        echo "python-sdk: containerd exited before answering" >&2
        exit 1
    fi
    sleep 0.1
done
[ -n "$up" ] || { echo "python-sdk: containerd did not answer within 20s" >&2; exit 1; }

# --- the test image ---------------------------------------------------------------
image_tar=$tmp/image.tar
bash "$repo/compat-tests/scripts/make-test-image.sh" "$image_tar" >/dev/null

# --- a shoald of our own ------------------------------------------------------
NO_COLOR=1 nsenter -t "$holder_pid" --net --mount -- "$shoald_bin" --host "unix://$sock" --data-root "$tmp/data" --containerd "$csock" \
    >"$tmp/shoald.log" 2>&1 &
shoald_pid=$!
up=
for _ in $(seq 1 200); do
    if curl -sf --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then
        up=1
        break
    fi
    if ! kill -0 "$shoald_pid" 2>/dev/null; then
        echo "python-sdk: shoald exited before answering /_ping" >&2
        exit 1
    fi
    sleep 0.1
done
[ -n "$up" ] || { echo "python-sdk: shoald did not answer /_ping within 20s" >&2; exit 1; }

# --- the suite ------------------------------------------------------------------
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONFIG
export DOCKER_HOST=unix://$sock SHOALD_BIN=$shoald_bin SHOAL_TEST_IMAGE_TAR=$image_tar
export PYTHONDONTWRITEBYTECODE=1
# In the background so that a signal to this script runs the cleanup at once.
timeout --kill-after=10 "${PYTEST_TIMEOUT:-300}" \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q -rfEs \
    "$repo/compat-tests/python" "$@" &
pytest_pid=$!
wait "$pytest_pid"
