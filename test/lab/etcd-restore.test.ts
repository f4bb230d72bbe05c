/**
 * Disaster recovery on the bootstrapped lab, as an operator would do it: `etcd snapshot save` on
 * the admin host, every member's data destroyed, then the restore procedure xcluster prints, run
 * as printed on each member (the snapshot copied there with scp, host keys checked against the
 * lab's pins). Every node, lease and pin is back; a write made after the snapshot is not; the
 * cluster elects its services again and is healthy.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {after, describe, it} from 'node:test'

import {labPaths} from '../../src/lib/lab/paths.js'
import {settings} from '../../src/lib/settings.js'
import {admin, clusterStore, lab, ok, onNode, waitUntil} from '../helpers/lab.js'

const run = promisify(execFile)
const CORE = ['s1', 's2', 's3']

interface NodeRow {
  name: string
  mac: string
  type: string
  state: string
  ip?: string
}
interface LeaseRow {
  mac: string
  ip: string
}

/** The lab's scp: the operator's key, the lab's pinned host keys, never StrictHostKeyChecking=no. */
async function scp(files: string[], node: string, dir: string): Promise<void> {
  const state = lab()
  const host = state.hosts.find((h) => h.name === node)
  assert.ok(host, `no lab host ${node}`)
  await run('scp', [
    '-F',
    '/dev/null',
    '-i',
    state.sshKey,
    '-o',
    `UserKnownHostsFile=${labPaths(state.dir).knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-q',
    ...files,
    `${state.sshUser}@${host.ip}:${dir}/`,
  ])
}

const nodes = async (): Promise<NodeRow[]> =>
  ok(await admin(['node', 'list', '--json']), 'node list')
    .json<NodeRow[]>()
    .map(({name, mac, type, state, ip}) => ({name, mac, type, state, ...(ip ? {ip} : {})}))
    .sort((a, b) => a.name.localeCompare(b.name))
const leases = async (): Promise<string[]> =>
  ok(await admin(['dhcp', 'leases', '--json']), 'dhcp leases')
    .json<LeaseRow[]>()
    .map((l) => `${l.mac} ${l.ip}`)
    .sort()

describe('etcd snapshot save and restore of the whole cluster', {concurrency: false}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'xct-restore-'))
  after(() => rmSync(dir, {recursive: true, force: true}))

  it('every member destroyed, then restored by the printed procedure: nodes, leases and pins are back, a later write is not', async () => {
    const file = join(dir, 'backup.db')
    const saved = ok(await admin(['etcd', 'snapshot', 'save', file, '--json']), 'snapshot save').json<{revision: number; sha256File: string}>()
    assert.ok(existsSync(`${file}.sha256`), 'the sidecar is written beside the snapshot')
    const store = clusterStore()
    const nodesBefore = await nodes()
    const leasesBefore = await leases()
    assert.ok(leasesBefore.length > 0, 'the lab has DHCP leases to lose')
    const pinsBefore = await Promise.all(nodesBefore.map(async (n) => [n.name, (await store.getJson(store.keys.hostKey(n.name)))?.value] as const))
    assert.ok(
      pinsBefore.every(([, pin]) => pin),
      `every node has a pin: ${JSON.stringify(pinsBefore)}`,
    )
    // A write after the snapshot: the restore must take the cluster back to before it.
    const later = store.keys.hostKey('zz-after-snapshot')
    await store.put(later, {fingerprints: ['SHA256:written-after-the-snapshot'], pinnedAt: new Date().toISOString(), source: 'repin'})
    const {members} = ok(await admin(['etcd', 'members', '--json']), 'etcd members').json<{members: {name: string}[]}>()
    assert.deepEqual(members.map((m) => m.name).sort(), CORE)

    // With quorum, restore refuses and prints the procedure, one command per member.
    const refused = await admin(['etcd', 'snapshot', 'restore', file, '--json'])
    assert.equal(refused.code, 3, refused.stdout + refused.stderr)
    const error = refused.json<{error: {code: string; details: {procedure: string[]}}}>().error
    assert.equal(error.code, 'ETCD_RUNNING')
    const procedure = error.details.procedure
    const perMember = new Map(CORE.map((n) => [n, procedure.find((step) => step.startsWith(`On ${n}: `))?.slice(`On ${n}: `.length)]))
    for (const [n, command] of perMember) assert.match(command ?? '', /^xcluster etcd snapshot restore /, `a restore command for ${n} in ${procedure.join('\n')}`)
    const everyMember = procedure.filter((step) => step.startsWith('On every member: ')).map((step) => step.slice('On every member: '.length))
    assert.equal(everyMember.length, 3, procedure.join('\n'))
    const [stop, moveAside, start] = everyMember as [string, string, string]
    assert.match(stop, /^systemctl stop xcluster-serve\.service etcd-member\.service$/)
    assert.match(start, /^systemctl start etcd-member\.service xcluster-serve\.service$/)

    // The disaster: every member's data is gone.
    await Promise.all(CORE.map(async (n) => assert.equal((await onNode(n, `${stop} && rm -rf ${settings.etcdMember.dataDir}`)).code, 0, `${n}: destroy`)))
    const down = await admin(['etcd', 'health', '--json'])
    assert.notEqual(down.code, 0, 'no member answers')

    // The procedure, as printed: copy, move aside (nothing left to move), restore, start.
    for (const n of CORE) {
      assert.equal((await onNode(n, `mkdir -p ${dir} && chown ${lab().sshUser} ${dir}`)).code, 0)
      await scp([file, `${file}.sha256`], n, dir)
    }
    for (const n of CORE) {
      const moved = await onNode(n, `if [ -e ${settings.etcdMember.dataDir} ]; then ${moveAside}; fi`)
      assert.equal(moved.code, 0, `${n}: ${moveAside}: ${moved.stderr}`)
      const restored = await onNode(n, perMember.get(n)!, 120_000)
      assert.equal(restored.code, 0, `${n}: ${perMember.get(n)}: ${restored.stdout}${restored.stderr}`)
      assert.match(restored.stdout, new RegExp(`revision ${saved.revision}`))
    }
    const started = await Promise.all(CORE.map((n) => onNode(n, start, 120_000)))
    started.forEach((r, i) => assert.equal(r.code, 0, `${CORE[i]}: ${start}: ${r.stderr}`))

    let health: {code: number; stdout: string; stderr: string} | undefined
    await waitUntil(
      async () => (health = await admin(['etcd', 'health'])).code === 0,
      60_000,
      () => `etcd health: ${health?.stdout}${health?.stderr}`,
    )
    assert.deepEqual(await nodes(), nodesBefore)
    const leasesAfter = await leases()
    for (const l of leasesBefore) assert.ok(leasesAfter.includes(l), `lease ${l} is back (have ${leasesAfter.join(', ')})`)
    const fresh = clusterStore()
    try {
      for (const [name, pin] of pinsBefore) assert.deepEqual((await fresh.getJson(fresh.keys.hostKey(name)))?.value, pin, `${name}'s pin`)
      assert.equal(await fresh.getJson(later), undefined, 'the write made after the snapshot is gone')
    } finally {
      await fresh.close()
      await store.close()
    }
    // The daemons came back with etcd: the services are elected again, and nothing fails.
    let report: {code: number; stdout: string; stderr: string} | undefined
    await waitUntil(
      async () => (report = await admin(['health', '--json'])).code === 0,
      90_000,
      () => `health: ${report?.stdout.slice(0, 3000)}`,
    )
  })
})
