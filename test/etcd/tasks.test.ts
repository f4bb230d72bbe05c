import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {RunContext} from '../../src/lib/tasks/context.js'
import {phaseTimings, RunJournal} from '../../src/lib/tasks/journal.js'
import type {Phase, TaskHost} from '../../src/lib/tasks/phase.js'
import {assertRunSucceeded, runPhases} from '../../src/lib/tasks/runner.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

// The engine's own logic, with in-memory hosts (the SSH-backed phases are proven in the lab).
type Host = TaskHost & {files: Set<string>; broken?: boolean}

const hosts = (n: number): Host[] => Array.from({length: n}, (_, i) => ({name: `h${i + 1}`, files: new Set<string>()}))

function writeFilePhase(id: string, file: string, log: string[]): Phase<Host> {
  return {
    id,
    title: `write ${file}`,
    async run(ctx, host) {
      if (host.broken) throw new Error(`command "touch ${file}" exited 1: Permission denied`)
      if (host.files.has(file)) return // idempotent: check before change
      await ctx.wet(host, `create ${file}`, async () => {
        host.files.add(file)
        log.push(`${id}:${host.name}`)
      })
    },
  }
}

describe('task runner: ordered phases, parallel hosts, checkpoints', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let journal: RunJournal

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'tasks'})
    journal = new RunJournal(store)
  })
  after(async () => {
    await store.close()
    await etcd.stop()
  })

  it('runs phases in order and hosts in parallel, bounded by concurrency', async () => {
    let inFlight = 0
    let peak = 0
    const order: string[] = []
    const slow: Phase<Host> = {
      id: 'slow',
      title: 'slow step',
      async run(_ctx, host) {
        inFlight++
        peak = Math.max(peak, inFlight)
        await new Promise((r) => setTimeout(r, 30))
        inFlight--
        order.push(`slow:${host.name}`)
      },
    }
    const last: Phase<Host> = {
      id: 'last',
      title: 'last',
      async run(_c, host) {
        order.push(`last:${host.name}`)
      },
    }
    const ctx = new RunContext(hosts(7), false)
    const summary = await runPhases([slow, last], ctx, {action: 'test', args: [], progress: 'silent', concurrency: 3, journal})
    assert.equal(summary.result, 'succeeded')
    assert.equal(peak, 3)
    assert.ok(order.indexOf('last:h1') > Math.max(...ctx.hosts.map((h) => order.indexOf(`slow:${h.name}`))), 'phase 2 starts after phase 1 ends')
  })

  it('a failing host drops out; the others finish; --resume completes only what is left', async () => {
    const log: string[] = []
    const fleet = hosts(4)
    fleet[1].broken = true
    const phases = [writeFilePhase('one', '/etc/a', log), writeFilePhase('two', '/etc/b', log)]
    const first = await runPhases(phases, new RunContext(fleet, false), {action: 'node add', args: ['node', 'add'], progress: 'silent', journal})
    assert.equal(first.result, 'failed')
    assert.deepEqual(
      first.hosts.filter((h) => h.status === 'failed').map((h) => h.name),
      ['h2'],
    )
    assert.ok(!log.includes('two:h2'), 'a failed host does not run later phases')
    assert.equal(log.filter((l) => l.startsWith('two:')).length, 3)
    assert.throws(
      () => assertRunSucceeded(first),
      (err: unknown) => {
        assert.ok(err instanceof XclusterError)
        assert.equal(err.exit, 4)
        assert.match(err.message, /failed on 1 of 4 hosts \(run [0-9-a-f]+\)/)
        assert.match(err.message, /h2 \(phase one\): command "touch \/etc\/a" exited 1: Permission denied/)
        assert.match(err.suggestion!, new RegExp(`--resume ${first.runId}`))
        return true
      },
    )

    fleet[1].broken = false
    log.length = 0
    const ranAgain: string[] = []
    const spy = phases.map((p) => ({
      ...p,
      async run(ctx: RunContext<Host>, host: Host) {
        ranAgain.push(`${p.id}:${host.name}`)
        return p.run(ctx, host)
      },
    }))
    const resumed = await runPhases(spy, new RunContext(fleet, false), {action: 'node add', args: [], progress: 'silent', journal, resume: first.runId})
    assert.equal(resumed.result, 'succeeded')
    assert.equal(resumed.runId, first.runId)
    assert.deepEqual(ranAgain.sort(), ['one:h2', 'two:h2'], 'checkpointed (phase, host) pairs are skipped')
    const shown = await journal.show(first.runId!)
    assert.equal(shown.record.result, 'succeeded')
    assert.equal(shown.record.resumes, 1)
    assert.equal(shown.checkpoints.length, 8)
    // Every step carries when it finished; the phases come out in the order they ran, the
    // resume's passes after the first run's.
    assert.equal(shown.steps.length, 8)
    for (const step of shown.steps) assert.ok(Date.parse(step.at) >= Date.parse(shown.record.startedAt), `${step.phase}/${step.host} at ${step.at}`)
    const timings = phaseTimings(shown.record, shown.steps)
    assert.deepEqual(
      timings.map((t) => `${t.phase}:${t.hosts.join(',')}`),
      ['one:h1,h3,h4', 'two:h1,h3,h4', 'one:h2', 'two:h2'],
    )
    for (let i = 1; i < timings.length; i++) assert.ok(timings[i].finishedAfterMs >= timings[i - 1].finishedAfterMs)
    assert.equal(
      timings.reduce((sum, t) => sum + t.tookMs, 0),
      timings.at(-1)!.finishedAfterMs,
    )
  })

  it('re-running a finished action changes nothing', async () => {
    const fleet = hosts(3)
    const log: string[] = []
    const phases = [writeFilePhase('one', '/etc/a', log)]
    const first = await runPhases(phases, new RunContext(fleet, false), {action: 'x', args: [], progress: 'silent', journal})
    assert.equal(first.changed, 3)
    const again = await runPhases(phases, new RunContext(fleet, false), {action: 'x', args: [], progress: 'silent', journal})
    assert.equal(again.changed, 0)
  })

  it('dry-run records the plan per host, changes nothing and writes nothing to etcd', async () => {
    const fleet = hosts(2)
    const log: string[] = []
    const before = await store.snapshot()
    const summary = await runPhases([writeFilePhase('one', '/etc/a', log)], new RunContext(fleet, true), {action: 'x', args: [], progress: 'silent', journal})
    assert.equal(summary.result, 'planned')
    assert.deepEqual(summary.plan, {h1: ['create /etc/a'], h2: ['create /etc/a']})
    assert.equal(log.length, 0)
    assert.equal(fleet[0].files.size, 0)
    assert.deepEqual(await store.snapshot(), before)
  })

  it('refuses to resume an unknown run or a run of another action', async () => {
    await assert.rejects(journal.resume('20260101-000000-abcdef', 'x'), /No run with id/)
    const r = await runPhases([], new RunContext(hosts(1), false), {action: 'x', args: [], progress: 'silent', journal})
    await assert.rejects(journal.resume(r.runId!, 'x'), /already succeeded/)
  })
})
