#!/usr/bin/env bash
# Installs Debian's docker.io, the reference dockerd the lab benchmarks run
# beside shoald, unless it is there, without starting its service: a host
# dockerd would take ports and interfaces the labs' nodes do not need, and
# nothing here asked for it. Run as root; run by the bench scripts.
set -euo pipefail
if ! [ -x /usr/sbin/dockerd ]; then
  export DEBIAN_FRONTEND=noninteractive
  made_policy=
  if ! [ -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
  fi
fi
