/**
 * The Ansible inventory's pure parts: the inventory built from a snapshot (groups, host
 * variables, addresses, removed nodes), the known_hosts built from pins and presented keys, and
 * the export's files (rendered from templates/ansible/, planned against what a directory holds).
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {generateKeyPairSync} from 'node:crypto'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {homedir, tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parse} from 'yaml'

import type {Lease} from '../../src/lib/dhcp/lease.js'
import {XclusterError} from '../../src/lib/errors.js'
import {
  buildInventory,
  checkExportDir,
  EXPORT_FILES,
  EXPORT_MARKER,
  inventoryHost,
  parseKeyscanOutput,
  pinnedKnownHosts,
  planExportFiles,
  renderExportFiles,
  writeInventoryExport,
  type AnsibleGroup,
  type ExportInput,
  type InventorySource,
  type PresentedHostKey,
} from '../../src/lib/inventory/index.js'
import type {NodeRecord, NodeState, NodeType} from '../../src/lib/nodes/record.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {fingerprintOfPublicKey} from '../../src/lib/ssh/fingerprint.js'
import {ROOT} from '../helpers/cli.js'

const NOW = Date.parse('2026-03-01T12:00:00Z')
const spec: ClusterSpec = parseSpec(readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8'), 'xcluster.yaml')

const node = (name: string, type: NodeType, mac: string, state: NodeState, extra: Partial<NodeRecord> = {}): NodeRecord => ({
  name,
  type,
  mac,
  state,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
  ...extra,
})

const lease = (ip: string, mac: string, extra: Partial<Lease> = {}): Lease => ({
  ip,
  mac,
  type: 'compute',
  state: 'bound',
  expiresAt: new Date(NOW + 60_000).toISOString(),
  grantedBy: '10.0.0.2',
  ...extra,
})

const NODES: NodeRecord[] = [
  node('c1', 'compute', '02:58:43:00:02:01', 'ready'),
  node('c2', 'compute', '02:58:43:00:02:02', 'failed', {reason: 'disk gone'}),
  node('c9', 'compute', '02:58:43:00:02:09', 'removed'),
  node('f1', 'frontend', '02:58:43:00:03:01', 'registered'),
  node('s1', 'core', '02:58:43:00:01:01', 'ready', {ip: '10.0.0.2'}),
  node('s4', 'storage', '02:58:43:00:01:04', 'drained', {reason: 'maintenance'}),
]
const LEASES: Lease[] = [
  lease('10.0.0.51', '02:58:43:00:02:01'),
  // Expired, declined, and a lease of a node with a fixed IP: none of them is an address to use.
  lease('10.0.0.52', '02:58:43:00:02:02', {expiresAt: new Date(NOW - 1).toISOString()}),
  lease('10.0.0.11', '02:58:43:00:01:04', {state: 'declined'}),
  lease('10.0.0.9', '02:58:43:00:01:01'),
]
const source: InventorySource = {spec, nodes: NODES, leases: LEASES, now: NOW}
const group = (inv: Record<string, unknown>, name: string) => inv[name] as AnsibleGroup | undefined

const isError = (code: string, exit: number, message?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof XclusterError, String(e))
  assert.equal(e.code, code)
  assert.equal(e.exit, exit)
  if (message) assert.match(e.message, message)
  return true
}

describe('buildInventory', () => {
  const inv = buildInventory(source, {lanInterface: 'eth1'}, 'xcluster')

  it('groups by type (all four, even empty) and by the states nodes are in, in lifecycle order; all has every group', () => {
    assert.deepEqual(group(inv, 'core'), {hosts: ['s1']})
    assert.deepEqual(group(inv, 'storage'), {hosts: ['s4']})
    assert.deepEqual(group(inv, 'compute'), {hosts: ['c1', 'c2']})
    assert.deepEqual(group(inv, 'frontend'), {hosts: ['f1']})
    assert.deepEqual(group(inv, 'ungrouped'), {hosts: []})
    assert.deepEqual(inv.all, {hosts: [], children: ['ungrouped', 'core', 'storage', 'compute', 'frontend', 'state_registered', 'state_ready', 'state_drained', 'state_failed']})
    assert.deepEqual(group(inv, 'state_ready'), {hosts: ['c1', 's1']})
    assert.equal(group(inv, 'state_provisioning'), undefined, 'no group for a state no node is in')
    const keys = Object.keys(inv).filter((k) => k !== '_meta' && k !== 'all')
    assert.deepEqual(keys.sort(), [...(inv.all.children ?? [])].sort(), 'every group is a child of all, and nothing else is at the top')
  })

  it('leaves removed nodes out: they left the cluster and their pin was freed', () => {
    assert.deepEqual(Object.keys(inv._meta.hostvars).sort(), ['c1', 'c2', 'f1', 's1', 's4'])
    assert.equal(group(inv, 'state_removed'), undefined)
  })

  it("host variables: the address xcluster uses (fixed, bound lease, else link-local), the spec's SSH user and key, the node list fields", () => {
    const key = join(homedir(), '.ssh', 'id_ed25519')
    assert.deepEqual(inv._meta.hostvars.s1, {
      ansible_host: '10.0.0.2',
      ansible_user: 'root',
      ansible_ssh_private_key_file: key,
      xcluster_type: 'core',
      xcluster_mac: '02:58:43:00:01:01',
      xcluster_ip: '10.0.0.2',
      xcluster_state: 'ready',
      xcluster_ready: true,
    })
    assert.deepEqual(inv._meta.hostvars.c1, {
      ansible_host: '10.0.0.51',
      ansible_user: 'root',
      ansible_ssh_private_key_file: key,
      xcluster_type: 'compute',
      xcluster_mac: '02:58:43:00:02:01',
      xcluster_ip: null,
      xcluster_leased_ip: '10.0.0.51',
      xcluster_state: 'ready',
      xcluster_ready: true,
    })
    // c2's lease expired and s4's was declined: reached by link-local on the LAN interface.
    assert.equal(inv._meta.hostvars.c2?.ansible_host, 'fe80::58:43ff:fe00:202%eth1')
    assert.equal(inv._meta.hostvars.c2?.xcluster_leased_ip, undefined)
    assert.equal(inv._meta.hostvars.c2?.xcluster_reason, 'disk gone')
    assert.equal(inv._meta.hostvars.s4?.ansible_host, 'fe80::58:43ff:fe00:104%eth1')
    assert.deepEqual(
      Object.entries(inv._meta.hostvars).map(([n, v]) => [n, v.xcluster_ready]),
      [
        ['c1', true],
        ['c2', false],
        ['f1', false],
        ['s1', true],
        ['s4', false],
      ],
    )
  })

  it('--ssh-key wins over the spec; ~/ is expanded as xcluster does', () => {
    assert.equal(buildInventory(source, {sshKey: '/keys/operator', lanInterface: 'eth0'}, 'x')._meta.hostvars.s1?.ansible_ssh_private_key_file, '/keys/operator')
    const tilde = {...spec, ssh: {user: 'debian', key: '~/k/id'}}
    const vars = buildInventory({...source, spec: tilde}, {lanInterface: 'eth0'}, 'x')._meta.hostvars.s1
    assert.equal(vars?.ansible_ssh_private_key_file, join(homedir(), 'k', 'id'))
    assert.equal(vars?.ansible_user, 'debian')
  })

  it('no spec: SPEC_NOT_FOUND (exit 3), as every reader of the spec says it', () => {
    assert.throws(() => buildInventory({...source, spec: undefined}, {lanInterface: 'eth0'}, 'lab'), isError('SPEC_NOT_FOUND', 3, /cluster "lab"/))
  })

  it('an empty cluster: the type groups, no hosts', () => {
    const empty = buildInventory({...source, nodes: [], leases: []}, {lanInterface: 'eth0'}, 'x')
    assert.deepEqual(empty._meta.hostvars, {})
    assert.deepEqual(empty.all.children, ['ungrouped', 'core', 'storage', 'compute', 'frontend'])
  })
})

describe('inventoryHost (--host)', () => {
  const inv = buildInventory(source, {lanInterface: 'eth0'}, 'xcluster')
  it("a node's variables", () => assert.equal(inventoryHost(inv, 's4').xcluster_state, 'drained'))
  it('an unknown name, a removed node, or a name that is an object property: NODE_NOT_FOUND, exit 3', () => {
    assert.throws(() => inventoryHost(inv, 'nope'), isError('NODE_NOT_FOUND', 3, /No node named "nope"/))
    assert.throws(() => inventoryHost(inv, 'c9', ['c9']), isError('NODE_NOT_FOUND', 3, /c9" was removed/))
    for (const name of ['__proto__', 'constructor', 'hasOwnProperty']) assert.throws(() => inventoryHost(inv, name), isError('NODE_NOT_FOUND', 3))
  })
})

describe('pinnedKnownHosts', () => {
  const pub = (type: 'ed25519' | 'ecdsa'): {type: string; key: string; fingerprint: string} => {
    const {publicKey} = type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', {namedCurve: 'P-256'})
    const openssh = sshPublicKey(type, publicKey.export({type: 'spki', format: 'der'}).toString('base64'))
    return {...openssh, fingerprint: fingerprintOfPublicKey(`${openssh.type} ${openssh.key}`)}
  }
  const a = pub('ed25519')
  const a2 = pub('ecdsa')
  const b = pub('ed25519')
  const other = pub('ed25519')
  const at = (address: string, k: {type: string; key: string}): PresentedHostKey => ({address, type: k.type, key: k.key})

  it('writes exactly the presented keys whose fingerprints are pinned, per node; says why a node has none', () => {
    const {lines, hosts} = pinnedKnownHosts(
      [
        {name: 's1', address: '10.0.0.2', pinned: [a.fingerprint, a2.fingerprint]},
        {name: 's2', address: '10.0.0.3', pinned: [b.fingerprint]},
        {name: 's3', address: '10.0.0.4', pinned: [b.fingerprint]},
        {name: 'c1', address: '10.0.0.51', pinned: [other.fingerprint]},
        {name: 'f1', address: 'fe80::1%eth0', pinned: []},
      ],
      [
        at('10.0.0.2', a),
        at('10.0.0.2', a2),
        at('10.0.0.2', a), // twice: written once
        at('10.0.0.3', b),
        at('10.0.0.3', other), // s2 also offers a key that is c1's pin: not s2's
        at('10.0.0.4', other), // s3 offers only a key pinned for someone else
        at('fe80::1%eth0', b), // f1 has no pin: nothing it presents counts
        {address: '10.0.0.2', type: 'ssh-ed25519', key: 'AAAAnot-a-key'},
      ],
    )
    // Per node in the order of targets; a node's keys sorted by type and key (ssh-keyscan's order varies).
    const s1 = [a, a2].map((k) => `${k.type} ${k.key}`).sort()
    assert.deepEqual(lines, [...s1.map((k) => `s1,10.0.0.2 ${k}`), `s2,10.0.0.3 ${b.type} ${b.key}`])
    assert.deepEqual(
      hosts.map((h) => [h.node, h.status, h.written.length, h.refused]),
      [
        ['s1', 'written', 2, []],
        ['s2', 'written', 1, [other.fingerprint]],
        ['s3', 'mismatch', 0, [other.fingerprint]],
        ['c1', 'unreachable', 0, []],
        ['f1', 'unpinned', 0, []],
      ],
    )
  })

  it("parses ssh-keyscan's output: key lines only", () => {
    const text = `# 10.0.0.2:22 SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\n10.0.0.2 ${a.type} ${a.key}\n\nfe80::1%eth0 ${b.type} ${b.key}\n10.0.0.3 broken\n`
    assert.deepEqual(parseKeyscanOutput(text), [at('10.0.0.2', a), at('fe80::1%eth0', b)])
  })
})

describe('the export files', () => {
  let dir: string
  const input = (over: Partial<ExportInput> = {}): ExportInput => ({
    dir,
    revision: '42',
    connection: {endpoints: ['https://10.0.0.2:2379', 'https://10.0.0.3:2379'], cluster: 'lab', ca: '/pki/ca.pem', cert: '/pki/op.pem', key: '/pki/op-key.pem'},
    executable: '/opt/xcluster/bin/run.js',
    access: {sshKey: '/keys/id', lanInterface: 'eth0'},
    knownHosts: ['s1,10.0.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake00'],
    ...over,
  })
  const content = (files: {path: string; content: string}[], path: string) => files.find((f) => f.path === path)!.content

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xct-inventory-'))
  })
  after(() => rmSync(dir, {recursive: true, force: true}))

  it('ansible.cfg: the plugin enabled, host keys checked against the export known_hosts only, never StrictHostKeyChecking=no', () => {
    const cfg = content(renderExportFiles(input()), EXPORT_FILES.config)
    assert.match(cfg, new RegExp(`^inventory = ${dir}/cluster\\.xcluster\\.yml$`, 'm'))
    assert.match(cfg, new RegExp(`^inventory_plugins = ${dir}/inventory_plugins$`, 'm'))
    assert.match(cfg, /^enable_plugins = xcluster, /m)
    assert.match(cfg, /^host_key_checking = True$/m)
    assert.match(cfg, /^unparsed_is_failed = True$/m)
    const ssh = /^ssh_args = (.*)$/m.exec(cfg)?.[1] ?? ''
    for (const option of [`UserKnownHostsFile=${dir}/known_hosts`, 'GlobalKnownHostsFile=/dev/null', 'StrictHostKeyChecking=yes', 'UpdateHostKeys=no'])
      assert.ok(ssh.includes(`-o ${option}`), `${option} in ${ssh}`)
    assert.doesNotMatch(cfg, /StrictHostKeyChecking\s*=?\s*no|host_key_checking\s*=\s*False/i)
  })

  it('cluster.xcluster.yml: the plugin and how it reaches etcd, as YAML (absolute paths; TLS only when used)', () => {
    const yml = parse(content(renderExportFiles(input()), EXPORT_FILES.source)) as Record<string, unknown>
    assert.deepEqual(yml, {
      plugin: 'xcluster',
      executable: '/opt/xcluster/bin/run.js',
      cluster: 'lab',
      etcd: 'https://10.0.0.2:2379,https://10.0.0.3:2379',
      etcd_ca: '/pki/ca.pem',
      etcd_cert: '/pki/op.pem',
      etcd_key: '/pki/op-key.pem',
      ssh_key: '/keys/id',
      lan_interface: 'eth0',
    })
    const plain = parse(content(renderExportFiles(input({connection: {endpoints: ['unix:///run/e: "x"'], cluster: 'xcluster'}, access: {lanInterface: 'eth0'}})), EXPORT_FILES.source))
    assert.deepEqual(plain, {plugin: 'xcluster', executable: '/opt/xcluster/bin/run.js', cluster: 'xcluster', etcd: 'unix:///run/e: "x"', lan_interface: 'eth0'}, 'any string stays one YAML scalar')
  })

  it('known_hosts: the given lines after a comment header; the plugin is valid Python with its DOCUMENTATION', () => {
    const files = renderExportFiles(input())
    const known = content(files, EXPORT_FILES.knownHosts).split('\n')
    assert.deepEqual(
      known.filter((l) => l && !l.startsWith('#')),
      input().knownHosts,
    )
    assert.ok(known[0]?.includes(EXPORT_MARKER) && known[0].includes('revision 42'))
    const plugin = content(files, EXPORT_FILES.plugin)
    assert.match(plugin, /^class InventoryModule\(BaseInventoryPlugin, Constructable\):\n {4}NAME = 'xcluster'$/m)
    assert.match(plugin, /^DOCUMENTATION = r"""\nname: xcluster\n/m)
    const file = join(dir, 'plugin-check.py')
    writeFileSync(file, plugin)
    execFileSync('python3', ['-c', 'import ast, sys; ast.parse(open(sys.argv[1]).read())', file])
    for (const f of files) assert.ok(f.content.includes(EXPORT_MARKER), `${f.path} carries the marker`)
  })

  it('plans create, then unchanged, then replace; refuses a file it did not write, writing nothing', () => {
    const out = join(dir, 'out')
    const first = planExportFiles(out, renderExportFiles(input({dir: out})))
    assert.deepEqual(
      first.map((f) => [f.path, f.action, f.mode]),
      Object.values(EXPORT_FILES).map((p) => [p, 'create', 0o644]),
    )
    writeInventoryExport({dir: out, files: first})
    assert.deepEqual(readdirSync(out).sort(), ['ansible.cfg', 'cluster.xcluster.yml', 'inventory_plugins', 'known_hosts'], 'no temporary file left')
    assert.equal(readFileSync(join(out, EXPORT_FILES.plugin), 'utf8'), content(first, EXPORT_FILES.plugin))
    assert.ok(planExportFiles(out, renderExportFiles(input({dir: out}))).every((f) => f.action === 'unchanged'))
    const next = planExportFiles(out, renderExportFiles(input({dir: out, revision: '43', knownHosts: []})))
    assert.deepEqual(
      next.filter((f) => f.action !== 'unchanged').map((f) => [f.path, f.action]),
      [[EXPORT_FILES.knownHosts, 'replace']],
    )

    const mine = join(dir, 'mine')
    mkdirSync(mine)
    writeFileSync(join(mine, 'ansible.cfg'), '[defaults]\nforks = 50\n')
    assert.throws(() => planExportFiles(mine, renderExportFiles(input({dir: mine}))), isError('EXPORT_FILE_FOREIGN', 3, /ansible\.cfg: it was not written by xcluster inventory export/))
    assert.equal(readFileSync(join(mine, 'ansible.cfg'), 'utf8'), '[defaults]\nforks = 50\n')
  })

  it('a directory whose path cannot go into ansible.cfg, or a file in its place: a usage error', () => {
    for (const bad of ['/tmp/with space', '/tmp/100%', '/tmp/a,b', '/tmp/a:b']) assert.throws(() => checkExportDir(bad), isError('USAGE', 2))
    const file = join(dir, 'a-file')
    writeFileSync(file, '')
    assert.throws(() => checkExportDir(file), isError('USAGE', 2, /not a directory/))
    assert.equal(checkExportDir('relative/dir'), join(process.cwd(), 'relative/dir'))
  })
})

/** An OpenSSH public key (type and base64 blob) from a DER SPKI key, as ssh-keygen would print it. */
function sshPublicKey(type: 'ed25519' | 'ecdsa', spkiBase64: string): {type: string; key: string} {
  const der = Buffer.from(spkiBase64, 'base64')
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0].map((_, i) => (b.length >> (8 * (3 - i))) & 0xff)), b])
  if (type === 'ed25519') {
    const raw = der.subarray(der.length - 32)
    return {type: 'ssh-ed25519', key: Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]).toString('base64')}
  }
  const point = der.subarray(der.length - 65)
  return {type: 'ecdsa-sha2-nistp256', key: Buffer.concat([field(Buffer.from('ecdsa-sha2-nistp256')), field(Buffer.from('nistp256')), field(point)]).toString('base64')}
}
