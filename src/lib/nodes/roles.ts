import type {NodeType} from './record.js'

/** What each node type runs. Packages are installed through the cluster's package cache. */
export interface Role {
  packages: string[]
  /** Units enabled and started once provisioned; stopped by `node drain`. */
  services: string[]
  /** Stateful services that a drain must stop after handing over their leadership. */
  statefulServices: string[]
}

const base = ['chrony']

export const ROLES: Readonly<Record<NodeType, Role>> = {
  // The serve daemon (DHCP, elected singletons) and keepalived (the admin VIP) stop on drain, so a
  // drained core node neither campaigns nor holds a VIP; units that are not installed are skipped.
  // The control plane: an etcd member, keepalived for the admin VIP, DNS/TFTP (dnsmasq without
  // DHCP, iPXE binaries) and the package cache; etcdctl lets an instance's guardian free a dead
  // serve's lease at once (libexec/xcluster-guardian). Bootstrap configures and starts them.
  core: {
    packages: [...base, 'etcd-server', 'etcd-client', 'keepalived', 'dnsmasq-base', 'ipxe', 'squid'],
    services: ['chrony'],
    statefulServices: ['xcluster-serve', 'keepalived'],
  },
  storage: {packages: [...base, 'lvm2'], services: ['chrony'], statefulServices: []},
  compute: {packages: [...base], services: ['chrony'], statefulServices: []},
  frontend: {packages: [...base, 'nginx-light'], services: ['chrony', 'nginx'], statefulServices: ['nginx']},
}
