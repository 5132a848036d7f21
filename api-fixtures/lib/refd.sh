# shellcheck shell=bash
# Sourced by record.sh and validate.sh: start and stop a reference dockerd
# (Debian docker.io) with its own containerd, in a network namespace and a
# mount namespace of its own. Everything started here is stopped by PID.
#
# refd_start T NS   start under temp dir T in netns NS; sets REFD_PID
# refd_stop         stop what refd_start started and remove the netns
# refd_reset        stop + start again with an empty data root (fresh daemon)
#
# PIDs are also kept in files under T (refd.pid, containerd.pid, netns.created)
# so that another shell can stop or reset the daemon: see refd-ctl.sh.

REFD_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

refd_start() {
    REFD_T=$1
    REFD_NS=$2
    mkdir -p "$REFD_T"
    if ! ip netns list | grep -qw "$REFD_NS"; then
        ip netns add "$REFD_NS"
        : >"$REFD_T/netns.created"
    fi
    ip netns exec "$REFD_NS" ip link set lo up
    cat >"$REFD_T/containerd.toml" <<TOML
version = 2
root = "$REFD_T/containerd-root"
state = "$REFD_T/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$REFD_T/containerd.sock"
[ttrpc]
  address = "$REFD_T/containerd.sock.ttrpc"
[debug]
  address = "$REFD_T/containerd-debug.sock"
[metrics]
  address = ""
TOML
    nsenter --net="/run/netns/$REFD_NS" unshare --mount --propagation slave \
        bash "$REFD_LIB/inside-ns.sh" "$REFD_T" </dev/null >"$REFD_T/inside-ns.log" 2>&1 &
    REFD_PID=$!
    echo "$REFD_PID" >"$REFD_T/refd.pid"
    for _ in $(seq 1 300); do
        if curl -sf --max-time 2 --unix-socket "$REFD_T/docker.sock" http://localhost/_ping >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$REFD_PID" 2>/dev/null; then
            echo "refd: dockerd exited; see $REFD_T/dockerd.log" >&2
            tail -20 "$REFD_T/dockerd.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "refd: dockerd did not answer /_ping in 30 s" >&2
    return 1
}

# Waits (bounded) for a PID to exit.
refd_wait_gone() {
    local pid=$1
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

refd_stop() {
    [ -n "${REFD_T:-}" ] || return 0
    if [ -z "${REFD_PID:-}" ] && [ -f "$REFD_T/refd.pid" ]; then
        REFD_PID=$(cat "$REFD_T/refd.pid")
    fi
    if [ -n "${REFD_PID:-}" ]; then
        kill -TERM "$REFD_PID" 2>/dev/null || true
        refd_wait_gone "$REFD_PID"
        wait "$REFD_PID" 2>/dev/null || true
        rm -f "$REFD_T/refd.pid"
    fi
    if [ -f "$REFD_T/containerd.pid" ]; then
        local cpid
        cpid=$(cat "$REFD_T/containerd.pid")
        # Shims started by our containerd carry our socket path.
        local shims
        shims=$(pgrep -f -- "-address $REFD_T/containerd.sock" || true)
        kill -TERM "$cpid" 2>/dev/null || true
        refd_wait_gone "$cpid"
        for s in $shims; do
            kill -KILL "$s" 2>/dev/null || true
        done
        rm -f "$REFD_T/containerd.pid"
    fi
    REFD_PID=
    if [ -f "$REFD_T/netns.created" ]; then
        ip netns delete "$REFD_NS" 2>/dev/null || true
        rm -f "$REFD_T/netns.created"
    fi
}

# Stops the daemon, wipes its state and starts it again.
refd_reset() {
    local t=$REFD_T ns=$REFD_NS
    refd_stop
    # Mounts made by dockerd live in its mount namespace, gone with it.
    rm -rf "$t/docker" "$t/exec" "$t/containerd-root" "$t/containerd-state" 2>/dev/null || true
    refd_start "$t" "$ns"
}
