/**
 * --dry-run changes nothing, for every command that offers it. The commands come from the built
 * oclif manifest, so a new command with --dry-run is covered as soon as it exists: the test fails
 * until INVOCATIONS below says how to run it. Each runs against a populated real etcd and, where
 * it touches hosts, a real sshd host (a sandbox whose filesystem records every write); after each
 * one, etcd (every key and value) and the host (every written path, its hostname) are unchanged.
 */
import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore, type HeldLease} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import type {RunRecord} from '../../src/lib/tasks/journal.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSandboxHost, type SandboxHost} from '../helpers/sandbox-host.js'

interface ManifestCommand {
  id: string
  flags: Record<string, {name: string}>
}
const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, ManifestCommand>}
const declaring = Object.values(manifest.commands)
  .filter((c) => c.flags['dry-run'])
  .map((c) => c.id)
  .sort()
const takesEtcd = (id: string) => Boolean(manifest.commands[id].flags.etcd)

const ADDRESSES = {s1: '10.0.0.2', s2: '10.0.0.3', s3: '10.0.0.4', s4: '10.0.0.11', c1: '10.0.0.51', f1: '10.0.0.71'}
/** c7 is registered by a dry run only: it answers too, so its plan can be made. */
const C7 = '10.0.0.57'
const RUN_ID = '20260101-000000-abc123'
const NEW_SPEC = '/tmp/xct-dry-run-never-written.yaml'

/** How to run each command that declares --dry-run: arguments that make it plan a real change. */
const INVOCATIONS: Record<string, string[][]> = {
  'cert:acme:issue': [['app.example.org', 'www.example.org', '--email', 'ops@example.org']],
  // Nothing is stored here: what it would renew, and that the rest stays, is checked in test/etcd/cert.test.ts.
  'cert:renew': [['--all']],
  'config:apply': [['-f', 'changed.yaml']],
  'dhcp:release': [['10.0.0.201']],
  'election:resign': [['web']],
  'election:transfer': [['web', '--to', 's2']],
  'frontend:expose': [['shop', '--to', '10.0.0.51:8080', '--port', '8443']],
  'inventory:export': [['ansible']],
  // etcd.db: saved in before(); the data dir it would create is never written.
  'etcd:snapshot:restore': [['etcd.db', '--data-dir', 'restored-etcd', '--name', 's1', '--initial-cluster', 's1=http://10.0.0.2:2380', '--initial-advertise-peer-urls', 'http://10.0.0.2:2380']],
  init: [
    ['-f', NEW_SPEC],
    ['-f', NEW_SPEC, '--force'],
  ],
  'lab:down': [[], ['--purge']],
  'lab:up': [[], ['--nodes', '3']],
  'node:add': [
    ['s1', 's2'],
    ['c1', '--accept-new-host-key'],
    ['c7', '--mac', '02:58:43:00:02:07', '--ip', C7, '--accept-new-host-key'],
    ['s1', '--resume', RUN_ID],
  ],
  'node:drain': [['s4']],
  'node:remove': [['f1'], ['s3', '--force']],
  'node:repin': [['s1', '--fingerprint', 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']],
  'node:undrain': [['f1']],
  // Every ready node (the default: f1 is drained there), and the core nodes one at a time.
  update: [[], ['--nodes', 'type=core', '--serial', '1']],
}

/**
 * The sandbox runs sshd but not systemd, which node add's preflight refuses (it only reads): a
 * dry run reports that as a real run would, and everything before it must still change nothing.
 * Its whole plan on systemd hosts is checked in the lab (test/lab/node-lifecycle.test.ts).
 */
const STOPPED_BY_PREFLIGHT = new Set(['node:add'])
/**
 * Checked where what they need runs: bootstrap needs three systemd hosts and the admin host's own
 * services (the lab), and so do ceph bootstrap and ceph join; frontend sync a CA, certificates and nginx on the node (its own test).
 */
const CHECKED_IN: Record<string, string> = {
  bootstrap: 'test/lab/bootstrap.test.ts',
  'cert:ca:rotate': 'test/lab/tls-ca-rotation.test.ts',
  'frontend:sync': 'test/ssh/frontend-sync.test.ts',
  // They install and start Ceph on systemd hosts, through the package cache: the lab.
  'ceph:bootstrap': 'test/lab/ceph.test.ts',
  'ceph:join': 'test/lab/ceph.test.ts',
  // Its dry run asks the monitors for their quorum before it plans: the lab too.
  'ceph:leave': 'test/lab/ceph.test.ts',
}
/** Need a real Ceph on the node they ask (the sandbox has none): their dry runs are checked against one there. */
const WITH_CEPH = 'test/ssh/ceph-admin.test.ts'
const CEPH_CHANGES = ['ceph:disk:add', 'ceph:image:create', 'ceph:image:resize', 'ceph:image:rm', 'ceph:pool:create', 'ceph:pool:set']

let etcd: TestEtcd
let store: EtcdStore
let host: SandboxHost
let dir: string
let leaderLease: HeldLease

function specYaml(extra = ''): string {
  let text = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8').replace('key: ~/.ssh/id_ed25519', `key: ${host.clientKeyPath}`)
  for (const [name, ip] of Object.entries(ADDRESSES)) text = text.replace(new RegExp(`(\\{name: ${name}, mac: "[^"]+")(, ip: [0-9.]+)?\\}`), `$1, ip: ${ip}}`)
  return `${text.trimEnd()}\nservices:\n  - {name: web, start: 'true', stop: 'true', nodes: [s1, s2, s3]}\n${extra}`
}

async function setNode(name: string, fields: Partial<NodeRecord>): Promise<void> {
  const n = (await store.getJson<NodeRecord>(store.keys.node(name)))!.value
  await store.put(store.keys.node(name), {...n, ...fields})
}

describe('--dry-run changes nothing in etcd or on any host, for every command that offers it', () => {
  before(async () => {
    // Its socket in a tmpfs the sandbox does not overlay (a socket is not reachable through an overlay).
    etcd = await startEtcd({unixSocket: true, dir: mkdtempSync(join('/dev/shm', 'xct-dry-run-etcd-'))})
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    host = await startSandboxHost({tag: 'dry-run', addresses: [...Object.values(ADDRESSES), C7]})
    dir = mkdtempSync(join(tmpdir(), 'xct-dry-run-'))
    writeFileSync(join(dir, 'xcluster.yaml'), specYaml())
    // A changed spec: c1 gets a new MAC, s4 a new address.
    writeFileSync(join(dir, 'changed.yaml'), specYaml().replace('"02:58:43:00:02:01"', '"02:58:43:00:02:99"').replace(`ip: ${ADDRESSES.s4}`, 'ip: 10.0.0.12'))
    const applied = await xcluster(['config', 'apply', '-f', join(dir, 'xcluster.yaml'), '--etcd', etcd.endpoint])
    assert.equal(applied.code, 0, applied.stderr)
    for (const name of ['s1', 's2', 's3', 's4']) await setNode(name, {state: 'ready'})
    await setNode('f1', {state: 'drained'})
    for (const name of ['s1', 's2', 's3', 's4', 'f1']) {
      await store.put(store.keys.hostKey(name), {fingerprints: [host.hostFingerprint], pinnedAt: new Date().toISOString(), source: 'registration'})
    }
    await store.put(store.keys.lease('10.0.0.201'), {
      ip: '10.0.0.201',
      mac: '02:00:00:00:00:01',
      type: 'discovered',
      state: 'bound',
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      grantedBy: '10.0.0.2',
    })
    // A leader for web (s1) with s2 campaigning, as serve --elect would leave them.
    leaderLease = await store.grantLease(60)
    await store.transaction().put(store.keys.electionLeader('web'), {node: 's1', since: new Date().toISOString(), ttl: 60}, {lease: leaderLease.id}).commit()
    for (const node of ['s1', 's2']) await store.transaction().put(store.keys.electionCandidate('web', node), {node, pid: 1, since: new Date().toISOString()}, {lease: leaderLease.id}).commit()
    // A failed run to resume.
    const run: RunRecord = {id: RUN_ID, action: 'node add', args: ['s1'], user: 'test', origin: 'test', startedAt: new Date().toISOString(), result: 'failed', hosts: ['s1'], failures: [], resumes: 0}
    await store.put(store.keys.run(RUN_ID), run)
    await store.put(store.keys.runCheckpoint(RUN_ID, 'mark-provisioning', 's1'), {at: new Date().toISOString()})
    const saved = await xcluster(['etcd', 'snapshot', 'save', join(dir, 'etcd.db'), '--etcd', etcd.endpoint])
    assert.equal(saved.code, 0, saved.stderr)
  })

  after(async () => {
    await leaderLease?.revoke()
    await store?.close()
    await host?.stop()
    await etcd?.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  it('every command that declares --dry-run has an invocation here, and only those', () => {
    assert.ok(declaring.length >= 10, `found only ${declaring.join(', ')}`)
    assert.deepEqual([...Object.keys(INVOCATIONS), ...Object.keys(CHECKED_IN), ...CEPH_CHANGES].sort(), declaring, 'add the new command to INVOCATIONS (and make its --dry-run honest)')
    for (const [id, file] of Object.entries(CHECKED_IN)) {
      const text = readFileSync(join(ROOT, file), 'utf8')
      assert.match(text, /it\('--dry-run [^']*changes nothing/, `${file} checks that ${id} --dry-run changes nothing`)
      assert.match(text, /'--dry-run'/, `${file} runs ${id} with --dry-run`)
    }
    const ceph = readFileSync(join(ROOT, WITH_CEPH), 'utf8')
    for (const id of CEPH_CHANGES) {
      const argv = id
        .split(':')
        .map((w) => `'${w}'`)
        .join(', ')
      assert.match(ceph, new RegExp(`it\\('${id.replaceAll(':', ' ')} --dry-run [^']*changes nothing`), `${WITH_CEPH} checks that ${id} --dry-run changes nothing`)
      assert.ok(ceph.includes(`[${argv}, `) && ceph.includes("'--dry-run'"), `${WITH_CEPH} runs ${id} with --dry-run`)
    }
  })

  for (const id of declaring) {
    for (const args of INVOCATIONS[id] ?? []) {
      const line = `${id.replaceAll(':', ' ')} ${args.join(' ')}`.trim()
      it(`${line} --dry-run`, async () => {
        const etcdBefore = await store.snapshot()
        const hostBefore = host.snapshot()
        const hostname = host.hostname()
        const argv = [...id.split(':'), ...args, '--dry-run', ...(takesEtcd(id) ? ['--etcd', etcd.unixEndpoint!] : [])]
        const r = await xcluster(argv, {wrap: [...host.wrap.slice(0, -1), `--wd=${dir}`]})
        if (STOPPED_BY_PREFLIGHT.has(id)) {
          assert.equal(r.code, 4, `${line}: ${r.stderr}`)
          assert.match(r.stderr, /\(phase preflight\): \S+ is not ready: systemd is not running as its init/, line)
        } else {
          assert.equal(r.code, 0, `${line}: ${r.stderr}`)
          assert.match(r.stdout, /dry run|would/i, `${line} says what it would do:\n${r.stdout}`)
        }
        if (process.env.XCT_SHOW) console.log(r.stdout)
        assert.deepEqual(await store.snapshot(), etcdBefore, `${line} changed etcd`)
        assert.deepEqual(host.snapshot(), hostBefore, `${line} wrote on the host`)
        assert.equal(host.hostname(), hostname)
        assert.equal(existsSync(NEW_SPEC), false)
      })
    }
  }

  it('the checks see a real change: the same commands without --dry-run change etcd and the host', async () => {
    const etcdBefore = await store.snapshot()
    const repin = await xcluster(['node', 'repin', 's1', '--fingerprint', 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', '--yes', '--etcd', etcd.unixEndpoint!], {wrap: host.wrap})
    assert.equal(repin.code, 0, repin.stderr)
    assert.notDeepEqual(await store.snapshot(), etcdBefore)
    const hostBefore = host.snapshot()
    const init = await xcluster(['init', '-f', NEW_SPEC], {wrap: host.wrap})
    assert.equal(init.code, 0, init.stderr)
    assert.ok(host.snapshot()[NEW_SPEC], 'the sandbox recorded the written file')
    assert.notDeepEqual(host.snapshot(), hostBefore)
    assert.equal(existsSync(NEW_SPEC), false, 'and the machine itself was not touched')
  })

  it('a command that does not honour a flag does not offer it: a usage error, exit 2', async () => {
    for (const argv of [
      ['node', 'list', '--dry-run'],
      ['runs', 'list', '--yes'],
      ['config', 'validate', '--etcd', 'http://127.0.0.1:1'],
      ['lab', 'status', '--cluster', 'x'],
    ]) {
      const r = await xcluster(argv)
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /Error \[USAGE\]: Nonexistent flag/)
      assert.match(r.stderr, /Try this: .*xcluster .* --help/)
    }
  })
})
