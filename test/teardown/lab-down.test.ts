/**
 * Runs last in the suite (test/run.sh lists it after every other file): `lab down` removes every
 * namespace, container, mount, cgroup, process and file the lab made, and is idempotent.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {describe, it} from 'node:test'

import {readLabState} from '../../src/lib/lab/state.js'
import {xcluster} from '../helpers/cli.js'

describe('lab down', () => {
  const state = readLabState()
  const pids = readdirSync(`${state.dir}/run`)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(`${state.dir}/run/${f}`, 'utf8')))

  it('removes every namespace, container, mount, cgroup, process and file it made', async () => {
    assert.ok(pids.length > 0, 'the lab had processes to stop')
    const r = await xcluster(['lab', 'down', '--yes'])
    assert.equal(r.code, 0, r.stderr)

    const namespaces = execFileSync('ip', ['netns', 'list'], {encoding: 'utf8'})
    assert.doesNotMatch(namespaces, /^xc-/m)
    assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(state.dir.replaceAll('/', '\\/')))
    for (const root of ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']) {
      assert.deepEqual(
        readdirSync(root).filter((d) => d.startsWith('xc-')),
        [],
        `cgroups under ${root}`,
      )
    }
    for (const pid of pids) assert.ok(!existsSync(`/proc/${pid}`), `process ${pid} is gone`)
    assert.ok(!existsSync(state.dir), 'the state directory is gone')
    assert.ok(state.rootfs && existsSync(state.rootfs), 'the root filesystem cache stays for the next lab up')
  })

  it('is idempotent, and status then says the lab is not up', async () => {
    assert.equal((await xcluster(['lab', 'down', '--yes'])).code, 0)
    const status = await xcluster(['lab', 'status'])
    assert.equal(status.code, 3)
    assert.match(status.stderr, /LAB_NOT_UP/)
  })
})
