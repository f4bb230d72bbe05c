/**
 * A conditional write whose answer is lost (a deadline, a dropped connection) is retried by the
 * store, and the retry's compares then fail against the first attempt's own commit. These prove
 * that config apply and the run journal report success in that case, not APPLY_CONFLICT or a run
 * id collision, by losing the answer of a commit that did happen.
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {readStoredSpec} from '../../src/lib/spec/store.js'
import {RunJournal, type RunRecord} from '../../src/lib/tasks/journal.js'
import {ROOT} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

const EXAMPLE = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')

/**
 * The `nth` transaction from now (the next by default) commits, and then its answer is lost as a
 * deadline: EtcdStore.call retries it, as it does for a real DEADLINE_EXCEEDED. Returns how many
 * transactions ran since, and whether the answer was lost yet.
 */
function loseNextTransactionAnswer(store: EtcdStore, nth = 1): {attempts: () => number; lost: () => boolean} {
  const call = store.call.bind(store)
  let armed = true
  let attempts = 0
  store.call = (async (what: string, fn: Parameters<EtcdStore['call']>[1]) =>
    call(what, async (client) => {
      const result = await fn(client)
      if (what === 'transaction') attempts++
      if (what === 'transaction' && armed && attempts === nth) {
        armed = false
        throw new Error('4 DEADLINE_EXCEEDED: deadline exceeded (the answer was lost after the commit)')
      }
      return result
    })) as EtcdStore['call']
  return {attempts: () => attempts, lost: () => !armed}
}

describe('a commit retried after its answer was lost', () => {
  let etcd: TestEtcd
  let store: EtcdStore

  before(async () => {
    etcd = await startEtcd()
  })
  after(async () => {
    await etcd.stop()
  })

  const fresh = (cluster: string) => {
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster})
    return store
  }

  it('the scenario is real: the plain commit reports a failed compare for its own write', async () => {
    const s = fresh('xcluster')
    const lost = loseNextTransactionAnswer(s)
    const key = s.keys.spec()
    const applied = await s.transaction().ifAbsent(key).put(key, {probe: true}).commit()
    assert.equal(lost.attempts(), 2, 'committed once, retried once')
    assert.equal(applied, false, 'the retry saw its own write and reported a conflict')
    assert.deepEqual((await s.getJson(key))?.value, {probe: true})
    await s.delete(key)
    await s.close()
  })

  it('config apply: whichever of its transactions loses its answer (claim, staging, commit, fold, its end), the apply succeeds (no APPLY_CONFLICT)', async () => {
    for (const nth of [1, 2, 3, 4, 5]) {
      const s = fresh(`apply${nth}`)
      const spec = parseSpec(EXAMPLE.replace('cluster: xcluster', `cluster: apply${nth}`), 'xcluster.yaml')
      const plan = await planApply(s, spec)
      const lost = loseNextTransactionAnswer(s, nth)
      await applyPlan(s, plan)
      assert.ok(lost.lost(), `transaction ${nth} lost its answer`)
      assert.equal((await s.listJson<NodeRecord>(s.keys.nodesPrefix())).length, spec.nodes.length)
      assert.equal((await s.listJson(s.keys.macsPrefix())).length, spec.nodes.length)
      assert.deepEqual(await readStoredSpec(s), spec)
      assert.equal(await s.getJson(s.keys.specFold()), undefined, 'the fold is finished')
      assert.equal(await s.getJson(s.keys.specApplyClaim()), undefined, 'the claim is released')
      if (nth < 5) await s.close()
    }
    // A real conflict is still one: someone else's change between plan and apply.
    const s = store
    const next = await planApply(
      s,
      parseSpec(EXAMPLE.replace('cluster: xcluster', 'cluster: apply5').replace('{name: s4, mac: "02:58:43:00:01:04"}', '{name: s4, mac: "02:58:43:00:01:04", ip: 10.0.0.12}'), 'x'),
    )
    const s4 = (await s.getJson<NodeRecord>(s.keys.node('s4')))!.value
    await s.put(s.keys.node('s4'), {...s4, state: 'ready'})
    await assert.rejects(applyPlan(s, next), /APPLY_CONFLICT|Nothing was written/)
    await s.close()
  })

  it('run journal: a started run is not a run id collision, a resumed run not a conflict', async () => {
    const s = fresh('journal')
    const journal = new RunJournal(s)
    loseNextTransactionAnswer(s)
    const record = await journal.start('node add', ['s1'], ['s1'])
    assert.equal((await s.getJson<RunRecord>(s.keys.run(record.id)))?.value.id, record.id)
    assert.ok(await s.getJson(s.keys.runLock(record.id)), 'the running run holds its lock')
    await journal.finish(record, 'failed', [])
    assert.equal(await s.getJson(s.keys.runLock(record.id)), undefined, 'finishing frees the lock')

    loseNextTransactionAnswer(s)
    const resumed = await journal.resume(record.id, 'node add')
    assert.equal(resumed.record.resumes, 1)
    assert.equal((await s.getJson<RunRecord>(s.keys.run(record.id)))?.value.resumes, 1)
    await journal.finish(resumed.record, 'succeeded', [])
    await s.close()
  })
})
