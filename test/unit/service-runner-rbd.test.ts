/**
 * The leader's mapping around a real guardian and real commands, with an rbd CLI that answers
 * like Ceph's (a script): a stale mapping whose forced unmap gets no answer (stuck in the kernel
 * behind its blocklisted client's I/O) does not hold the start up, and is not tried again.
 */
import assert from 'node:assert/strict'
import {chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {uptimeCentiseconds} from '../../src/lib/clock.js'
import {ServiceRunner} from '../../src/lib/election/service-runner.js'
import {env} from '../../src/lib/settings.js'

describe('a stale mapping stuck in the kernel', () => {
  let dir: string
  const saved = {rbd: process.env[env.rbd], timeout: process.env[env.cephTimeoutMs]}

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xct-runner-rbd-'))
    // rbd0 is a stale mapping of the image whose unmap hangs; a new map is rbd1. Calls are logged.
    const rbd = join(dir, 'rbd')
    writeFileSync(
      rbd,
      `#!/bin/bash
echo "$*" >> ${dir}/calls
case "$*" in
  "status "*) echo '{"watchers":[]}' ;;
  "lock ls "*) echo '[]' ;;
  "device list "*) echo '[{"pool":"rbd","name":"pg","device":"/dev/rbd0"}]' ;;
  *"device unmap "*/dev/rbd0*) exec sleep 30 ;;
  "device unmap "*) ;;
  "device map "*) echo /dev/rbd1 ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
`,
    )
    chmodSync(rbd, 0o755)
    process.env[env.rbd] = rbd
    process.env[env.cephTimeoutMs] = '500'
  })

  after(() => {
    for (const [name, value] of [
      [env.rbd, saved.rbd],
      [env.cephTimeoutMs, saved.timeout],
    ] as const)
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    rmSync(dir, {recursive: true, force: true})
  })

  it('is left after its unmap got no answer: the start maps a device of its own, and the next start does not wait on it again', async () => {
    const events: {event: string; details: Record<string, unknown>}[] = []
    const runner = new ServiceRunner(
      {name: 'pg', ttl: 3, nodes: ['s1'], rbdImage: 'rbd/pg', rbdMap: 'krbd', start: 'true', stop: 'true'},
      's1',
      {prefix: `xct-runner-${process.pid}:s1`, runDir: join(dir, 'run'), etcdctlEnv: {}},
      undefined,
      (event, details) => events.push({event, details}),
      async () => true,
    )
    const guard = {deadlineCs: () => (uptimeCentiseconds() as number) + 6000, leaseId: '1'}
    const staleEvents = (token: string) => events.filter((e) => e.event === 'rbd-stale-unmapped' && e.details.token === token).map((e) => e.details)
    const unmapsOfRbd0 = () =>
      existsSync(join(dir, 'calls'))
        ? readFileSync(join(dir, 'calls'), 'utf8')
            .split('\n')
            .filter((l) => l.includes('device unmap') && l.includes('/dev/rbd0')).length
        : 0

    const started = Date.now()
    const first = await runner.start('5', guard)
    assert.equal(first.ok, true, first.output)
    assert.ok(Date.now() - started < 5000, 'the start waited on the stuck unmap only up to its bound')
    assert.deepEqual(
      staleEvents('5').map((e) => [e.device, e.ok]),
      [['/dev/rbd0', false]],
    )
    assert.match(String(staleEvents('5')[0]?.output), /device unmap .*\/dev\/rbd0: no answer within 500 ms/)
    assert.equal(events.find((e) => e.event === 'rbd-mapped')?.details.device, '/dev/rbd1')
    const stopped = await runner.stop('5')
    assert.equal(stopped?.ok, true, stopped?.output)

    const second = await runner.start('6', guard)
    assert.equal(second.ok, true, second.output)
    assert.deepEqual(
      staleEvents('6').map((e) => [e.device, e.ok, e.output]),
      [['/dev/rbd0', false, 'left as it is: an earlier unmap of it is stuck in the kernel']],
    )
    assert.equal(unmapsOfRbd0(), 1, 'the stuck device was not unmapped a second time')
    assert.equal((await runner.stop('6'))?.ok, true)
  })
})
