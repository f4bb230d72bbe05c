import {etcdMembers, type EtcdMemberPlan} from '../etcd/cluster-config.js'
import {preconditionError} from '../errors.js'
import type {ClusterSpec, NodeSpec} from '../spec/types.js'

/**
 * What a bootstrap forms, from the spec: the core nodes (3 or 5, each with a fixed address: they
 * are the etcd members), the seed (the first core node: provisioned from the admin host, it
 * forms the cluster and carries the bootstrap on), and the cluster's etcd members over TLS.
 */
export interface BootstrapPlan {
  cluster: string
  core: NodeSpec[]
  seed: NodeSpec
  /** The other core nodes, provisioned from the seed. */
  peers: NodeSpec[]
  members: EtcdMemberPlan[]
  /** The cluster etcd's client endpoints (https). */
  endpoints: string[]
}

export function bootstrapPlan(spec: ClusterSpec): BootstrapPlan {
  const core = spec.nodes.filter((n) => n.type === 'core')
  if (core.length !== 3 && core.length !== 5) {
    throw preconditionError(
      'BOOTSTRAP_CORE_COUNT',
      `The spec has ${core.length} core node${core.length === 1 ? '' : 's'} (${core.map((n) => n.name).join(', ') || 'none'}): an etcd cluster needs 3 or 5 to keep a quorum through a failure.`,
      'List exactly 3 (or 5) core nodes (s1, s2, s3 or type: core) with fixed ip: addresses in xcluster.yaml.',
    )
  }
  const members = etcdMembers(spec, {tls: true})
  const [seed, ...peers] = core as [NodeSpec, ...NodeSpec[]]
  return {cluster: spec.cluster, core, seed, peers, members, endpoints: members.map((m) => m.clientUrl)}
}
