#!/usr/bin/env bash
# The whole suite in one `node --test` run: unit tests, tests against real etcd and sshd on
# loopback, and tests against one shared lab of real nodes. The lab is brought up once for the
# run and torn down at the end (XCLUSTER_KEEP_LAB=1 keeps it for debugging).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "the test suite builds a lab of real nodes and needs root: re-run with sudo" >&2
  exit 3
fi

xcluster() { node bin/run.js "$@"; }

teardown() {
  if [ "${XCLUSTER_KEEP_LAB:-0}" != 1 ]; then xcluster lab down --yes >&2 || true; fi
}
trap teardown EXIT

xcluster lab up >&2

shopt -s nullglob
files=(test/unit/*.test.ts test/etcd/*.test.ts test/ssh/*.test.ts test/dhcp/*.test.ts test/lab/*.test.ts)
# Inside the admin namespace the lab's nodes are reachable (the root namespace has no route in).
ip netns exec xc-admin node --import tsx --test "${files[@]}"
