/**
 * `xcluster ceph ...` as an operator runs it, against a real Ceph (mon, mgr, three memstore OSDs)
 * asked over real SSH: a sandbox host answers on the nodes' addresses with a real sshd whose
 * sessions find the cluster through CEPH_CONF, the cluster runs in the sandbox's network
 * namespace, and the nodes, their host key pins and the spec (ceph.backend: ceph, Debian's CLIs)
 * live in a real etcd. The CLI runs inside the sandbox's namespaces (where the addresses answer).
 * Every change is checked in Ceph itself; every refusal and every dry run leaves Ceph unchanged.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {DiskAddResult} from '../../src/lib/ceph/disk-add.js'
import type {OsdDisk} from '../../src/lib/ceph/disks.js'
import type {ImageChange, ImageInfo, ImageSummary} from '../../src/lib/ceph/images.js'
import type {CephPool, PoolChange} from '../../src/lib/ceph/pools.js'
import type {RbdLockHolder} from '../../src/lib/ceph/rbd.js'
import type {CephStatus} from '../../src/lib/ceph/status.js'
import type {ClusterStatus, HealthCheck, HealthReport} from '../../src/lib/health/types.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {startCeph, type TestCeph} from '../helpers/ceph.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSandboxHost, type SandboxHost} from '../helpers/sandbox-host.js'
import {requireTool} from '../helpers/tools.js'

/** s1 has no address in the sandbox: a ready core node that does not answer, passed over. */
const ADDRESSES = {s2: '10.0.0.3', s3: '10.0.0.4', s4: '10.0.0.11', c1: '10.0.0.51', f1: '10.0.0.71'}
const SPEC_IPS = {s1: '10.0.0.2', ...ADDRESSES}
const MiB = 1024 ** 2

let etcd: TestEtcd
let store: EtcdStore
let host: SandboxHost
let ceph: TestCeph
let cephDir: string
let dir: string
/** LVM's config for the sandbox's sessions: this kernel has no device-mapper, so LVM may only write metadata. */
let lvmDir: string
/** Loop devices over sparse files: an empty one, one with ext4, one with a DOS partition table. */
const disks: {empty: string; ext4: string; dos: string} = {empty: '', ext4: '', dos: ''}
const diskFiles: string[] = []

/** The CLI inside the sandbox's namespaces, against the test etcd. */
const cli = (args: string[]): Promise<CliResult> => xcluster([...args, '--etcd', etcd.unixEndpoint!], {wrap: host.wrap})

async function ok(args: string[]): Promise<CliResult> {
  const r = await cli(args)
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r
}

/** What the commands may change, read from Ceph itself (not pg_num: the autoscaler moves it). */
function cephState(): unknown {
  const pools = ceph.cephJson<{pool_name: string; size: number; min_size: number; pg_autoscale_mode: string; application_metadata: Record<string, unknown>}[]>(['osd', 'pool', 'ls', 'detail'])
  // Not the mgr's own pool (device_health_metrics, .mgr), which it may create at any time.
  return pools
    .filter((p) => !['device_health_metrics', '.mgr'].includes(p.pool_name))
    .map((p) => ({
      name: p.pool_name,
      size: p.size,
      minSize: p.min_size,
      autoscale: p.pg_autoscale_mode,
      applications: Object.keys(p.application_metadata),
      images: p.application_metadata.rbd ? rbdJson(['ls', '-l', p.pool_name]) : null,
    }))
}

/** rbd with the test cluster's config, in the cluster's network namespace. */
function rbdRun(args: string[]): string {
  return execIn(['rbd', '-c', ceph.conf, ...args])
}
const rbdJson = <T>(args: string[]): T => JSON.parse(rbdRun([...args, '--format', 'json']) || 'null') as T
const poolGet = (pool: string, key: string): string => ceph.cephJson<Record<string, string | number>>(['osd', 'pool', 'get', pool, key])[key]!.toString()

function execIn(argv: string[]): string {
  const r = spawnSyncIn(argv)
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}

function spawnSyncIn(argv: string[]) {
  return spawnSync('ip', ['netns', 'exec', host.ns, ...argv], {encoding: 'utf8', timeout: 60_000})
}

/** Refused with the exit status, code and message, a next step, and Ceph unchanged. */
async function refused(args: string[], exit: number, code: string, message: RegExp): Promise<CliResult> {
  const before = cephState()
  const r = await cli(args)
  assert.equal(r.code, exit, `exit status of ${args.join(' ')}: ${r.stdout}${r.stderr}`)
  assert.match(r.stderr, new RegExp(`Error \\[${code}\\]`), r.stderr)
  assert.match(r.stderr, message)
  assert.match(r.stderr, /Try this: \S/)
  assert.deepEqual(cephState(), before, `${args.join(' ')} changed Ceph`)
  return r
}

/** The command a refusal suggests, as printed (xcluster ...), run as it is: it must work. */
async function runSuggestion(r: CliResult): Promise<CliResult> {
  const line = /(xcluster (?:ceph|node) [^\n]*?)\s*$/m.exec(r.stderr.split('Try this:')[1] ?? '')?.[1]
  assert.ok(line, `a command is suggested: ${r.stderr}`)
  const argv = line.split(' ').slice(1)
  return ok(argv)
}

/** A dry run prints these ceph/rbd lines and leaves Ceph as it was. */
async function dryRun(args: string[], lines: string[]): Promise<void> {
  const before = cephState()
  const r = await ok([...args, '--dry-run'])
  assert.match(r.stdout, /Dry run on s3: .*would/)
  for (const line of lines) assert.ok(r.stdout.includes(`  ${line}\n`), `${args.join(' ')} --dry-run prints ${line}:\n${r.stdout}`)
  assert.deepEqual(cephState(), before, `${args.join(' ')} --dry-run changed Ceph`)
  const json = (await ok([...args, '--dry-run', '--json'])).json<PoolChange>()
  assert.deepEqual({dryRun: json.dryRun, node: json.node, commands: json.commands}, {dryRun: true, node: 's3', commands: lines})
  assert.deepEqual(cephState(), before)
}

describe('xcluster ceph: status, pools, images and locks against a real Ceph over SSH', {concurrency: false}, () => {
  before(async () => {
    // Sockets and the cluster's files in a tmpfs the sandbox does not overlay.
    etcd = await startEtcd({unixSocket: true, dir: mkdtempSync(join('/dev/shm', 'xct-ceph-admin-etcd-'))})
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    cephDir = mkdtempSync(join('/dev/shm', 'xct-ceph-admin-'))
    lvmDir = mkdtempSync(join('/dev/shm', 'xct-ceph-admin-lvm-'))
    writeFileSync(join(lvmDir, 'lvm.conf'), 'global {\n  activation = 0\n}\nbackup {\n  backup = 0\n  archive = 0\n}\n')
    for (const [tool, pkg] of [
      ['losetup', 'mount'],
      ['wipefs', 'util-linux'],
      ['mkfs.ext4', 'e2fsprogs'],
      ['pvcreate', 'lvm2'],
    ])
      requireTool(tool, pkg)
    for (const kind of ['empty', 'ext4', 'dos'] as const) {
      const file = join(lvmDir, `${kind}.img`)
      writeFileSync(file, '')
      truncateSync(file, 128 * MiB)
      if (kind === 'ext4') execFileSync('mkfs.ext4', ['-q', '-F', file])
      // One Linux partition from sector 2048: a DOS partition table as fdisk writes it.
      if (kind === 'dos') {
        const mbr = Buffer.alloc(512)
        mbr.set([0x00, 0x20, 0x21, 0x00, 0x83, 0x00, 0x00, 0x00], 446)
        mbr.writeUInt32LE(2048, 446 + 8)
        mbr.writeUInt32LE(128 * 2048 - 2048, 446 + 12)
        mbr.set([0x55, 0xaa], 510)
        const fd = openSync(file, 'r+')
        writeSync(fd, mbr, 0, 512, 0)
        closeSync(fd)
      }
      diskFiles.push(file)
      disks[kind] = execFileSync('losetup', ['-f', '--show', file], {encoding: 'utf8'}).trim()
    }
    host = await startSandboxHost({tag: 'ceph-admin', addresses: Object.values(ADDRESSES), setEnv: {CEPH_CONF: join(cephDir, 'ceph.conf'), LVM_SYSTEM_DIR: lvmDir}})
    ceph = await startCeph({osdHosts: ['s4', 's5', 's5'], dir: cephDir, netns: host.ns})
    dir = mkdtempSync(join('/dev/shm', 'xct-ceph-admin-spec-'))
    let spec = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8').replace('key: ~/.ssh/id_ed25519', `key: ${host.clientKeyPath}`)
    for (const [name, ip] of Object.entries(SPEC_IPS)) spec = spec.replace(new RegExp(`(\\{name: ${name}, mac: "[^"]+")(, ip: [0-9.]+)?\\}`), `$1, ip: ${ip}}`)
    writeFileSync(join(dir, 'xcluster.yaml'), `${spec.trimEnd()}\nceph:\n  backend: ceph\n`)
    const applied = await xcluster(['config', 'apply', '-f', join(dir, 'xcluster.yaml'), '--etcd', etcd.endpoint])
    assert.equal(applied.code, 0, applied.stderr)
    // s1 ready but unreachable, s2 drained: the first ready core node that answers is s3.
    const states: Record<string, NodeRecord['state']> = {s1: 'ready', s2: 'drained', s3: 'ready', s4: 'ready'}
    for (const [name, state] of Object.entries(states)) {
      const n = (await store.getJson<NodeRecord>(store.keys.node(name)))!.value
      await store.put(store.keys.node(name), {...n, state})
      await store.put(store.keys.hostKey(name), {fingerprints: [host.hostFingerprint], pinnedAt: new Date().toISOString(), source: 'registration'})
    }
  })

  after(async () => {
    await store?.close()
    await ceph?.stop()
    await host?.stop()
    await etcd?.stop()
    for (const loop of Object.values(disks)) if (loop) spawnSync('losetup', ['-d', loop])
    if (lvmDir) rmSync(lvmDir, {recursive: true, force: true})
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('ceph status: health, OSDs, PGs and usage as `ceph -s` has them, from the first ready core node whose Ceph answers', async () => {
    type Raw = {fsid: string; health: {status: string}; osdmap: {num_osds: number; num_up_osds: number; num_in_osds: number}; pgmap: {num_pgs: number; bytes_total: number}}
    const view = (s: Raw) => ({
      fsid: s.fsid,
      health: s.health.status,
      osds: {total: s.osdmap.num_osds, up: s.osdmap.num_up_osds, in: s.osdmap.num_in_osds},
      pgs: s.pgmap.num_pgs,
      total: s.pgmap.bytes_total,
    })
    // Compared when `ceph -s` says the same before and after (the mgr may still be creating its own pool).
    for (let attempt = 1; ; attempt++) {
      const before = view(ceph.cephJson<Raw>(['-s']))
      const status = (await ok(['ceph', 'status', '--json'])).json<CephStatus>()
      if (attempt < 5 && JSON.stringify(view(ceph.cephJson<Raw>(['-s']))) !== JSON.stringify(before)) continue
      assert.equal(status.node, 's3', 's1 does not answer, s2 is drained')
      assert.deepEqual({fsid: status.fsid, health: status.health.status, osds: status.osds, pgs: status.pgs.total, total: status.usage.totalBytes}, before)
      assert.deepEqual(status.osds, {total: 3, up: 3, in: 3})
      assert.ok(status.usage.totalBytes > 0 && status.usage.availBytes > 0)
      assert.equal(
        status.pgs.byState.reduce((n, s) => n + s.count, 0),
        status.pgs.total,
      )
      break
    }
    const text = (await ok(['ceph', 'status', '--node', 's4'])).stdout
    assert.match(text, /^health: HEALTH_(OK|WARN|ERR) \(asked s4\)$/m)
    assert.match(text, /^osds: 3 up, 3 in, of 3$/m)
    assert.match(text, /^usage: .* used, .* available, of .*$/m)
  })

  it('an unknown --node is a usage error (exit 2) whose suggestion runs; a node without Ceph says so', async () => {
    const r = await refused(['ceph', 'status', '--node', 'nope'], 2, 'USAGE', /Unknown node "nope" for --node/)
    await runSuggestion(r)
    await refused(['ceph', 'pool', 'create', 'x', '--node', 'nope'], 2, 'USAGE', /Unknown node "nope"/)
    // s1 is in the spec but does not answer: asked by name, the SSH failure is the answer.
    await refused(['ceph', 'pool', 'list', '--node', 's1'], 3, 'SSH_UNREACHABLE', /Cannot reach s1/)
  })

  it('ceph pool create --dry-run prints the ceph commands and changes nothing', async () => {
    await dryRun(
      ['ceph', 'pool', 'create', 'data', '--size', '2', '--min-size', '1', '--pg-autoscale', 'off', '--application', 'rbd'],
      ['ceph osd pool create data', 'ceph osd pool set data size 2', 'ceph osd pool set data min_size 1', 'ceph osd pool set data pg_autoscale_mode off', 'ceph osd pool application enable data rbd'],
    )
  })

  it('ceph pool create makes the pool with its settings in Ceph; pool list shows it', async () => {
    const r = await ok(['ceph', 'pool', 'create', 'data', '--size', '2', '--min-size', '1', '--pg-autoscale', 'off', '--application', 'rbd'])
    assert.match(r.stdout, /^Created pool data on s3:$/m)
    assert.equal(poolGet('data', 'size'), '2')
    assert.equal(poolGet('data', 'min_size'), '1')
    assert.equal(poolGet('data', 'pg_autoscale_mode'), 'off')
    assert.deepEqual(Object.keys(ceph.cephJson<Record<string, unknown>>(['osd', 'pool', 'application', 'get', 'data'])), ['rbd'])
    const pools = (await ok(['ceph', 'pool', 'list', '--json'])).json<CephPool[]>()
    const data = pools.find((p) => p.name === 'data')
    assert.deepEqual(data && {size: data.size, minSize: data.minSize, pgAutoscale: data.pgAutoscale, applications: data.applications}, {size: 2, minSize: 1, pgAutoscale: 'off', applications: ['rbd']})
    assert.match((await ok(['ceph', 'pool', 'list'])).stdout, /^data +\d+ +2 +1 +\d+ +off +rbd$/m)
  })

  it('pool refusals: size beyond the OSDs up, a name taken, min-size above size, bad names and numbers; Ceph unchanged', async () => {
    await refused(['ceph', 'pool', 'create', 'big', '--size', '4'], 3, 'CEPH_POOL_SIZE_TOO_LARGE', /size 4 needs 4 OSDs up, but only 3 of 3 are up; nothing was changed/)
    const clash = await refused(['ceph', 'pool', 'create', 'data', '--size', '2', '--min-size', '1'], 3, 'CEPH_POOL_EXISTS', /A pool named data exists already/)
    // The suggestion gives the existing pool these settings: it has them, so it runs and changes nothing.
    const before = cephState()
    assert.match((await runSuggestion(clash)).stdout, /has these settings already; nothing to change/)
    assert.deepEqual(cephState(), before)
    await refused(['ceph', 'pool', 'create', 'other', '--size', '1', '--min-size', '2'], 2, 'USAGE', /--min-size 2 is larger than --size 1/)
    await refused(['ceph', 'pool', 'set', 'data', '--min-size', '3'], 3, 'CEPH_POOL_MIN_SIZE_TOO_LARGE', /min-size 3 would be larger than size 2/)
    await refused(['ceph', 'pool', 'set', 'data', '--size', '4'], 3, 'CEPH_POOL_SIZE_TOO_LARGE', /only 3 of 3 are up/)
    const missing = await refused(['ceph', 'pool', 'set', 'nopool', '--size', '2'], 3, 'CEPH_POOL_NOT_FOUND', /No pool named nopool/)
    await runSuggestion(missing)
    await refused(['ceph', 'pool', 'create', 'bad name'], 2, 'USAGE', /Invalid pool name "bad name"/)
    await refused(['ceph', 'pool', 'create', 'x', '--size', 'two'], 2, 'FLAG_INVALID', /--size/)
    await refused(['ceph', 'pool', 'create', 'x', '--size', '0'], 2, 'FLAG_INVALID', /--size/)
    await refused(['ceph', 'pool', 'create', 'x', '--pg-autoscale', 'maybe'], 2, 'USAGE', /maybe/)
    await refused(['ceph', 'pool', 'set', 'data'], 2, 'USAGE', /Nothing to set/)
  })

  it('ceph pool set --dry-run prints the ceph commands and changes nothing', async () => {
    await dryRun(['ceph', 'pool', 'set', 'data', '--size', '3', '--min-size', '2'], ['ceph osd pool set data size 3', 'ceph osd pool set data min_size 2'])
  })

  it('ceph pool set changes size, min-size and autoscaling in Ceph', async () => {
    const r = await ok(['ceph', 'pool', 'set', 'data', '--size', '3', '--min-size', '2', '--pg-autoscale', 'warn'])
    assert.match(r.stdout, /^Changed pool data on s3:$/m)
    assert.equal(poolGet('data', 'size'), '3')
    assert.equal(poolGet('data', 'min_size'), '2')
    assert.equal(poolGet('data', 'pg_autoscale_mode'), 'warn')
  })

  it('ceph image create --dry-run prints the rbd command and changes nothing', async () => {
    await dryRun(['ceph', 'image', 'create', 'data/disk1', '--size', '64M'], ['rbd create --size 64M --image-feature layering,exclusive-lock,object-map,fast-diff,deep-flatten data/disk1'])
  })

  it('ceph image create makes an image with exclusive-lock; list and info show it', async () => {
    const created = (await ok(['ceph', 'image', 'create', 'data/disk1', '--size', '64M', '--json'])).json<ImageChange>()
    assert.equal(created.dryRun, false)
    const info = rbdJson<{size: number; features: string[]}>(['info', 'data/disk1'])
    assert.equal(info.size, 64 * MiB)
    for (const feature of ['exclusive-lock', 'object-map', 'fast-diff', 'layering', 'deep-flatten']) assert.ok(info.features.includes(feature), `${feature} in ${info.features.join(',')}`)
    for (const args of [
      ['ceph', 'image', 'list'],
      ['ceph', 'image', 'list', 'data'],
    ]) {
      const images = (await ok([...args, '--json'])).json<ImageSummary[]>()
      assert.deepEqual(
        images.map((i) => [i.image, i.sizeBytes]),
        [['data/disk1', 64 * MiB]],
      )
    }
    assert.match((await ok(['ceph', 'image', 'list', 'data'])).stdout, /^data\/disk1 +64 MiB +2 +-$/m)
    const shown = (await ok(['ceph', 'image', 'info', 'data/disk1', '--json'])).json<ImageInfo>()
    assert.equal(shown.sizeBytes, 64 * MiB)
    assert.ok(shown.features.includes('exclusive-lock'))
    assert.deepEqual([shown.watchers, shown.locks], [[], []])
    assert.match((await ok(['ceph', 'image', 'info', 'data/disk1'])).stdout, /^features: .*exclusive-lock/m)
  })

  it('image refusals: a name taken, no such pool or image, bad sizes and names; Ceph unchanged', async () => {
    const clash = await refused(['ceph', 'image', 'create', 'data/disk1', '--size', '1G'], 3, 'CEPH_IMAGE_EXISTS', /An image named data\/disk1 exists already/)
    await runSuggestion(clash)
    const noPool = await refused(['ceph', 'image', 'create', 'nopool/x', '--size', '1G'], 3, 'CEPH_POOL_NOT_FOUND', /No pool named nopool/)
    assert.match(noPool.stderr, /xcluster ceph pool create nopool --application rbd/)
    const noImage = await refused(['ceph', 'image', 'info', 'data/nope'], 3, 'CEPH_IMAGE_NOT_FOUND', /No image data\/nope/)
    await runSuggestion(noImage)
    for (const size of ['1.5G', '0', '10Z', 'big']) await refused(['ceph', 'image', 'create', 'data/x', '--size', size], 2, 'USAGE', /is not a size/)
    await refused(['ceph', 'image', 'create', 'disk1', '--size', '1G'], 2, 'USAGE', /Invalid image "disk1": expected POOL\/NAME/)
    await refused(['ceph', 'image', 'rm', 'data/a;reboot', '--yes'], 2, 'USAGE', /Invalid image/)
  })

  it('ceph image resize --dry-run prints the rbd command and changes nothing', async () => {
    await dryRun(['ceph', 'image', 'resize', 'data/disk1', '--size', '128M'], ['rbd resize --no-progress --size 128M data/disk1'])
  })

  it('ceph image resize grows; a shrink needs --allow-shrink and a confirmation, then shrinks', async () => {
    await ok(['ceph', 'image', 'resize', 'data/disk1', '--size', '128M'])
    assert.equal(rbdJson<{size: number}>(['info', 'data/disk1']).size, 128 * MiB)
    const r = await refused(['ceph', 'image', 'resize', 'data/disk1', '--size', '32M'], 2, 'USAGE', /would shrink it, which destroys the data beyond the new end/)
    assert.match(r.stderr, /xcluster ceph image resize data\/disk1 --size 32M --allow-shrink/)
    await refused(['ceph', 'image', 'resize', 'data/disk1', '--size', '32M', '--allow-shrink'], 2, 'CONFIRMATION_REQUIRED', /Shrink data\/disk1 from 128 MiB to 32 MiB\?/)
    await ok(['ceph', 'image', 'resize', 'data/disk1', '--size', '32M', '--allow-shrink', '--yes'])
    assert.equal(rbdJson<{size: number}>(['info', 'data/disk1']).size, 32 * MiB)
  })

  it("ceph lock list shows a lock taken with rbd lock add, an election daemon's with its node and token", async () => {
    rbdRun(['lock', 'add', 'data/disk1', 'xcluster:s4:42'])
    try {
      const locks = (await ok(['ceph', 'lock', 'list', 'data/disk1', '--json'])).json<RbdLockHolder[]>()
      const expected = rbdJson<{id: string; locker: string; address: string}[]>(['lock', 'ls', 'data/disk1'])
      assert.equal(locks.length, 1)
      assert.deepEqual(locks[0], {node: 's4', token: '42', lock: expected[0]})
      assert.match(locks[0]!.lock.locker, /^client\.\d+$/)
      const text = (await ok(['ceph', 'lock', 'list', 'data/disk1'])).stdout
      assert.match(text, new RegExp(`^xcluster:s4:42 +${locks[0]!.lock.locker} +\\S+ +s4 +42$`, 'm'))
      const r = await refused(
        ['ceph', 'image', 'rm', 'data/disk1', '--yes'],
        3,
        'CEPH_IMAGE_IN_USE',
        /data\/disk1 is in use: locked by client\.\d+ at \S+ \(lock "xcluster:s4:42": s4, fencing token 42\)/,
      )
      await runSuggestion(r)
      // A lock xcluster did not take (an exclusive lock: one at a time) shows no node or token.
      rbdRun(['lock', 'rm', 'data/disk1', 'xcluster:s4:42', locks[0]!.lock.locker])
      rbdRun(['lock', 'add', 'data/disk1', 'backup-job'])
      const foreign = (await ok(['ceph', 'lock', 'list', 'data/disk1', '--json'])).json<RbdLockHolder[]>()
      assert.deepEqual(
        foreign.map((l) => [l.lock.id, l.node, l.token]),
        [['backup-job', null, null]],
      )
      assert.match((await ok(['ceph', 'lock', 'list', 'data/disk1'])).stdout, /^backup-job +client\.\d+ +\S+ +- +-$/m)
      await refused(['ceph', 'image', 'rm', 'data/disk1', '--yes'], 3, 'CEPH_IMAGE_IN_USE', /locked by client\.\d+ at \S+ \(lock "backup-job"\)/)
    } finally {
      for (const lock of rbdJson<{id: string; locker: string}[]>(['lock', 'ls', 'data/disk1'])) rbdRun(['lock', 'rm', 'data/disk1', lock.id, lock.locker])
    }
  })

  it('ceph image rm refuses while a client has the image open, saying which', async () => {
    // `rbd watch` holds a watch until it reads a line.
    const watcher = spawn('ip', ['netns', 'exec', host.ns, 'rbd', '-c', ceph.conf, 'watch', 'data/disk1'], {stdio: ['pipe', 'pipe', 'pipe']})
    try {
      for (const deadline = Date.now() + 30_000; rbdJson<{watchers: unknown[]}>(['status', 'data/disk1']).watchers.length === 0; await new Promise((r) => setTimeout(r, 200))) {
        assert.ok(Date.now() < deadline, 'rbd watch did not register')
      }
      const info = (await ok(['ceph', 'image', 'info', 'data/disk1', '--json'])).json<ImageInfo>()
      assert.equal(info.watchers.length, 1)
      assert.match(info.watchers[0]!.client, /^client\.\d+$/)
      await refused(['ceph', 'image', 'rm', 'data/disk1', '--yes'], 3, 'CEPH_IMAGE_IN_USE', new RegExp(`in use: open by ${info.watchers[0]!.client.replace('.', '\\.')} at `))
    } finally {
      const exited = new Promise((r) => watcher.once('exit', r))
      watcher.stdin.end('\n')
      await exited
    }
    for (const deadline = Date.now() + 60_000; rbdJson<{watchers: unknown[]}>(['status', 'data/disk1']).watchers.length > 0; await new Promise((r) => setTimeout(r, 500))) {
      assert.ok(Date.now() < deadline, 'the watch did not go away')
    }
  })

  it('ceph image rm --dry-run prints the rbd command and changes nothing', async () => {
    await dryRun(['ceph', 'image', 'rm', 'data/disk1'], ['rbd rm --no-progress data/disk1'])
  })

  it('ceph image rm asks (refused without a terminal), then removes with --yes', async () => {
    await refused(['ceph', 'image', 'rm', 'data/disk1'], 2, 'CONFIRMATION_REQUIRED', /Remove data\/disk1 \(32 MiB\) and all its data\?/)
    await ok(['ceph', 'image', 'rm', 'data/disk1', '--yes'])
    assert.deepEqual(rbdJson<string[]>(['ls', 'data']), [])
    await refused(['ceph', 'image', 'rm', 'data/disk1', '--yes'], 3, 'CEPH_IMAGE_NOT_FOUND', /No image data\/disk1/)
  })

  it('ceph disk list: every OSD with its CRUSH host, object store, size, PGs, up and in, as Ceph has them', async () => {
    const listed = (await ok(['ceph', 'disk', 'list', '--json'])).json<OsdDisk[]>()
    assert.deepEqual(
      listed.map((d) => [d.osd, d.host, d.objectstore, d.up, d.in]),
      [
        [0, 's4', 'memstore', true, true],
        [1, 's5', 'memstore', true, true],
        [2, 's5', 'memstore', true, true],
      ],
    )
    const df = ceph.cephJson<{nodes: {id: number; kb: number}[]}>(['osd', 'df'])
    for (const d of listed) assert.equal(d.sizeBytes, df.nodes.find((n) => n.id === d.osd)!.kb * 1024)
    const table = (await ok(['ceph', 'disk', 'list'])).stdout
    assert.match(table, /^OSD\s+HOST\s+DEVICES\s+STORE\s+SIZE\s+USED\s+PGS\s+STATUS$/m)
    assert.match(table, /^osd\.0\s+s4\s+-\s+memstore\s+.*\sup, in$/m)
  })

  /** What the device holds, read in the sandbox as its sessions see it (wipefs, LVM's PVs and LVs). */
  function onDisk(device: string): {signatures: string[]; pv: string; lvs: string} {
    const inSandbox = (argv: string[]) => {
      const r = spawnSync(host.wrap[0]!, [...host.wrap.slice(1), 'env', `LVM_SYSTEM_DIR=${lvmDir}`, 'LVM_SUPPRESS_FD_WARNINGS=1', ...argv], {encoding: 'utf8'})
      return r.stdout.trim()
    }
    const wiped = inSandbox(['wipefs', '-n', '-J', device])
    return {
      signatures: wiped ? (JSON.parse(wiped) as {signatures: {type: string}[]}).signatures.map((x) => x.type) : [],
      pv: inSandbox(['pvs', '--noheadings', '-o', 'vg_name', device]),
      lvs: inSandbox(['lvs', '--noheadings', '-o', 'lv_name,lv_size', '--units', 'm', `ceph-s4-${device.split('/').pop()}`]),
    }
  }

  it('ceph disk add refuses a disk holding a filesystem or a partition table, saying what it holds, with nothing changed; an unknown device too', async () => {
    for (const [device, held] of [
      [disks.ext4, /holds data: a signature of ext4 at offset 0x438\. Making it an OSD destroys that\./],
      [disks.dos, /holds data: a partition table \(dos\)\./],
    ] as const) {
      const before = onDisk(device)
      assert.ok(before.signatures.length > 0, `${device} holds something: ${JSON.stringify(before)}`)
      const r = await cli(['ceph', 'disk', 'add', 's4', device])
      assert.equal(r.code, 4, r.stdout + r.stderr)
      assert.match(r.stderr, held)
      assert.ok(r.stderr.includes(`Try this: If that data may go, say so: xcluster ceph disk add s4 ${device} --wipe`), r.stderr)
      assert.deepEqual(onDisk(device), before)
    }
    const missing = await cli(['ceph', 'disk', 'add', 's4', '/dev/xct-no-such-disk'])
    assert.equal(missing.code, 4)
    assert.match(missing.stderr, /Cannot read \/dev\/xct-no-such-disk on s4: not a block device/)
    const bad = await cli(['ceph', 'disk', 'add', 's4', 'sdb'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /"sdb" is not a device path/)
  })

  it('ceph disk add --dry-run prints the exact wipefs, LVM and ceph-volume lines and changes nothing', async () => {
    const vg = (device: string) => `ceph-s4-${device.split('/').pop()}`
    const plan = async (device: string, extra: string[]) => {
      const before = onDisk(device)
      const r = await ok(['ceph', 'disk', 'add', 's4', device, ...extra, '--dry-run', '--json'])
      assert.deepEqual(onDisk(device), before, `--dry-run changed ${device}`)
      return r.json<DiskAddResult>().run.plan.s4
    }
    const lvm = (device: string) => [
      `pvcreate ${device}`,
      `vgcreate ${vg(device)} ${device}`,
      `lvcreate -y -l 100%FREE -n osd-block ${vg(device)}`,
      `ceph-volume lvm create --bluestore --data ${vg(device)}/osd-block`,
    ]
    assert.deepEqual(await plan(disks.empty, []), lvm(disks.empty))
    assert.deepEqual(await plan(disks.ext4, ['--wipe']), [`wipefs -a ${disks.ext4}`, ...lvm(disks.ext4)])
  })

  it('ceph disk add --wipe: the filesystem is gone and the disk is a PV of its own VG with one LV over it; the OSD step is what this machine cannot do', async () => {
    const device = disks.ext4
    const r = await cli(['ceph', 'disk', 'add', 's4', device, '--wipe'])
    const after = onDisk(device)
    assert.deepEqual(after.signatures, ['LVM2_member'], JSON.stringify(after))
    assert.equal(after.pv, `ceph-s4-${device.split('/').pop()}`)
    assert.match(after.lvs, /^osd-block\s+12\d\.\d+m$/, r.stdout + r.stderr)
    // ceph-volume needs udev (udevadm) and the LV's device node, which device-mapper makes:
    // neither is on this machine, so the OSD step fails here, in ceph-volume's own words.
    assert.equal(r.code, 4, r.stdout + r.stderr)
    assert.match(r.stderr, /s4 \(phase add-osd\): .*ceph-volume lvm create --bluestore --data ceph-s4-loop\d+\/osd-block.* exited with 1:\n.*udevadm/)
    const resume = /--resume (\S+)/.exec(r.stderr)?.[1]
    assert.ok(resume, r.stderr)

    // Continued: the LVM made is kept (nothing prepared again), the OSD step is tried again.
    const again = await cli(['ceph', 'disk', 'add', 's4', device, '--wipe', '--resume', resume, '--json'])
    assert.equal(again.code, 4)
    assert.deepEqual(onDisk(device), after)
    assert.match(again.stdout + again.stderr, /phase add-osd/)
  })

  it("health --ssh and status --ssh carry Ceph's own verdict and counts; an OSD held down is a warning that names it, whose next step runs", async () => {
    const VERDICT: Record<string, HealthCheck['status']> = {HEALTH_OK: 'ok', HEALTH_WARN: 'warn', HEALTH_ERR: 'fail'}
    const cephHealth = () => ceph.cephJson<{status: string}>(['health']).status
    /** The ceph check of `health --ssh` (exit 3 anyway: s1 does not answer SSH), read while Ceph's verdict held still. */
    async function cephCheckOf(): Promise<{check: HealthCheck; verdict: string}> {
      for (let attempt = 1; ; attempt++) {
        const before = cephHealth()
        const r = await cli(['health', '--ssh', '--json'])
        assert.equal(r.code, 3, r.stderr)
        const check = r.json<HealthReport>().checks.find((c) => c.name === 'ceph')
        assert.ok(check, 'health --ssh has a ceph check when the spec has a ceph section')
        if (attempt < 5 && cephHealth() !== before) continue
        assert.equal(check.status, VERDICT[before], `${before}: ${JSON.stringify(check)}`)
        return {check, verdict: before}
      }
    }
    const upNow = () => ceph.cephJson<{num_up_osds: number}>(['osd', 'stat']).num_up_osds
    async function until(up: number): Promise<void> {
      for (const deadline = Date.now() + 60_000; upNow() !== up; await new Promise((r) => setTimeout(r, 250))) assert.ok(Date.now() < deadline, `${up} OSDs up within 60 s`)
    }

    const {check} = await cephCheckOf()
    assert.match(check.observed, /^HEALTH_\w+ from s3: 3 OSDs, 3 up, 3 in; \d+ PGs \(.*\); .* used of .*/)

    const status = (await cli(['status', '--ssh', '--json'])).json<ClusterStatus>()
    assert.ok(status.ceph.checked && 'status' in status.ceph, JSON.stringify(status.ceph))
    assert.equal(status.ceph.status.node, 's3')
    assert.deepEqual(status.ceph.status.osds, {total: 3, up: 3, in: 3})
    assert.equal(status.ceph.status.fsid, ceph.ceph(['fsid']).trim())
    const screen = await ok(['status', '--ssh'])
    assert.match(screen.stdout, /^ceph:\s+HEALTH_\w+ from s3: 3 OSDs, 3 up, 3 in;/m)
    const unasked = (await ok(['status', '--json'])).json<ClusterStatus>()
    assert.deepEqual(unasked.ceph, {checked: false, reason: 'Ceph is asked over SSH, with --ssh'})

    // osd.2 marked down and kept down (noup): Ceph itself raises OSD_DOWN.
    ceph.ceph(['osd', 'set', 'noup'])
    try {
      ceph.ceph(['osd', 'down', '2'])
      await until(2)
      const held = await cephCheckOf()
      assert.equal(held.verdict, 'HEALTH_WARN')
      assert.match(held.check.observed, /from s3: 3 OSDs, 2 up, 3 in;.*OSD_DOWN: 1 osds down/)
      assert.equal(held.check.next, 'xcluster ceph status --node s3')
      const next = await ok(held.check.next!.split(' ').slice(1))
      assert.match(next.stdout, /^osds: 2 up, 3 in, of 3$/m)
    } finally {
      ceph.ceph(['osd', 'unset', 'noup'])
    }
    await until(3)
  })
})
