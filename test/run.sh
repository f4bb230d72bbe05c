#!/usr/bin/env bash
# The whole suite: unit tests, tests against real etcd and sshd on loopback, and tests against
# one shared lab of real nodes, brought up once for the run; the last test takes it down and
# checks that nothing is left. Ends with one line: N passed, N failed.
# XCLUSTER_KEEP_LAB=1 keeps the lab for debugging (and so does not run the teardown test).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "the test suite builds a lab of real nodes and needs root: re-run with sudo" >&2
  exit 3
fi

# The Debian packages the tests need (test/packages.ts), installed where missing.
node --import tsx test/install-packages.ts

xcluster() { node bin/run.js "$@"; }

teardown() {
  if [ "${XCLUSTER_KEEP_LAB:-0}" != 1 ]; then xcluster lab down --yes >&2 || true; fi
}
trap teardown EXIT

xcluster lab up >&2

shopt -s nullglob
out=$(mktemp -d)
# 1. Everything but the teardown, inside the admin namespace, where the lab's nodes are reachable
#    (the root namespace has no route in), in two streams side by side: most tests wait on
#    timeouts, leases and remote hosts rather than on this machine's two cores, and one stream
#    after the other would take ~70 minutes. Within a stream the files run one at a time.
#    - lab: the tests that share the one lab (in order: bootstrap first), then the tests of
#      sandboxed hosts over SSH;
#    - local: the unit tests, the tests against etcd, DHCP and admin services on loopback or in
#      namespaces of their own, and the User-mode Linux machines.
#    No two files use the same thing: the lab's nodes only the first stream's, every other test
#    makes its servers, ports, namespaces and cgroups under names of its own.
lab_files=(test/lab/*.test.ts test/ssh/*.test.ts)
local_files=(test/unit/*.test.ts test/etcd/*.test.ts test/dhcp/*.test.ts test/admin/*.test.ts test/uml/*.test.ts)
status=0
#    Guards so a hang can only fail the run, never stall it: a test may take 10 minutes at most,
#    a file whose tests are done exits even if a leaked handle would keep it alive, and each
#    stream is cut off after 60 minutes (CI allows 90; installing, the lab and the teardown take ~5).
guards=(--test-timeout=600000 --test-force-exit)
stream() {
  local name=$1 code
  shift
  # Each stream's TAP goes whole to its own file; on the console, each line says its stream.
  set +e
  timeout --kill-after=30s 60m ip netns exec xc-admin node --import tsx --test --test-concurrency=1 "${guards[@]}" "$@" | tee "$out/$name.tap" | sed -u "s/^/$name| /"
  code=${PIPESTATUS[0]}
  set -e
  if [ "$code" = 124 ]; then
    echo "# fail 1 (the $name stream was cut off after 60 minutes: a test hung; see its last test above)" | tee -a "$out/$name.tap"
  fi
  return "$code"
}
stream lab "${lab_files[@]}" &
lab_stream=$!
stream local "${local_files[@]}" &
local_stream=$!
wait "$lab_stream" || status=1
wait "$local_stream" || status=1
# 2. The teardown test takes the lab down and checks nothing is left. It runs in the root
#    namespace: `lab down` kills whatever still runs inside the lab's namespaces.
if [ "${XCLUSTER_KEEP_LAB:-0}" = 1 ]; then
  echo "NOT RUN: test/teardown (XCLUSTER_KEEP_LAB=1 keeps the lab up)" >&2
else
  timeout --kill-after=30s 5m node --import tsx --test "${guards[@]}" test/teardown/*.test.ts | tee "$out/teardown.tap" || status=1
fi

count() { awk -v k="# $1" '$1" "$2 == k {n += $3} END {print n + 0}' "$out"/*.tap; }
# A test cancelled (its hook failed, or it timed out) counts as failed; so does a skipped one:
# nothing may be skipped silently.
echo "$(count pass) passed, $(( $(count fail) + $(count cancelled) + $(count skipped) )) failed"
rm -rf "$out"
exit $status
