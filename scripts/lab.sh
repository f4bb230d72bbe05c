#!/usr/bin/env bash
# `npm run lab`: bring up the lab and do xcluster's main job on it, as an operator would from the
# admin host: register the cluster spec, serve DHCP from s1 so the nodes without a fixed address
# get their MAC-typed leases, provision all six nodes over SSH (live progress), and list them.
# Safe to re-run: every step checks before it changes.
set -euo pipefail
cd "$(dirname "$0")/.."

x() { node bin/run.js "$@"; }
admin() { x lab exec admin -- "$@"; }

x lab up
admin sh -c 'xcluster config apply -f "$XCLUSTER_LAB_DIR/xcluster.yaml" --yes'

# DHCP for s4, c1 and f1: xcluster serve on core node s1, as a transient systemd unit there.
etcd=$(admin sh -c 'echo "$XCLUSTER_ETCD"')
if ! x lab exec s1 -- systemctl is-active --quiet xcluster-dhcp; then
  x lab exec s1 -- systemd-run --quiet --unit xcluster-dhcp --setenv "XCLUSTER_ETCD=$etcd" \
    xcluster serve --dhcp --interface eth0 --node s1
fi
unaddressed=(s4 c1 f1)
echo "Waiting for DHCP leases of ${unaddressed[*]}..."
for _ in $(seq 1 60); do
  leased=$(admin xcluster dhcp leases --json | node -e '
    const want = process.argv.slice(1)
    const leases = JSON.parse(require("fs").readFileSync(0, "utf8"))
    process.stdout.write(String(want.filter((n) => leases.some((l) => l.node === n && !l.expired)).length))
  ' "${unaddressed[@]}")
  [ "$leased" = "${#unaddressed[@]}" ] && break
  # systemd-networkd backs off between attempts: ask again now that a server answers.
  for n in "${unaddressed[@]}"; do x lab exec "$n" -- systemctl restart systemd-networkd >/dev/null 2>&1 || true; done
  sleep 2
done
admin xcluster dhcp leases

admin xcluster node add s1 s2 s3 s4 c1 f1 --accept-new-host-key
admin xcluster node list
