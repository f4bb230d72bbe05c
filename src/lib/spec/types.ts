import type {CephBackend} from '../ceph/cli.js'
import type {NodeType} from '../nodes/record.js'

/** An inclusive IPv4 range, written `10.0.0.11-10.0.0.30` in the spec. */
export interface IpRange {
  start: string
  end: string
}

export interface NetworkSpec {
  /** CIDR, e.g. 10.0.0.0/24. */
  subnet: string
  gateway: string
  dns: string[]
  domain: string
  adminVip: string
  ranges: {
    core: IpRange
    storage: IpRange
    compute: IpRange
    frontend: IpRange
    /** Short leases for unknown MACs so they can PXE boot into enlistment. */
    discovery: IpRange
  }
}

export interface NodeSpec {
  name: string
  /** Canonical form: lower-case, colon-separated. */
  mac: string
  /** A fixed address; without one the node is served by DHCP from its type's range. */
  ip?: string
  /** Resolved: from the spec when given, otherwise from the name. */
  type: NodeType
}

/**
 * PXE boot settings the DHCP server hands out. Optional in the spec: what is left out
 * defaults from the gateway (see src/lib/dhcp/pxe.ts).
 */
export interface PxeSpec {
  /** TFTP server (DHCP next-server / option 66). */
  tftpServer?: string
  /** The iPXE boot script URL, given to clients whose user class is iPXE. */
  httpBootUrl?: string
  /** Boot file for BIOS clients (option 93 = 0). */
  biosBootFile?: string
  /** Boot file for UEFI x86-64 clients (option 93 = 7 or 9). */
  uefiBootFile?: string
}

/**
 * A singleton service guarded by leader election (`xcluster serve --elect NAME`): at most one
 * node runs it at a time. Either `unit` (systemctl start/stop) or `start` and `stop` commands.
 */
export interface ServiceSpec {
  name: string
  /** Lease TTL in seconds: how long a dead leader can block a successor. */
  ttl: number
  start?: string
  stop?: string
  unit?: string
  /** Nodes allowed to campaign; every node when absent. */
  nodes?: string[]
  /** An address that must follow the leader (checked by `election check`). */
  vip?: string
  /**
   * An RBD image (`pool/image`) only the leader may use: before starting the service its daemon
   * fences the image (blocklists every other client, breaks their locks, records it under its
   * token); then it maps the image with librbd's exclusive lock held by the mapping itself
   * (see rbdMap), and unmaps it only once the service really stopped.
   */
  rbdImage?: string
  /** How the leader maps rbdImage (default auto). */
  rbdMap?: RbdMapMode
}

/**
 * `auto`: the kernel's rbd driver where the kernel has it, else rbd-nbd; `krbd` or `nbd`: that
 * one; `none`: serve fences but does not map (the service opens the image itself through librbd,
 * as QEMU does, and takes the exclusive lock with its own client).
 */
export const RBD_MAP_MODES = ['auto', 'krbd', 'nbd', 'none'] as const
export type RbdMapMode = (typeof RBD_MAP_MODES)[number]

/**
 * Where the nodes' packages come from. Optional in the spec: what is left out defaults from the
 * gateway (see src/lib/admin-services/packages.ts, packageSettings).
 */
export interface PackagesSpec {
  /**
   * Debian mirrors the admin host's package cache may fetch from, as URLs without a trailing
   * slash (e.g. http://deb.debian.org/debian): every other URL is refused.
   */
  mirrors?: string[]
  /**
   * The proxy the nodes' apt uses: a URL, or `none` for direct access. Default: the admin host's
   * cache, http://<network.gateway>:3128.
   */
  proxy?: string
  /** A parent proxy the admin host's cache must fetch through (when it has no route of its own). */
  upstream?: string
}

/** The cluster's Ceph. Optional in the spec: without it, MicroCeph. */
export interface CephSpec {
  /** `microceph` (microceph.ceph, microceph.rbd) or `ceph` (Debian's ceph, rbd). */
  backend: CephBackend
}

/** The validated cluster spec, as stored in etcd under `spec`. */
export interface ClusterSpec {
  cluster: string
  network: NetworkSpec
  ssh: {user: string; key: string}
  nodes: NodeSpec[]
  pxe?: PxeSpec
  /** Optional: package mirrors and proxies (defaults: Debian's mirrors through the admin host's cache). */
  packages?: PackagesSpec
  /** Optional: elected singleton services. */
  services?: ServiceSpec[]
  /**
   * Registered nodes that enlist (report their host keys to the DHCP leader) are provisioned by
   * the cluster itself, as `node add` would, with no operator. Default false.
   */
  autoProvision?: boolean
  /** Optional: which Ceph the storage commands drive (default microceph). */
  ceph?: CephSpec
}
