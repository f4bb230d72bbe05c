/**
 * Real keepalived 2.2.7 (VRRP) in three network namespaces bridged together, with the config
 * xcluster renders for the admin VIP: the VIP follows priority and health, moves when its
 * holder dies, and the harness removes the VIP a SIGKILLed keepalived leaves behind.
 * The namespaces are this test's own (xct-vip-*); it does not need the lab's nodes.
 */
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {CheckResult} from '../../src/lib/election/split-brain.js'
import type {VipState} from '../../src/lib/election/vip.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, loggedService, readEvents, running, until, writeSpec} from '../helpers/election-harness.js'
import {type TestEtcd} from '../helpers/etcd.js'
import {startEtcdRetrying} from '../helpers/etcd-cluster.js'
import {VrrpLab} from '../helpers/keepalived.js'

const PREFIX = 'xct-vip-'
const SPEC_FILE = join(ROOT, 'templates', 'xcluster.yaml')
const spec = parseSpec(readFileSync(SPEC_FILE, 'utf8'), 'xcluster.yaml')
// A service's VIP moved by keepalived with the config xcluster renders. It is not the admin VIP:
// the spec refuses a service VIP that is the admin VIP (or any machine's address, or in a range).
const VIP = '10.0.0.253'

let lab: VrrpLab
const daemons: Daemon[] = []
let etcd: TestEtcd
let dir: string

async function holderBecomes(expected: string[], timeoutMs = 8000): Promise<number> {
  const started = Date.now()
  let last: string[] = []
  const deadline = started + timeoutMs
  for (;;) {
    last = await lab.holders(VIP)
    if (last.join(',') === expected.join(',')) return Date.now() - started
    if (Date.now() > deadline) throw new Error(`VIP held by [${last.join(',')}], expected [${expected.join(',')}]`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-vip-'))
  lab = new VrrpLab(spec, PREFIX, dir, ['s1', 's2', 's3'], {vip: VIP})
  lab.setUp()
  etcd = await startEtcdRetrying()
  // A service whose leader should hold the VIP keepalived moves: election check compares the two.
  const file = join(dir, 'spec.yaml')
  writeSpec(file, readFileSync(SPEC_FILE, 'utf8'), loggedService('adm', join(dir, 'adm.log'), 2).replace('ttl: 2,', `ttl: 2, vip: ${VIP},`))
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.endpoint}})
  assert.equal(applied.code, 0, applied.stderr)
})

after(async () => {
  await Promise.all(daemons.map((d) => d.stop('SIGKILL')))
  lab?.tearDown()
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

describe('keepalived VIP for the admin API', {concurrency: false}, () => {
  it('comes up on the highest-priority healthy core node; vip status shows it', async () => {
    for (const n of ['s1', 's2', 's3']) lab.start(n)
    const ms = await holderBecomes(['s1'], 10_000)
    console.log(`# VIP up after ${ms} ms`)
    const res = await xcluster(['vip', 'status', '--netns-prefix', PREFIX, '--json'], {env: {XCLUSTER_ETCD: etcd.endpoint}})
    assert.equal(res.code, 0, res.stderr)
    assert.deepEqual(res.json<VipState[]>(), [
      {address: spec.network.adminVip, purpose: 'admin', holders: []},
      {address: VIP, purpose: 'adm', holders: ['s1']},
    ])
  })

  it('election check reports a VIP that is not on the elected leader (exit 3), and is quiet once it is', async () => {
    const env = {XCLUSTER_ETCD: etcd.endpoint}
    for (const n of ['s1', 's2', 's3']) daemons.push(new Daemon(n, ['adm'], etcd.endpoint).start())
    await until('an adm leader', () => running(readEvents(join(dir, 'adm.log')))[0])
    const elsewhere = await xcluster(['election', 'transfer', 'adm', '--to', 's2', '--yes'], {env})
    assert.equal(elsewhere.code, 0, elsewhere.stderr)
    const bad = await xcluster(['election', 'check', '--netns-prefix', PREFIX, '--json'], {env})
    assert.equal(bad.code, 3, bad.stdout)
    const found = bad.json<CheckResult>().disagreements
    assert.deepEqual(
      found.map((d) => [d.kind, d.nodes]),
      [['vip-not-on-leader', ['s1', 's2']]],
    )
    const onHolder = await xcluster(['election', 'transfer', 'adm', '--to', 's1', '--yes'], {env})
    assert.equal(onHolder.code, 0, onHolder.stderr)
    const good = await xcluster(['election', 'check', '--netns-prefix', PREFIX, '--json'], {env})
    assert.equal(good.code, 0, good.stdout)
    await Promise.all(daemons.map((d) => d.stop('SIGTERM')))
  })

  it('follows the track script: an unhealthy holder gives the VIP up, and gets it back when healthy', async () => {
    lab.setHealthy('s1', false)
    await holderBecomes(['s2'])
    lab.setHealthy('s1', true)
    await holderBecomes(['s1'])
  })

  it('moves when the holder dies (SIGKILL); the harness removes the VIP left behind', async () => {
    const crashedAt = Date.now()
    await lab.crash('s1')
    // The dead keepalived left the VIP on s1 while s2 takes it: two holders.
    await holderBecomes(['s1', 's2'])
    const failoverMs = Date.now() - crashedAt
    console.log(`# VRRP failover after SIGKILL: ${failoverMs} ms`)
    const status = await xcluster(['vip', 'status', '--netns-prefix', PREFIX], {env: {XCLUSTER_ETCD: etcd.endpoint}})
    assert.match(status.stdout, /SPLIT BRAIN/)
    assert.equal(lab.removeLeftover('s1', VIP), true)
    await holderBecomes(['s2'], 1000)
  })

  it('moves on a clean stop (SIGTERM) too', async () => {
    await lab.stop('s2')
    await holderBecomes(['s3'])
  })
})

describe('vip config', () => {
  it('prints the rendered keepalived config of a core node, and refuses other nodes', async () => {
    const env = {XCLUSTER_ETCD: etcd.endpoint}
    const res = await xcluster(['vip', 'config', 's3'], {env})
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /priority 130/)
    assert.match(res.stdout, new RegExp(`${spec.network.adminVip.replaceAll('.', '\\.')}/24 dev eth0`))
    const bad = await xcluster(['vip', 'config', 'c1'], {env})
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /not a core node/)
  })
})
