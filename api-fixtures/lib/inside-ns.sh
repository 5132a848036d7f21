#!/bin/bash
# Runs inside `nsenter --net=/run/netns/NS unshare --mount --propagation slave`:
# gives the namespace its own view of sysfs, hides the host's /etc/docker,
# starts a private containerd and then becomes dockerd (so the PID the
# caller saw is dockerd's). containerd's PID goes to $T/containerd.pid.
# Usage: inside-ns.sh T
set -euo pipefail
T=$1

source "$(dirname "${BASH_SOURCE[0]}")/ns-private-view.sh"
ns_private_view "$T"

containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1 &
echo $! >"$T/containerd.pid"
for _ in $(seq 1 100); do
    [ -S "$T/containerd.sock" ] && break
    sleep 0.1
done

echo '{}' >"$T/daemon.json"
exec dockerd \
    --config-file "$T/daemon.json" \
    --containerd "$T/containerd.sock" \
    --data-root "$T/docker" \
    --exec-root "$T/exec" \
    --pidfile "$T/docker.pid" \
    -H "unix://$T/docker.sock" \
    --bridge none --iptables=false --ip6tables=false \
    >"$T/dockerd.log" 2>&1
