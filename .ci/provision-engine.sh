#!/usr/bin/env bash
# Make sure a Docker engine answers: a no-op when one does; otherwise install
# Debian's docker.io (needs root and apt) and start dockerd in the background.
set -euo pipefail

engine_ok() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if engine_ok; then
  echo "engine: Docker $(docker version --format '{{.Server.Version}}') answers"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "engine: installing docker.io (Debian package)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  # Needed to make the local Debian base image when no base image can be pulled.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || true
fi

if ! engine_ok; then
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl start docker || true
  fi
fi
if ! engine_ok; then
  echo "engine: starting dockerd in the background (log: /tmp/tfsops-dockerd.log)"
  $SUDO sh -c 'nohup dockerd >/tmp/tfsops-dockerd.log 2>&1 &'
fi

for _ in $(seq 1 60); do
  if engine_ok; then
    echo "engine: Docker $(docker version --format '{{.Server.Version}}') answers"
    exit 0
  fi
  sleep 1
done
echo "engine: dockerd did not answer within 60 s; see /tmp/tfsops-dockerd.log" >&2
tail -n 20 /tmp/tfsops-dockerd.log >&2 || true
exit 1
