import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {describeRisks, failureDomain, poolsAtRisk, type PlacementInput} from '../../src/lib/ceph/placement.js'

/** A CRUSH tree: root default, a host bucket per entry holding those OSD ids (up and in unless listed). */
function cluster(hosts: Record<string, number[]>, pools: {name: string; size: number; minSize: number; rule?: number}[], down: number[] = []): PlacementInput {
  const nodes: PlacementInput['tree']['nodes'] = [{id: -1, name: 'default', type: 'root', children: []}]
  let bucket = -2
  const osds: PlacementInput['dump']['osds'] = []
  for (const [name, ids] of Object.entries(hosts)) {
    nodes[0]!.children!.push(bucket)
    nodes.push({id: bucket--, name, type: 'host', children: ids})
    for (const id of ids) {
      nodes.push({id, name: `osd.${id}`, type: 'osd'})
      osds.push({osd: id, up: down.includes(id) ? 0 : 1, in: 1})
    }
  }
  return {
    dump: {osds, pools: pools.map((p) => ({pool_name: p.name, size: p.size, min_size: p.minSize, crush_rule: p.rule ?? 0}))},
    tree: {nodes},
    rules: [
      {rule_id: 0, rule_name: 'replicated_rule', steps: [{op: 'take'}, {op: 'chooseleaf_firstn', num: 0, type: 'host'}, {op: 'emit'}]},
      {rule_id: 1, rule_name: 'per-osd', steps: [{op: 'take'}, {op: 'choose_firstn', num: 0, type: 'osd'}, {op: 'emit'}]},
    ],
  }
}

describe('Ceph placement without the leaving OSDs', () => {
  it('three hosts, three replicas one per host: without a host, two are left and the pool is at risk', () => {
    const input = cluster({s4: [0, 1], s5: [2], s6: [3]}, [{name: 'rbd', size: 3, minSize: 2}])
    assert.deepEqual(poolsAtRisk(input, [0, 1]), [{pool: 'rbd', size: 3, minSize: 2, failureDomain: 'host', remaining: 2, inactive: false}])
    assert.equal(describeRisks(poolsAtRisk(input, [0, 1])), 'pool rbd keeps 2 of 3 replicas (2 hosts with an OSD up and in would be left)')
    assert.deepEqual(poolsAtRisk(input, [0]), [], "one of s4's two OSDs: s4 still holds a replica")
  })

  it('a fourth host takes the replica; a host whose only OSD is down does not count', () => {
    assert.deepEqual(poolsAtRisk(cluster({s4: [0], s5: [1], s6: [2], s7: [3]}, [{name: 'rbd', size: 3, minSize: 2}]), [0]), [])
    const risks = poolsAtRisk(cluster({s4: [0], s5: [1], s6: [2], s7: [3]}, [{name: 'rbd', size: 3, minSize: 2}], [3]), [0])
    assert.deepEqual(
      risks.map((r) => r.remaining),
      [2],
    )
  })

  it('below min_size the pool would stop serving I/O, and says so', () => {
    const risks = poolsAtRisk(cluster({s4: [0], s5: [1]}, [{name: 'pg', size: 3, minSize: 2}]), [0])
    assert.deepEqual(risks, [{pool: 'pg', size: 3, minSize: 2, failureDomain: 'host', remaining: 1, inactive: true}])
    assert.match(describeRisks(risks), /1 host with an OSD up and in would be left; below its min_size 2, it stops serving I\/O/)
  })

  it("each pool by its own rule's failure domain: per OSD, two OSDs on one host are two places", () => {
    const input = cluster({s4: [0], s5: [1, 2]}, [
      {name: 'by-host', size: 2, minSize: 1},
      {name: 'by-osd', size: 2, minSize: 1, rule: 1},
    ])
    assert.deepEqual(
      poolsAtRisk(input, [0]).map((r) => r.pool),
      ['by-host'],
    )
    assert.equal(failureDomain(input.rules[1]), 'osd')
    assert.equal(failureDomain(undefined), 'host', 'an unknown rule is taken as the usual host rule')
  })
})
