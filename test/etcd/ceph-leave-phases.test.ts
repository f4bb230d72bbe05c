/**
 * `ceph leave`'s phases against fake hosts that answer like Debian's Ceph (a shared monmap, the
 * node's units, stores and the manager's key), with the record in a real etcd: the lines in
 * their order per host, a dry run that changes nothing, a run again that changes nothing, and a
 * failure that stops the run before the node's monitor is touched. The real Ceph is the lab's.
 */
import assert from 'node:assert/strict'
import {after, before, beforeEach, describe, it} from 'node:test'

import {renderCephConf} from '../../src/lib/ceph/deploy.js'
import {leavePhases, type CephLeavePlan} from '../../src/lib/ceph/leave.js'
import {readCephCluster} from '../../src/lib/ceph/membership.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {NodeRunContext, type NodeHost} from '../../src/lib/phases/context.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import type {HostKeyStore, HostPool} from '../../src/lib/ssh/index.js'
import {runPhases} from '../../src/lib/tasks/runner.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

const FSID = '8d0e5c52-1f4e-4c34-9d4e-000000000001'
const SUBNET = '10.0.0.0/24'
const IPS: Record<string, string> = {s1: '10.0.0.2', s2: '10.0.0.3', s3: '10.0.0.4'}
const CONF = '/etc/ceph/ceph.conf'
const conf = (mons: string[]) =>
  renderCephConf(
    FSID,
    mons.map((name) => ({name, ip: IPS[name]!})),
    SUBNET,
  )

/** Ceph as the fake hosts share it, and each host's own units, directories and files. */
interface World {
  monmap: Set<string>
  auth: Set<string>
  units: Map<string, Set<string>>
  dirs: Map<string, Set<string>>
  files: Map<string, Map<string, string>>
  /** Commands that change something, per host, in the order they ran. */
  changes: Map<string, string[]>
  /** A command that fails, to prove the run stops at it. */
  failing?: string
}

function world(): World {
  const names = Object.keys(IPS)
  return {
    monmap: new Set(names),
    auth: new Set(names.map((n) => `mgr.${n}`)),
    units: new Map(names.map((n) => [n, new Set([`ceph-mon@${n}`, `ceph-mgr@${n}`])])),
    dirs: new Map(names.map((n) => [n, new Set([`/var/lib/ceph/mon/ceph-${n}`, `/var/lib/ceph/mgr/ceph-${n}`])])),
    files: new Map(names.map((n) => [n, new Map([[CONF, conf(names)]])])),
    changes: new Map(),
  }
}

type Result = {code: number; stdout: string; stderr: string}

function fakeHost(w: World, name: string) {
  const ok = (stdout = ''): Result => ({code: 0, stdout, stderr: ''})
  const no: Result = {code: 1, stdout: '', stderr: ''}
  const changed = (cmd: string) => w.changes.set(name, [...(w.changes.get(name) ?? []), cmd])
  const exec = async (cmd: string): Promise<Result> => {
    if (w.failing && cmd === w.failing) return {code: 1, stdout: '', stderr: 'Error EBUSY: refused by the test'}
    let m: RegExpExecArray | null
    if (cmd.startsWith('hostname;')) return ok(`${name}\n`)
    if (cmd === 'ceph mon dump --format json') return ok(JSON.stringify({mons: [...w.monmap].map((n) => ({name: n}))}))
    if (cmd === 'ceph -s --format json') {
      const n = w.monmap.size
      return ok(JSON.stringify({fsid: FSID, quorum_names: [...w.monmap], monmap: {num_mons: n}, mgrmap: {available: true, num_standbys: n - 1}}))
    }
    if ((m = /^ceph mon remove (\S+)$/.exec(cmd))) return (changed(cmd), w.monmap.delete(m[1]!), ok())
    if ((m = /^systemctl is-enabled --quiet (\S+) \|\| systemctl is-active --quiet \S+$/.exec(cmd))) return w.units.get(name)!.has(m[1]!) ? ok() : no
    if ((m = /^systemctl disable --now (.+)$/.exec(cmd))) {
      changed(cmd)
      for (const u of m[1]!.split(' ')) w.units.get(name)!.delete(u)
      return ok()
    }
    if ((m = /^test -e (\S+)$/.exec(cmd))) return w.dirs.get(name)!.has(m[1]!) ? ok() : no
    if ((m = /^rm -rf (.+)$/.exec(cmd))) {
      changed(cmd)
      for (const d of m[1]!.split(' ')) w.dirs.get(name)!.delete(d)
      return ok()
    }
    if ((m = /^ceph auth get (\S+) >\/dev\/null 2>&1$/.exec(cmd))) return w.auth.has(m[1]!) ? ok() : no
    if ((m = /^ceph auth del (\S+)$/.exec(cmd))) return (changed(cmd), w.auth.delete(m[1]!), ok())
    if ((m = /^stat -c '%a %U %G' (\S+) && cat \S+$/.exec(cmd))) {
      const content = w.files.get(name)!.get(m[1]!)
      return content === undefined ? no : ok(`644 root root\n${content}`)
    }
    return {code: 99, stdout: '', stderr: `the fake host does not know ${cmd}`}
  }
  return {
    name,
    hostKey: {decision: 'pinned'},
    exec,
    async run(cmd: string) {
      const r = await exec(cmd)
      if (r.code !== 0) throw new Error(`${cmd} failed on ${name}: ${r.stderr}`)
      return r
    },
    async upload(content: string, path: string) {
      changed(`upload ${path}`)
      w.files.get(name)!.set(path, content)
    },
  }
}

const PLAN: CephLeavePlan = {node: 's3', backend: 'ceph', fsid: FSID, mons: ['s1', 's2'], source: 's1', reached: true}

describe('ceph leave: its phases on hosts that answer like Ceph', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'cephleave'})
  })
  after(async () => {
    await store.close()
    await etcd.stop()
  })
  beforeEach(async () => {
    await store.put(store.keys.cephCluster(), {backend: 'ceph', fsid: FSID, mons: ['s1', 's2', 's3'], bootstrappedAt: '', updatedAt: ''})
  })

  async function leave(w: World, dryRun: boolean) {
    const names = ['s3', 's1', 's2']
    const cluster = names.map((name) => ({name, type: 'core', state: 'ready', ip: IPS[name]}) as unknown as NodeRecord)
    const hosts = names.map((name) => ({name, node: cluster.find((n) => n.name === name)!, ip: IPS[name], target: {name}}) as unknown as NodeHost)
    const fakes = new Map(names.map((n) => [n, fakeHost(w, n)]))
    const pool = {get: async (target: {name: string}) => fakes.get(target.name)} as unknown as HostPool
    const spec = {network: {subnet: SUBNET}, ceph: {backend: 'ceph'}} as unknown as ClusterSpec
    const ctx = new NodeRunContext(hosts, dryRun, store, spec, cluster, pool, {} as HostKeyStore)
    const summary = await runPhases(leavePhases({...PLAN}), ctx, {action: 'ceph leave', args: [], progress: 'silent', stopAtFirstFailure: true})
    return {ctx, summary}
  }

  it('--dry-run: the plan per host, in order, and nothing changed on the hosts or in etcd', async () => {
    const w = world()
    const before = await store.snapshot()
    const {ctx, summary} = await leave(w, true)
    assert.equal(summary.result, 'planned')
    assert.deepEqual(ctx.plan.get('s1'), ['ceph mon remove s3', 'ceph auth del mgr.s3', `update ${CONF}`, 'remove s3 from the Ceph monitors in etcd'])
    assert.deepEqual(ctx.plan.get('s3'), ['systemctl disable --now ceph-mon@s3 ceph-mgr@s3', 'rm -rf /var/lib/ceph/mon/ceph-s3 /var/lib/ceph/mgr/ceph-s3', `update ${CONF}`])
    assert.deepEqual(ctx.plan.get('s2'), [`update ${CONF}`])
    assert.deepEqual(w.changes, new Map())
    assert.deepEqual([...w.monmap], ['s1', 's2', 's3'])
    assert.deepEqual(await store.snapshot(), before)
  })

  it('a run: out of the monmap first, then the node; every ceph.conf names s1 and s2; the record too; a run again changes nothing', async () => {
    const w = world()
    const {summary} = await leave(w, false)
    assert.equal(summary.result, 'succeeded')
    assert.deepEqual(w.changes.get('s1'), ['ceph mon remove s3', 'ceph auth del mgr.s3', `upload ${CONF}`])
    assert.deepEqual(w.changes.get('s3'), ['systemctl disable --now ceph-mon@s3 ceph-mgr@s3', 'rm -rf /var/lib/ceph/mon/ceph-s3 /var/lib/ceph/mgr/ceph-s3', `upload ${CONF}`])
    assert.deepEqual([...w.monmap], ['s1', 's2'])
    for (const n of ['s1', 's2', 's3']) assert.equal(w.files.get(n)!.get(CONF), conf(['s1', 's2']), `${n}'s ceph.conf`)
    assert.deepEqual(w.units.get('s3'), new Set())
    assert.deepEqual(w.dirs.get('s3'), new Set())
    assert.deepEqual(w.units.get('s1'), new Set(['ceph-mon@s1', 'ceph-mgr@s1']), 'the others untouched')
    assert.deepEqual((await readCephCluster(store))?.mons, ['s1', 's2'])

    w.changes.clear()
    const again = await leave(w, false)
    assert.equal(again.summary.result, 'succeeded')
    assert.equal(again.ctx.changeCount, 0)
    assert.deepEqual(w.changes, new Map())
  })

  it('a failed mon remove stops the run: the node keeps its monitor, etcd its record', async () => {
    const w = world()
    w.failing = 'ceph mon remove s3'
    const {summary} = await leave(w, false)
    assert.equal(summary.result, 'failed')
    assert.deepEqual(w.changes, new Map())
    assert.deepEqual(w.units.get('s3'), new Set(['ceph-mon@s3', 'ceph-mgr@s3']))
    assert.deepEqual((await readCephCluster(store))?.mons, ['s1', 's2', 's3'])
  })
})
