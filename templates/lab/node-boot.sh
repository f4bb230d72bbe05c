#!/bin/bash
# Boots one lab node: systemd-nspawn with systemd as PID 1 in the node's own netns and cgroups.
# Usage: node-boot.sh NAME ROOT NETNS_PATH NSPAWN_PIDFILE [NSPAWN_ARG...]
# Extra arguments go to systemd-nspawn (the read-only bind mounts of node and this checkout).
# No host systemd here: --register=no --keep-unit, so each node first gets its own cgroup dirs
# (two nodes sharing the caller's cgroup collide). A guest reboot exits 133: boot again.
set -u
name=$1 root=$2 netns=$3 pidfile=$4
shift 4
echo $$ > "/sys/fs/cgroup/systemd/xc-$name/cgroup.procs"
echo $$ > "/sys/fs/cgroup/unified/xc-$name/cgroup.procs"
export SYSTEMD_NSPAWN_API_VFS_WRITABLE=network
while :; do
  systemd-nspawn -D "$root" --boot --machine="$name" --network-namespace-path="$netns" \
    --register=no --keep-unit --console=passive --link-journal=no --capability=CAP_NET_ADMIN "$@" &
  echo $! > "$pidfile"
  wait $!
  rc=$?
  [ "$rc" = 133 ] || break
done
rm -f "$pidfile"
exit "$rc"
