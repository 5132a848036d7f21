#!/bin/bash
# Runs inside `nsenter --net=/run/netns/NS unshare --mount --propagation slave`
# for exec-side-by-side.sh: gives the namespace its own sysfs (so a dockerd
# entered into it later sees only the namespace's links), hides the host's
# /etc/docker, then becomes the shared containerd (so the caller's $! is
# containerd's PID). dockerd is started later with `nsenter --target PID
# --net --mount`, into this same mount namespace: its overlay2 mounts must be
# visible to the runc that containerd starts.
# Usage: exec-ns.sh T   (T holds containerd.toml; everything goes under T)
set -euo pipefail
T=$1
source "$(dirname "$0")/../../api-fixtures/lib/ns-private-view.sh"
ns_private_view "$T"
exec containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1
