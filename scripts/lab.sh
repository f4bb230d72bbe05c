#!/usr/bin/env bash
# `npm run lab`: bring up a lab of bare machines and do xcluster's main job on it, as an operator
# would from the admin host: bootstrap the cluster from the lab's spec (the admin host's services
# as processes: the lab has no container engine), then provision the nodes that took MAC-typed
# DHCP leases from the cluster, and show the cluster. Safe to re-run: every step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

x() { node bin/run.js "$@"; }
admin() { x lab exec admin -- "$@"; }

x lab up
admin sh -c 'xcluster bootstrap -f "$XCLUSTER_LAB_DIR/xcluster.yaml" --native --accept-new-host-key'

# s4, c1 and f1 have no fixed address: their DHCP clients get MAC-typed leases from the
# cluster's DHCP leader. systemd-networkd backs off between attempts while no server answered
# (before bootstrap): ask again now that one does.
unaddressed=(s4 c1 f1)
echo "Waiting for the cluster's DHCP leases of ${unaddressed[*]}..."
for _ in $(seq 1 30); do
  leased=$(admin xcluster dhcp leases --json | node -e '
    const want = process.argv.slice(1)
    const leases = JSON.parse(require("fs").readFileSync(0, "utf8"))
    process.stdout.write(String(want.filter((n) => leases.some((l) => l.node === n && !l.expired)).length))
  ' "${unaddressed[@]}")
  [ "$leased" = "${#unaddressed[@]}" ] && break
  for n in "${unaddressed[@]}"; do x lab exec "$n" -- systemctl restart systemd-networkd >/dev/null 2>&1 || true; done
  sleep 2
done
admin xcluster dhcp leases

admin xcluster node add "${unaddressed[@]}" --accept-new-host-key
admin xcluster node list
admin xcluster election list
