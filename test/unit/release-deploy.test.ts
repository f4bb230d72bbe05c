import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {planPrune} from '../../src/lib/release/deployment.js'
import {installLayout} from '../../src/lib/release/layout.js'
import {parseListing, parseProbe} from '../../src/lib/release/remote.js'

const id = (n: number): string => `0.1.${n}-${String(n).padStart(12, 'a')}`
const bundle = {id: id(9), runtime: {dir: 'node-v20.1.0-bbbbbbbbbbbb'}}
const rtA = 'node-v20.0.0-aaaaaaaaaaaa'

describe('planPrune', () => {
  const releases = [1, 2, 3, 4].map((n) => ({id: id(n), installedAt: 1000 + n, runtime: rtA}))

  it('keeps the newest releases by install time, the bundle counted as the newest', () => {
    const plan = planPrune({releases: [...releases, {id: bundle.id, installedAt: 1005, runtime: bundle.runtime.dir}], runtimes: [rtA, bundle.runtime.dir], stale: [], current: bundle.id}, bundle, 3)
    assert.deepEqual(plan.releases, [id(2), id(1)])
    assert.deepEqual(plan.runtimes, [], 'the kept 0.1.3 and 0.1.4 still use the old runtime')
  })

  it('never removes what current points at, even the oldest, nor the bundle', () => {
    const plan = planPrune({releases, runtimes: [rtA], stale: [], current: id(1)}, bundle, 1)
    assert.deepEqual(plan.releases, [id(4), id(3), id(2)])
    assert.deepEqual(plan.runtimes, [], 'current (0.1.1) uses it')
  })

  it('removes runtimes no kept release uses; a dry run plans as if the bundle were already there', () => {
    const plan = planPrune({releases, runtimes: [rtA], stale: ['/x/.incoming-1'], current: id(4)}, bundle, 1, bundle.id)
    assert.deepEqual(plan.releases, [id(4), id(3), id(2), id(1)])
    assert.deepEqual(plan.runtimes, [rtA])
    assert.deepEqual(plan.stale, ['/x/.incoming-1'])
  })
})

describe('what a node reports', () => {
  it('parses the probe', () => {
    const probe = parseProbe('kernel Linux\nmachine x86_64\nlibc glibc 2.36\nfree 1024\nruntime abc\nmarker m\nsums s\nlink ../../runtime/r\ntree ok\ncurrent releases/x\nlibexec-not-a-link\n')
    assert.deepEqual(probe, {
      kernel: 'Linux',
      machine: 'x86_64',
      libc: 'glibc 2.36',
      freeBytes: 1024 * 1024,
      runtimeSha: 'abc',
      release: {marker: 'm', sums: 's', link: '../../runtime/r', tree: 'ok'},
      current: 'releases/x',
      conflicts: ['libexec'],
    })
    assert.deepEqual(parseProbe('kernel Linux\nmachine aarch64\nlibc unknown\nfree 5\n'), {kernel: 'Linux', machine: 'aarch64', libc: 'unknown', freeBytes: 5120, conflicts: []})
  })

  it('lists only directories named as ours', () => {
    const listing = parseListing(
      [
        `release\t1700000000\t${id(1)}\t../../runtime/${rtA}`,
        'release\t0\tmy-notes\t',
        `runtime\t${rtA}`,
        'runtime\tlocal-build',
        'stale\t/opt/xcluster/releases/.incoming-Ab12Cd',
        `current\treleases/${id(1)}`,
      ].join('\n'),
    )
    assert.deepEqual(listing, {releases: [{id: id(1), installedAt: 1700000000, runtime: rtA}], runtimes: [rtA], stale: ['/opt/xcluster/releases/.incoming-Ab12Cd'], current: id(1)})
  })
})

describe('installLayout', () => {
  it('puts everything under the install root', () => {
    const layout = installLayout('/tmp/r')
    assert.equal(layout.base, '/tmp/r/opt/xcluster')
    assert.equal(layout.wrapper, '/tmp/r/usr/local/bin/xcluster')
    assert.equal(layout.release('1-abc'), '/tmp/r/opt/xcluster/releases/1-abc')
    assert.equal(installLayout().current, '/opt/xcluster/current')
    assert.throws(
      () => installLayout('relative'),
      (e) => e instanceof XclusterError && e.code === 'USAGE',
    )
  })
})
