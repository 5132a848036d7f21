#!/usr/bin/env bash
# Installs the Debian packages shoal and its tests need (idempotent).
set -euo pipefail
need=()
# docker-registry and apache2-utils (htpasswd): the pull tests run their own
# registry on a loopback port (the package's own service, if it starts one on
# :5000, is left alone). openssl makes the TLS tests' certificates; procps
# gives `docker top` its ps; faketime (libfaketime) moves a test daemon's
# wall clock; e2fsprogs and mount make the slow-disk test's loop filesystem.
for pkg in containerd runc tini nftables conntrack iproute2 busybox-static curl python3-venv protobuf-compiler \
    docker-registry apache2-utils openssl procps faketime e2fsprogs mount; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The stock docker CLI is the client the tests drive; the machine image ships
# 28.x at /usr/local/bin/docker. Without it, fall back to Debian's client.
if [ ! -x /usr/local/bin/docker ] && ! command -v docker >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker-cli >/dev/null 2>&1 \
    || apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
