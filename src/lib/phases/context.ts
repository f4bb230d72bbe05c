import {CephCli, DEFAULT_CEPH_BACKEND} from '../ceph/cli.js'
import type {PoolAtRisk} from '../ceph/placement.js'
import type {EtcdStore} from '../etcd/store.js'
import type {NodeRecord} from '../nodes/record.js'
import type {ClusterSpec} from '../spec/types.js'
import type {HostKeyStore, HostPool, SshHost, SshTarget} from '../ssh/index.js'
import {RunContext} from '../tasks/context.js'
import type {Holdings} from './holdings.js'
import type {TaskHost} from '../tasks/phase.js'

/** A node being worked on over SSH. */
export interface NodeHost extends TaskHost {
  node: NodeRecord
  /** The node's IPv4 address now: fixed, or leased by DHCP. */
  ip?: string
  target: SshTarget
}

/** What the connect phase learned about a host; later phases decide from it without asking again. */
export interface HostFacts {
  hostname: string
  /** Installed Debian packages. */
  packages: Set<string>
}

/** The state shared by the phases of a node action. */
export class NodeRunContext extends RunContext<NodeHost> {
  readonly facts = new Map<string, HostFacts>()
  /** Leaderships, VIPs and OSDs per node (drain's preflight). */
  readonly holdings = new Map<string, Holdings>()
  /** Per node, the nodes drained together with it (itself included): leaderships move to none of them. */
  readonly drainedTogether = new Map<string, readonly string[]>()
  /** `node drain --force`: go on where Ceph could not keep every replica without the node. */
  force = false
  /** Per node, the pools a forced drain leaves without all their replicas (its OSDs go out unwaited). */
  readonly cephAtRisk = new Map<string, PoolAtRisk[]>()

  constructor(
    hosts: NodeHost[],
    dryRun: boolean,
    /** Where the cluster's state is: bootstrap moves it from the admin host's etcd to the cluster's. */
    public store: EtcdStore,
    readonly spec: ClusterSpec,
    /** Every node of the cluster (for /etc/hosts, time servers, quorum checks). */
    readonly cluster: NodeRecord[],
    readonly pool: HostPool,
    public hostKeys: HostKeyStore,
  ) {
    super(hosts, dryRun)
  }

  ssh(host: NodeHost): Promise<SshHost> {
    return this.pool.get(host.target)
  }

  /** The node's ceph and rbd CLIs, of the spec's backend, over its SSH connection. */
  async ceph(host: NodeHost): Promise<CephCli> {
    return new CephCli(await this.ssh(host), this.spec.ceph?.backend ?? DEFAULT_CEPH_BACKEND)
  }

  factsOf(host: NodeHost): HostFacts {
    const facts = this.facts.get(host.name)
    if (!facts) throw new Error(`no facts for ${host.name}: the connect phase must run first`)
    return facts
  }
}
