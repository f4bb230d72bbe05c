/**
 * Whether Ceph can keep every replica once some OSDs leave: each pool's CRUSH rule puts its
 * replicas in distinct failure domains (hosts, usually), so a pool of size N needs N domains
 * with an OSD up and in. Fewer, and its placement groups stay degraded (data at risk); fewer than
 * min_size, and they stop serving I/O. Pure: the JSON of `ceph osd dump`, `ceph osd tree` and
 * `ceph osd crush rule dump`, as Pacific prints it.
 */
import type {CephCli} from './cli.js'

export interface OsdDumpJson {
  osds: {osd: number; up: number; in: number}[]
  pools: {pool_name: string; size: number; min_size: number; crush_rule: number}[]
}

export interface OsdTreeJson {
  nodes: {id: number; name: string; type: string; children?: number[]}[]
}

export interface CrushRuleJson {
  rule_id: number
  rule_name?: string
  steps: {op: string; type?: string; num?: number}[]
}

export interface PlacementInput {
  dump: OsdDumpJson
  tree: OsdTreeJson
  rules: CrushRuleJson[]
}

/** A pool that could not keep its replicas without the leaving OSDs. */
export interface PoolAtRisk {
  pool: string
  size: number
  minSize: number
  /** The CRUSH bucket type its replicas are spread over (host, osd, rack...). */
  failureDomain: string
  /** Failure domains with an OSD up and in once the leaving OSDs are out. */
  remaining: number
  /** Fewer domains than min_size: its placement groups would stop serving I/O. */
  inactive: boolean
}

/** The bucket type a rule spreads replicas over: the type of its first choose step. */
export function failureDomain(rule: CrushRuleJson | undefined): string {
  const choose = rule?.steps.find((s) => s.op.startsWith('choose'))
  return choose?.type ?? 'host'
}

/** Pools whose replicas would not all find a failure domain once `leaving` OSDs are out. */
export function poolsAtRisk({dump, tree, rules}: PlacementInput, leaving: readonly number[]): PoolAtRisk[] {
  const parent = new Map<number, number>()
  for (const node of tree.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const typeOf = new Map(tree.nodes.map((n) => [n.id, n.type]))
  const staying = dump.osds.filter((o) => o.up === 1 && o.in === 1 && !leaving.includes(o.osd)).map((o) => o.osd)
  /** The OSD's ancestor of that type (itself for `osd`); undefined when CRUSH has none. */
  const domainOf = (osd: number, type: string): number | undefined => {
    for (let id: number | undefined = osd; id !== undefined; id = parent.get(id)) if (typeOf.get(id) === type) return id
    return undefined
  }
  const risks: PoolAtRisk[] = []
  for (const pool of dump.pools) {
    const domain = failureDomain(rules.find((r) => r.rule_id === pool.crush_rule))
    const remaining = new Set(staying.map((osd) => domainOf(osd, domain)).filter((d) => d !== undefined)).size
    if (remaining < pool.size) risks.push({pool: pool.pool_name, size: pool.size, minSize: pool.min_size, failureDomain: domain, remaining, inactive: remaining < pool.min_size})
  }
  return risks
}

/** Reads what poolsAtRisk needs from the cluster, over one node's Ceph CLI. */
export async function readPlacement(cli: CephCli): Promise<PlacementInput> {
  const [dump, tree, rules] = await Promise.all([
    cli.json<OsdDumpJson>({tool: 'ceph', args: ['osd', 'dump']}),
    cli.json<OsdTreeJson>({tool: 'ceph', args: ['osd', 'tree']}),
    cli.json<CrushRuleJson[]>({tool: 'ceph', args: ['osd', 'crush', 'rule', 'dump']}),
  ])
  return {dump, tree, rules}
}

/** `pool data keeps 2 of 3 replicas (2 hosts besides the leaving OSDs)`, one clause per pool. */
export function describeRisks(risks: readonly PoolAtRisk[]): string {
  return risks
    .map(
      (r) =>
        `pool ${r.pool} keeps ${r.remaining} of ${r.size} replicas (${r.remaining} ${r.failureDomain}${r.remaining === 1 ? '' : 's'} with an OSD up and in would be left${r.inactive ? `; below its min_size ${r.minSize}, it stops serving I/O` : ''})`,
    )
    .join('; ')
}
