import assert from 'node:assert/strict'
import {createServer, type Server} from 'node:net'
import {describe, it} from 'node:test'

import {GRPCDeadlineExceededError, GRPCUnavailableError} from 'etcd3'

import {MemberGate, MemberSkippedError, tcpProbe, type MemberProbe} from '../../src/lib/etcd/member-gate.js'

const HOSTS = ['https://10.0.0.2:2379', 'https://10.0.0.3:2379', 'https://10.0.0.4:2379']
const options = {probeTimeoutMs: 3000, backoffMs: 1000, maxBackoffMs: 10_000}

/** A probe whose answers the test gives, per host, when it wants. */
function scriptedProbe(): {probe: MemberProbe; answer(host: string, up: boolean): void; calls: string[]} {
  const pending = new Map<string, (up: boolean) => void>()
  const calls: string[] = []
  return {
    calls,
    probe: (host) => {
      calls.push(host)
      return new Promise((resolve) => pending.set(host, resolve))
    },
    answer: (host, up) => pending.get(host)?.(up),
  }
}

/** Runs `fn` through the host's policy: 'skipped' when the gate skipped it, else what fn returned. */
async function through(gate: MemberGate, host: string, fn: () => Promise<string> = async () => host): Promise<string> {
  try {
    return await gate.policy(host).execute(fn)
  } catch (err) {
    if (err instanceof MemberSkippedError) return 'skipped'
    throw err
  }
}

describe('MemberGate: calls go to members whose connection is up', () => {
  it('a member whose probe is pending is skipped once another is up, so a dead machine is never waited on', async () => {
    const probe = scriptedProbe()
    const gate = new MemberGate(HOSTS, {...options, probe: probe.probe})
    const first = through(gate, HOSTS[0] as string)
    assert.deepEqual(probe.calls, HOSTS, 'the first call probes every member at once')
    probe.answer(HOSTS[1] as string, true)
    assert.equal(await first, 'skipped', 's1 (still pending) is skipped once s2 is up')
    assert.equal(await through(gate, HOSTS[1] as string), HOSTS[1])
    // s1's probe never answers (its machine is dead): calls do not wait on it.
    assert.equal(await through(gate, HOSTS[0] as string), 'skipped')
    assert.deepEqual(gate.statuses(), {[HOSTS[0] as string]: 'probing', [HOSTS[1] as string]: 'up', [HOSTS[2] as string]: 'probing'})
  })

  it('a call waits for the first member to come up when none is up yet', async () => {
    const probe = scriptedProbe()
    const gate = new MemberGate(HOSTS, {...options, probe: probe.probe})
    let settled = false
    const call = through(gate, HOSTS[2] as string).finally(() => (settled = true))
    await new Promise((r) => setTimeout(r, 20))
    assert.equal(settled, false, 'no member is known up yet: the call waits')
    probe.answer(HOSTS[2] as string, true)
    assert.equal(await call, HOSTS[2])
  })

  it('a member whose call failed is skipped for a backoff while another is up, then probed again', async () => {
    const probe = scriptedProbe()
    const gate = new MemberGate(HOSTS, {...options, backoffMs: 50, probe: probe.probe})
    const first = through(gate, HOSTS[0] as string)
    for (const h of HOSTS) probe.answer(h, true)
    assert.equal(await first, HOSTS[0])
    await assert.rejects(
      through(gate, HOSTS[0] as string, () => Promise.reject(new GRPCUnavailableError('14 UNAVAILABLE: connection reset'))),
      GRPCUnavailableError,
    )
    assert.equal(await through(gate, HOSTS[0] as string), 'skipped')
    await new Promise((r) => setTimeout(r, 60))
    probe.calls.length = 0
    assert.equal(await through(gate, HOSTS[0] as string), 'skipped', 'still down until its new probe answers')
    assert.deepEqual(probe.calls, [HOSTS[0]], 'the backoff passed: the member is probed again')
    probe.answer(HOSTS[0] as string, true)
    await new Promise((r) => setImmediate(r))
    assert.equal(await through(gate, HOSTS[0] as string), HOSTS[0], 'back once its probe connects')
  })

  it('an answer that is not a connection failure (a failed compare, a denied permission) leaves the member up', async () => {
    const probe = scriptedProbe()
    const gate = new MemberGate(HOSTS, {...options, probe: probe.probe})
    const first = through(gate, HOSTS[0] as string)
    for (const h of HOSTS) probe.answer(h, true)
    await first
    await assert.rejects(through(gate, HOSTS[0] as string, () => Promise.reject(new Error('etcdserver: permission denied'))))
    assert.equal(await through(gate, HOSTS[0] as string), HOSTS[0])
  })

  it('a deadline that ran out at once (spent on another member before the retry) does not mark this one down', async () => {
    const probe = scriptedProbe()
    const gate = new MemberGate(HOSTS, {...options, probe: probe.probe})
    const first = through(gate, HOSTS[0] as string)
    for (const h of HOSTS) probe.answer(h, true)
    await first
    await assert.rejects(through(gate, HOSTS[0] as string, () => Promise.reject(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded after 0.001s'))))
    assert.equal(await through(gate, HOSTS[0] as string), HOSTS[0])
    // One that took its time is the member's: down.
    await assert.rejects(through(gate, HOSTS[0] as string, () => new Promise((_, reject) => setTimeout(() => reject(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED')), 80))))
    assert.equal(await through(gate, HOSTS[0] as string), 'skipped')
  })

  it('when every member failed, calls go through anyway so the caller sees etcd’s own error', async () => {
    const probe = scriptedProbe()
    const gate = new MemberGate(HOSTS, {...options, probe: probe.probe})
    const first = through(gate, HOSTS[0] as string, () => Promise.reject(new GRPCUnavailableError('14 UNAVAILABLE')))
    for (const h of HOSTS) probe.answer(h, false)
    await assert.rejects(first, GRPCUnavailableError)
    await assert.rejects(
      through(gate, HOSTS[1] as string, () => Promise.reject(new GRPCUnavailableError('14 UNAVAILABLE'))),
      GRPCUnavailableError,
    )
  })

  it('the TCP probe: true for a listener, false for a closed port, and it does not keep the process alive', async () => {
    const server: Server = createServer((s) => s.destroy())
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as {port: number}).port
    assert.equal(await tcpProbe(`http://127.0.0.1:${port}`, 1000), true)
    await new Promise<void>((r) => server.close(() => r()))
    assert.equal(await tcpProbe(`http://127.0.0.1:${port}`, 1000), false)
  })
})
