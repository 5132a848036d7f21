#!/bin/bash
# Controls a reference dockerd from any shell (state kept in files under T).
# Usage: refd-ctl.sh start|stop|reset T NS
set -euo pipefail
source "$(dirname "$0")/refd.sh"
cmd=$1
REFD_T=$2
REFD_NS=$3
case "$cmd" in
    start) refd_start "$REFD_T" "$REFD_NS" ;;
    stop) refd_stop ;;
    reset)
        refd_stop
        rm -rf "$REFD_T/docker" "$REFD_T/exec" "$REFD_T/containerd-root" "$REFD_T/containerd-state" 2>/dev/null || true
        refd_start "$REFD_T" "$REFD_NS"
        ;;
    *) echo "usage: refd-ctl.sh start|stop|reset T NS" >&2; exit 2 ;;
esac
