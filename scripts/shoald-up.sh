#!/usr/bin/env bash
# Quick start: installs what shoald needs, builds it, and starts it in the
# background on unix:///run/shoal/docker.sock with data in /var/lib/shoal.
#   sudo ./scripts/shoald-up.sh        then   export DOCKER_HOST=unix:///run/shoal/docker.sock
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release -p engine-api
mkdir -p /run/shoal /var/lib/shoal
# containerd for the executor: start one on its default socket if none runs.
if [ ! -S /run/containerd/containerd.sock ]; then
  nohup containerd >/var/log/shoal-containerd.log 2>&1 &
  echo $! >/run/shoal/containerd.pid
fi
if [ -f /run/shoal/shoald.pid ] && kill -0 "$(cat /run/shoal/shoald.pid)" 2>/dev/null; then
  echo "shoald already running (pid $(cat /run/shoal/shoald.pid))"
else
  # shoald writes its PID file itself (--pidfile, default /run/shoal/shoald.pid).
  nohup ./target/release/shoald --host unix:///run/shoal/docker.sock --data-root /var/lib/shoal \
    >/var/log/shoald.log 2>&1 &
fi
for _ in $(seq 1 100); do
  if curl -sf --unix-socket /run/shoal/docker.sock http://localhost/_ping >/dev/null; then
    echo "shoald is up: export DOCKER_HOST=unix:///run/shoal/docker.sock"
    exit 0
  fi
  sleep 0.1
done
echo "shoald did not come up; see /var/log/shoald.log" >&2
exit 1
