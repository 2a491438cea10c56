#!/bin/sh
# Start a Docker engine inside the node container.
#   tfsops-node registry   -> run the registry instead (port 5000)
#   tfsops-node [ARGS...]  -> dockerd on the unix socket and tcp 2375, plus ARGS
# The node runs with every capability but SYS_RESOURCE (--privileged does not
# start on every engine); /sys and the cgroup v1 hierarchies come read-only and
# are remounted read-write so the inner engine can create cgroups.
set -e
if [ "$1" = "registry" ]; then
  mkdir -p /var/lib/docker-registry
  exec /usr/bin/docker-registry serve /etc/docker/registry/config.yml
fi
mount -o remount,rw /sys 2>/dev/null || true
for d in /sys/fs/cgroup/*/; do
  mount -o remount,bind,rw "$d" 2>/dev/null || true
done
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
mount --make-rshared /
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
exec dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2375 --tls=false "$@"
