/**
 * The rolling update's pure parts: which nodes a selector picks, the order and batches they go
 * in, the checks that refuse a batch (etcd quorum, an election's last candidate), and how a
 * playbook's output becomes each host's verdict.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import type {NodeRecord, NodeState, NodeType} from '../../src/lib/nodes/record.js'
import {parseNodeSelector, selectNodes} from '../../src/lib/nodes/selector.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {candidatesCheck, quorumCheck, refusedChecks, splitBatches, updateOrder, type Leadership} from '../../src/lib/update/plan.js'
import {failureOf, parseRecap, playbookOutcome} from '../../src/lib/update/playbook.js'

const node = (name: string, type: NodeType, state: NodeState = 'ready'): NodeRecord => ({name, type, mac: '02:00:00:00:00:00', state, createdAt: '', updatedAt: ''})
const CLUSTER = [node('s1', 'core'), node('s2', 'core'), node('s3', 'core'), node('s4', 'storage'), node('c10', 'compute'), node('c2', 'compute'), node('f1', 'frontend')]
const names = (nodes: NodeRecord[]) => nodes.map((n) => n.name)
const noLeaders: Leadership = {leads: new Map()}
const spec = (services: ClusterSpec['services'] = []) => ({services}) as ClusterSpec

const refusedWith = (code: string, message: RegExp) => (err: unknown) => err instanceof XclusterError && err.code === code && message.test(err.message)

describe('node selector', () => {
  it('names, types and states: names add nodes, key=value terms filter (values of a key are alternatives)', () => {
    assert.deepEqual(names(selectNodes(parseNodeSelector('s1,c2'), CLUSTER)), ['s1', 'c2'])
    assert.deepEqual(names(selectNodes(parseNodeSelector('type=core'), CLUSTER)), ['s1', 's2', 's3'])
    assert.deepEqual(names(selectNodes(parseNodeSelector('type=compute,type=frontend'), CLUSTER)), ['c10', 'c2', 'f1'])
    const mixed = [...CLUSTER.slice(0, 2), node('s3', 'core', 'drained'), ...CLUSTER.slice(3)]
    assert.deepEqual(names(selectNodes(parseNodeSelector('type=core,state=ready'), mixed)), ['s1', 's2'])
    assert.deepEqual(names(selectNodes(parseNodeSelector('f1,type=core,state=drained'), mixed)), ['s3', 'f1'])
  })

  it('removed nodes are never selected', () => {
    const withRemoved = [...CLUSTER, node('c9', 'compute', 'removed')]
    assert.deepEqual(names(selectNodes(parseNodeSelector('type=compute'), withRemoved)), ['c10', 'c2'])
    assert.throws(() => selectNodes(parseNodeSelector('c9'), withRemoved), refusedWith('NODE_NOT_FOUND', /Unknown node: c9/))
  })

  it('refuses a malformed selector (usage), an unknown node and a selection of nothing', () => {
    for (const [text, why] of [
      ['', /an empty term/],
      ['s1,,s2', /an empty term/],
      ['type=', /"type=" is not KEY=VALUE/],
      ['type=gpu', /unknown type "gpu"/],
      ['state=sleeping', /unknown state "sleeping"/],
      ['rack=3', /unknown key "rack"/],
      ['s 1', /"s 1" is not a node name/],
    ] as const) {
      assert.throws(() => parseNodeSelector(text), refusedWith('USAGE', why), text)
    }
    assert.throws(() => selectNodes(parseNodeSelector('s1,zz9,zz8'), CLUSTER), refusedWith('NODE_NOT_FOUND', /Unknown nodes: zz9, zz8/))
    assert.throws(() => selectNodes(parseNodeSelector('state=failed'), CLUSTER), refusedWith('NO_NODES_SELECTED', /selects no node/))
  })
})

describe('update order and batches', () => {
  it('non-core nodes first (by type, then name in natural order), then the core nodes', () => {
    assert.deepEqual(names(updateOrder(CLUSTER, noLeaders)), ['s4', 'c2', 'c10', 'f1', 's1', 's2', 's3'])
  })

  it('core nodes leading elections go after those leading none, the etcd leader last', () => {
    const leadership: Leadership = {
      etcdLeader: 's1',
      leads: new Map([
        ['s2', ['dhcp', 'web']],
        ['s3', ['provision']],
      ]),
    }
    assert.deepEqual(
      names(
        updateOrder(
          CLUSTER.filter((n) => n.type === 'core'),
          leadership,
        ),
      ),
      ['s3', 's2', 's1'],
    )
    // The etcd leader goes last even when it leads no election.
    assert.deepEqual(
      names(
        updateOrder(
          CLUSTER.filter((n) => n.type === 'core'),
          {etcdLeader: 's2', leads: new Map([['s1', ['dhcp']]])},
        ),
      ),
      ['s3', 's1', 's2'],
    )
  })

  it('batches of --serial nodes in order; the last one may be smaller', () => {
    assert.deepEqual(splitBatches(['a', 'b', 'c', 'd', 'e'], 2), [['a', 'b'], ['c', 'd'], ['e']])
    assert.deepEqual(splitBatches(['a', 'b'], 1), [['a'], ['b']])
    assert.deepEqual(splitBatches(['a', 'b'], 5), [['a', 'b']])
    assert.throws(() => splitBatches(['a'], 0), RangeError)
  })
})

describe('batch checks', () => {
  it("quorum: node drain's rule for the whole batch", () => {
    assert.equal(quorumCheck(['c2'], CLUSTER).status, 'skipped')
    const one = quorumCheck(['s1'], CLUSTER)
    assert.equal(one.status, 'ok')
    assert.match(one.observed, /2 of 3 core nodes stay up while s1 is drained; etcd needs 2/)
    const two = quorumCheck(['s1', 's2'], CLUSTER)
    assert.equal(two.status, 'refused')
    assert.match(two.fix!, /xcluster update --nodes type=core --serial 1/)
  })

  it('quorum: a core node already drained counts as down, and the fix brings it back', () => {
    const nodes = CLUSTER.map((n) => (n.name === 's3' ? node('s3', 'core', 'drained') : n))
    const check = quorumCheck(['s1'], nodes)
    assert.equal(check.status, 'refused')
    assert.match(check.observed, /1 of 3 core nodes stay up while s1 is drained; etcd needs 2/)
    assert.equal(check.fix, 'Bring s3 back to ready first: xcluster node undrain s3')
  })

  it('candidates: an election keeps a live, ready, eligible candidate outside the batch', () => {
    const elections = [
      {service: 'dhcp', leader: 's1', candidates: ['s1', 's2', 's3']},
      {service: 'web', leader: 's1', candidates: ['s1', 's3']},
    ]
    const s = spec([{name: 'web', ttl: 3, start: 'true', stop: 'true', nodes: ['s1', 's2']}])
    assert.equal(candidatesCheck(['c2'], elections, s, CLUSTER).status, 'skipped')
    assert.equal(candidatesCheck(['s2'], elections, s, CLUSTER).status, 'ok')
    // s3 campaigns for web but the spec does not let it run web: s1 is web's last candidate.
    const last = candidatesCheck(['s1'], elections, s, CLUSTER)
    assert.equal(last.status, 'refused')
    assert.match(last.observed, /web: no other eligible candidate \(candidates: s1, s3\)/)
    assert.match(last.observed, /dhcp: s2, s3 can take over/)
    assert.match(last.fix!, /xcluster election show web/)
    // A candidate on a node that is not ready does not count.
    const drained = CLUSTER.map((n) => (n.name === 's3' ? node('s3', 'core', 'drained') : n))
    assert.equal(candidatesCheck(['s1', 's2'], [{service: 'dhcp', leader: 's1', candidates: ['s1', 's2', 's3']}], spec(), drained).status, 'refused')
  })

  it('refusedChecks lists every refused check with its batch', () => {
    const refused = refusedChecks([
      {index: 1, nodes: ['s1'], checks: [quorumCheck(['s1'], CLUSTER)]},
      {index: 2, nodes: ['s2', 's3'], checks: [quorumCheck(['s2', 's3'], CLUSTER)]},
    ])
    assert.deepEqual(
      refused.map((r) => [r.batch.index, r.check.check]),
      [[2, 'quorum']],
    )
  })
})

describe('playbook output', () => {
  const OUTPUT = `PLAY [Upgrade the node's Debian packages] *****
TASK [Fail on purpose] *****
ok: [s4]
fatal: [c1]: FAILED! => {"changed": false, "msg": "broken on c1"}
fatal: [f1]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: Host key verification failed.", "unreachable": true}

PLAY RECAP *********************************************************************
c1                         : ok=1    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
f1                         : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
s4                         : ok=2    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
`

  it('reads the PLAY RECAP and the message of each failed host', () => {
    assert.deepEqual(parseRecap(OUTPUT).get('s4'), {ok: 2, changed: 1, unreachable: 0, failed: 0})
    assert.equal(failureOf(OUTPUT, 'c1'), 'failed: broken on c1')
    assert.match(failureOf(OUTPUT, 'f1')!, /^unreachable: .*Host key verification failed/)
    assert.equal(failureOf(OUTPUT, 's4'), undefined)
  })

  it('each host of the batch: ok, failed with why, or missing from the recap; a run failing as a whole fails them all', () => {
    const outcome = playbookOutcome(2, OUTPUT, ['s4', 'c1', 'f1', 'c2'])
    assert.deepEqual([...outcome.failures.keys()].sort(), ['c1', 'c2', 'f1'])
    assert.match(outcome.failures.get('c2')!, /not in the PLAY RECAP \(exit 2\)/)
    const syntax = playbookOutcome(4, 'ERROR! We were unable to read either as JSON nor YAML', ['s4'])
    assert.match(syntax.failures.get('s4')!, /not in the PLAY RECAP \(exit 4\): ERROR! We were unable/)
    assert.equal(
      playbookOutcome(
        0,
        OUTPUT.replace(/fatal.*\n/g, '')
          .replace('failed=1', 'failed=0')
          .replace('unreachable=1', 'unreachable=0'),
        ['s4', 'c1', 'f1'],
      ).failures.size,
      0,
    )
  })
})
