import {settings} from '../src/lib/settings.js'

/**
 * Every Debian package the test suite needs, in one place: the lab's own (lab up installs those
 * too) and what the tests use besides: sshd, dnsmasq, keepalived, QEMU with iPXE, a Ceph cluster,
 * and util-linux/bsdutils for namespaces and pseudo-terminals.
 */
export const TEST_PACKAGES: readonly string[] = [
  ...settings.lab.hostPackages,
  'openssh-server',
  'dnsmasq-base',
  'keepalived',
  'sudo',
  'util-linux',
  'bsdutils',
  'passwd',
  'qemu-system-x86',
  'ipxe-qemu',
  'ceph-mon',
  'ceph-mgr',
  'ceph-osd',
  'ceph-common',
  // The librbd writer of the RBD fence tests (test/helpers/rbd-writer.py), run by Debian's python3.
  'python3-rados',
  'python3-rbd',
  // ceph disk add's LVM preparation on loop devices, and what it refuses (test/ssh/ceph-admin.test.ts).
  'lvm2',
  'e2fsprogs',
  'mount',
  // The admin host's bootstrap services (src/lib/admin-services) and their checks.
  'chrony',
  'nginx-light',
  'ipxe',
  'docker-compose',
  'curl',
  // promtool, Prometheus' own parser and linter of /metrics (test/etcd/health-api.test.ts).
  'prometheus',
  // ansible-inventory and ansible through the exported inventory plugin (test/etcd/inventory.test.ts, test/lab/inventory.test.ts).
  'ansible',
  // ansible-lint on the shipped playbooks (test/unit/ansible-playbooks.test.ts).
  'ansible-lint',
  // pebble and pebble-challtestsrv: a real ACME CA on loopback for cert acme issue (test/etcd/acme.test.ts).
  'pebble',
  // The browser playwright-core drives to test the web dashboard (test/etcd/dashboard.test.ts).
  'chromium',
  // Test machines with a kernel of their own, whose rbd driver maps a leader's image (test/uml/).
  // rbd-nbd maps it where a kernel has nbd but no rbd driver (rbdMap: auto picks it there).
  'user-mode-linux',
  'kmod',
  'rbd-nbd',
]
