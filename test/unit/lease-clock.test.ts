import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {LeaseClock, readUptimeMs} from '../../src/lib/clock.js'

/** A host whose clocks the test moves: monotonic time stops while "suspended", boot time does not. */
function fakeHost() {
  const host = {mono: 1000, boot: 5000}
  return {
    host,
    clock: new LeaseClock(
      () => host.mono,
      () => Math.floor(host.boot / 10) * 10, // /proc/uptime truncates to 10 ms
    ),
    run(ms: number) {
      host.mono += ms
      host.boot += ms
    },
    suspend(ms: number) {
      host.boot += ms
    },
  }
}

describe('the lease clock', () => {
  it('moves with the monotonic clock while the host runs', () => {
    const {clock, run} = fakeHost()
    const t0 = clock.now()
    run(250)
    assert.equal(clock.now() - t0, 250)
  })
  it('counts a suspend that the monotonic clock misses, so a resumed leader sees its lease gone', () => {
    const {clock, run, suspend} = fakeHost()
    const expiry = clock.now() + 2000 // a lease renewed just now, TTL 2 s
    run(100)
    suspend(60_000) // the laptop lid, a frozen VM
    run(1)
    assert.ok(clock.now() > expiry, 'the lease still looks alive after a minute asleep')
    assert.ok(clock.now() - expiry >= 58_000, 'the whole suspend is counted')
  })
  it('never reads earlier than boot time (truncation errs late)', () => {
    const {clock, host, run} = fakeHost()
    for (let i = 0; i < 100; i++) {
      run(7)
      assert.ok(clock.now() >= host.boot, `${clock.now()} < ${host.boot}`)
      assert.ok(clock.now() - host.boot <= 20)
    }
  })
  it('never goes backwards, and works on monotonic time alone where /proc/uptime is missing', () => {
    const host = {mono: 0}
    const clock = new LeaseClock(
      () => host.mono,
      () => undefined,
    )
    let last = clock.now()
    for (let i = 0; i < 10; i++) {
      host.mono += 5
      assert.ok(clock.now() >= last)
      last = clock.now()
    }
  })
  it("reads this host's boot time", () => {
    const ms = readUptimeMs()
    assert.ok(ms !== undefined && ms > 0)
  })
})
