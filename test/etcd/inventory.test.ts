/**
 * The Ansible inventory against a real etcd (Debian etcd-server) and real Ansible (Debian
 * ansible): `xcluster inventory --list/--host` agrees with `node list --json`; `inventory export`
 * writes a known_hosts that holds exactly the pinned keys, fetched from real sshd's (each node's
 * address inside a network namespace of this test, with several host keys each); Ansible's own
 * `ansible-inventory`, through the exported plugin and through a script wrapper, sees what the
 * CLI prints; and the CLI reads the same few ranges for 6 nodes as for 206.
 */
import assert from 'node:assert/strict'
import {execFile, execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {LeaseAllocator} from '../../src/lib/dhcp/allocator.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {AnsibleGroup, AnsibleInventory, InventoryExport, InventoryHostVars} from '../../src/lib/inventory/index.js'
import {linkLocalFromMac} from '../../src/lib/nodes/address.js'
import {transitionNode} from '../../src/lib/nodes/lifecycle.js'
import type {NodeState, NodeSummary} from '../../src/lib/nodes/record.js'
import {registerNode} from '../../src/lib/nodes/register.js'
import {removeNode} from '../../src/lib/nodes/remove.js'
import {readStoredSpec} from '../../src/lib/spec/store.js'
import {HostKeyStore} from '../../src/lib/ssh/host-key-store.js'
import {fingerprintOfPublicKey} from '../../src/lib/ssh/fingerprint.js'
import {BIN, ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

const NS = `xct-inv-${process.pid}`
const KEY_TYPES = ['ed25519', 'ecdsa', 'rsa'] as const
type KeyType = (typeof KEY_TYPES)[number]
/** A node's sshd inside NS: its address and its host keys (public lines). */
interface NodeSshd {
  address: string
  keys: Record<KeyType, string>
  proc?: ChildProcess
}

let etcd: TestEtcd
let store: EtcdStore
let dir: string
let clientKey: string
const sshds: Record<string, NodeSshd> = {}

const ansibleInventory = requireTool('ansible-inventory', 'ansible')
const ansible = requireTool('ansible', 'ansible')
const keygen = requireTool('ssh-keygen', 'openssh-client')
requireTool('ssh-keyscan', 'openssh-client')
const sshd = requireTool('sshd', 'openssh-server')
requireTool('ip', 'iproute2')

const cli = (...args: string[]) => xcluster([...args, '--etcd', etcd.endpoint])
const ok = (r: CliResult, what: string): CliResult => {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}${r.stdout}`)
  return r
}
const fp = (line: string) => fingerprintOfPublicKey(line)
const keyLine = (name: string, t: KeyType) => sshds[name]!.keys[t]

/** An Ansible tool with the exported config, never the machine's own. */
function runAnsible(bin: string, args: string[], cfgDir: string): Promise<CliResult> {
  return new Promise((resolve) =>
    execFile(
      bin,
      args,
      {cwd: cfgDir, env: {...process.env, ANSIBLE_CONFIG: join(cfgDir, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp')}, timeout: 120_000},
      (err, stdout, stderr) =>
        resolve({
          code: err ? Number((err as {code?: number}).code ?? 1) : 0,
          stdout,
          stderr,
          json<T>() {
            return JSON.parse(stdout) as T
          },
        }),
    ),
  )
}

/**
 * What Ansible's `--list` and ours must agree on: each group's hosts (Ansible leaves out empty
 * groups; `all` lists them all as children) and every host's variables. Ansible prints a value the
 * plugin marked unsafe as {"__ansible_unsafe": value}: `unsafe` says whether every string was.
 */
function normalize(inventory: Record<string, unknown>, unsafe: boolean): {groups: Record<string, string[]>; children: string[]; hostvars: Record<string, unknown>} {
  const unwrap = (v: unknown): unknown => {
    if (typeof v === 'string') assert.ok(!unsafe, `a string that is not marked unsafe: ${v}`)
    if (v && typeof v === 'object' && '__ansible_unsafe' in v) {
      assert.ok(unsafe, 'marked unsafe in the script form')
      return (v as {__ansible_unsafe: unknown}).__ansible_unsafe
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]))
    return v
  }
  const groups: Record<string, string[]> = {}
  for (const [name, body] of Object.entries(inventory)) {
    if (name === '_meta' || name === 'all') continue
    const hosts = [...((body as AnsibleGroup).hosts ?? [])].sort()
    if (hosts.length > 0) groups[name] = hosts
  }
  return {groups, children: [...((inventory.all as AnsibleGroup).children ?? [])].sort(), hostvars: unwrap((inventory._meta as {hostvars: unknown}).hostvars) as Record<string, unknown>}
}

/** Ranges etcd has served so far (its own counter). */
async function rangesServed(): Promise<number> {
  const text = await (await fetch(`${etcd.endpoint}/metrics`)).text()
  return Number(/^etcd_mvcc_range_total (\d+)/m.exec(text)?.[1])
}

const ip = (...args: string[]) => execFileSync('ip', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})

/** An sshd for `name` on ADDRESS:22 inside NS with three host keys of its own. */
async function startNodeSshd(name: string, address: string): Promise<NodeSshd> {
  const home = join(dir, 'sshd', name)
  mkdirSync(home, {recursive: true})
  const keys = {} as Record<KeyType, string>
  for (const t of KEY_TYPES) {
    const file = join(home, `ssh_host_${t}_key`)
    execFileSync(keygen, ['-q', '-t', t, ...(t === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', `${name}-${t}`, '-f', file])
    keys[t] = readFileSync(`${file}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ')
  }
  const config = join(home, 'sshd_config')
  writeFileSync(
    config,
    [
      `ListenAddress ${address}:22`,
      ...KEY_TYPES.map((t) => `HostKey ${join(home, `ssh_host_${t}_key`)}`),
      `PidFile ${join(home, 'sshd.pid')}`,
      'AuthorizedKeysFile none',
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  )
  mkdirSync('/run/sshd', {recursive: true})
  const proc = spawn('ip', ['netns', 'exec', NS, sshd, '-D', '-e', '-f', config], {stdio: ['ignore', 'ignore', 'inherit']})
  const deadline = Date.now() + 10_000
  while (!ip('netns', 'exec', NS, 'ss', '-Hltn', `src ${address} and sport = :22`).includes(address)) {
    assert.ok(proc.exitCode === null && Date.now() < deadline, `sshd for ${name} did not listen on ${address}:22`)
    await new Promise((r) => setTimeout(r, 25))
  }
  return {address, keys, proc}
}

async function setStates(name: string, states: NodeState[], reason?: string): Promise<void> {
  for (const [i, state] of states.entries()) await transitionNode(store, name, state, i === states.length - 1 && reason ? {reason} : {})
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-inventory-'))
  etcd = await startEtcd({unixSocket: true})
  store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
  clientKey = join(dir, 'id_ed25519')
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey])
  const specFile = join(dir, 'spec.yaml')
  writeFileSync(specFile, readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8').replace('key: ~/.ssh/id_ed25519', `key: ${clientKey}`))
  ok(await cli('config', 'apply', '-f', specFile, '--yes'), 'config apply')

  // s4 and c1 have no fixed address: the cluster's DHCP allocator leases them one.
  const allocator = new LeaseAllocator(store, {serverId: '10.0.0.2', unknown: 'ignore'})
  await allocator.start()
  try {
    for (const [mac, want] of [
      ['02:58:43:00:01:04', '10.0.0.11'],
      ['02:58:43:00:02:01', '10.0.0.51'],
    ] as const) {
      const offer = await allocator.offer({mac})
      assert.equal(offer?.ip, want)
      assert.equal((await allocator.commit({mac}, offer.ip))?.ok, true)
    }
  } finally {
    await allocator.stop()
  }

  for (const n of ['s1', 's2', 's3']) await setStates(n, ['provisioning', 'ready'])
  await setStates('s4', ['provisioning', 'ready', 'draining', 'drained'], 'maintenance')
  // A reason that reached etcd from somewhere else (a node's error output): Ansible must never template it.
  await setStates('c1', ['provisioning', 'failed'], '{{ 6 * 7 }} disk gone')
  // f1 stays registered (no pin); c9 was registered and removed.
  await registerNode(store, await readStoredSpec(store), {name: 'c9', mac: '02:58:43:00:02:09'})
  await removeNode(store, 'c9', {force: true})

  // The nodes' sshd's, each on its address inside NS (lo), as the export's ssh-keyscan sees them.
  ip('netns', 'add', NS)
  ip('-n', NS, 'link', 'set', 'lo', 'up')
  const addresses = {s1: '10.0.0.2', s2: '10.0.0.3', s3: '10.0.0.4', c1: '10.0.0.51'}
  for (const [name, address] of Object.entries(addresses)) {
    ip('-n', NS, 'addr', 'add', `${address}/32`, 'dev', 'lo')
    sshds[name] = await startNodeSshd(name, address)
  }
  // s4's address answers nothing (its machine is down); f1 has no pin.
  ip('-n', NS, 'addr', 'add', '10.0.0.11/32', 'dev', 'lo')
  const pins = new HostKeyStore(store)
  await pins.pin('s1', fp(keyLine('s1', 'ed25519')))
  await pins.pin(
    's2',
    KEY_TYPES.map((t) => fp(keyLine('s2', t))),
    'enlistment',
  )
  // s3 presents keys, none of them the pinned one (reinstalled, or an impostor on its address).
  await pins.pin('s3', fp(keyLine('s1', 'ecdsa')))
  await pins.pin('s4', fp(keyLine('s1', 'rsa')))
  await pins.pin('c1', fp(keyLine('c1', 'rsa')))
})

after(async () => {
  for (const s of Object.values(sshds)) s.proc?.kill('SIGTERM')
  try {
    ip('netns', 'del', NS)
  } catch {
    // never created
  }
  await store?.close()
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

describe('xcluster inventory --list / --host', {concurrency: false}, () => {
  it('agrees with node list --json: type and state groups, every host variable; removed nodes left out', async () => {
    const nodes = ok(await cli('node', 'list', '--json'), 'node list').json<NodeSummary[]>()
    const r = ok(await cli('inventory', '--list'), 'inventory --list')
    const inventory = r.json<AnsibleInventory>()
    assert.deepEqual(ok(await cli('inventory', '--list', '--json'), '--json').json(), inventory, '--json prints the same document')
    assert.deepEqual(ok(await cli('inventory'), 'no flag').json(), inventory, '--list is the default')
    const current = nodes.filter((n) => n.state !== 'removed')
    assert.deepEqual(
      nodes.filter((n) => n.state === 'removed').map((n) => n.name),
      ['c9'],
    )
    const expected: Record<string, InventoryHostVars> = {}
    for (const n of current) {
      expected[n.name] = {
        ansible_host: n.ip ?? n.leasedIp ?? `${linkLocalFromMac(n.mac)}%eth0`,
        ansible_user: 'root',
        ansible_ssh_private_key_file: clientKey,
        xcluster_type: n.type,
        xcluster_mac: n.mac,
        xcluster_ip: n.ip,
        ...(n.leasedIp ? {xcluster_leased_ip: n.leasedIp} : {}),
        xcluster_state: n.state,
        ...(n.reason ? {xcluster_reason: n.reason} : {}),
        xcluster_ready: n.state === 'ready',
      }
    }
    assert.deepEqual(inventory._meta.hostvars, expected)
    assert.equal(inventory._meta.hostvars.s4?.ansible_host, '10.0.0.11')
    assert.equal(inventory._meta.hostvars.c1?.ansible_host, '10.0.0.51')
    assert.match(inventory._meta.hostvars.f1?.ansible_host ?? '', /^fe80::.*%eth0$/)
    const byType = (t: string) => current.filter((n) => n.type === t).map((n) => n.name)
    const byState = (s: string) => current.filter((n) => n.state === s).map((n) => n.name)
    for (const t of ['core', 'storage', 'compute', 'frontend']) assert.deepEqual((inventory[t] as AnsibleGroup).hosts, byType(t), t)
    for (const s of ['ready', 'drained', 'failed', 'registered']) assert.deepEqual((inventory[`state_${s}`] as AnsibleGroup).hosts, byState(s), s)
    assert.deepEqual(inventory.all.children, ['ungrouped', 'core', 'storage', 'compute', 'frontend', 'state_registered', 'state_ready', 'state_drained', 'state_failed'])

    const other = ok(await cli('inventory', '--list', '--ssh-key', clientKey, '--lan-interface', 'br9'), 'with flags').json<AnsibleInventory>()
    assert.equal(other._meta.hostvars.f1?.ansible_host, `${linkLocalFromMac('02:58:43:00:03:01')}%br9`)
  })

  it("--host NAME: that host's variables; an unknown or removed node, or both flags, is refused with a next step", async () => {
    const list = ok(await cli('inventory', '--list'), 'list').json<AnsibleInventory>()
    assert.deepEqual(ok(await cli('inventory', '--host', 's4'), '--host s4').json(), list._meta.hostvars.s4)
    const unknown = await cli('inventory', '--host', 'nope')
    assert.equal(unknown.code, 3, unknown.stderr)
    assert.equal(unknown.stdout, '')
    assert.match(unknown.stderr, /Error \[NODE_NOT_FOUND\]: No node named "nope" in the inventory\./)
    assert.match(unknown.stderr, /Try this: .*xcluster inventory --list/)
    const json = await cli('inventory', '--host', 'nope', '--json')
    assert.equal(json.code, 3)
    assert.equal(json.json<{error: {code: string}}>().error.code, 'NODE_NOT_FOUND')
    const removed = await cli('inventory', '--host', 'c9')
    assert.equal(removed.code, 3)
    assert.match(removed.stderr, /"c9" was removed from the cluster/)
    const both = await cli('inventory', '--list', '--host', 's1')
    assert.equal(both.code, 2)
    assert.match(both.stderr, /cannot also be provided/)
  })

  it('an etcd without a spec: SPEC_NOT_FOUND, exit 3', async () => {
    const r = await xcluster(['inventory', '--list', '--etcd', etcd.endpoint, '--cluster', 'other'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /SPEC_NOT_FOUND.*cluster "other"/)
  })
})

describe('xcluster inventory export, and Ansible through it', {concurrency: false}, () => {
  let out: string
  /** The export runs where the nodes' addresses are (NS), reaching etcd through its unix socket. */
  const exportTo = (target: string, ...extra: string[]) =>
    xcluster(['inventory', 'export', target, '--etcd', etcd.unixEndpoint!, '--ssh-key', clientKey, ...extra], {wrap: ['ip', 'netns', 'exec', NS]})

  before(() => {
    out = join(dir, 'ansible')
  })

  it('--dry-run fetches the keys and shows every file, writing nothing', async () => {
    const r = ok(await exportTo(out, '--dry-run', '--json'), 'dry run')
    const plan = r.json<InventoryExport>()
    assert.equal(plan.dryRun, true)
    assert.deepEqual(
      plan.files.map((f) => [f.path, f.action]),
      [
        ['ansible.cfg', 'create'],
        ['cluster.xcluster.yml', 'create'],
        ['inventory_plugins/xcluster.py', 'create'],
        ['known_hosts', 'create'],
      ],
    )
    assert.equal(existsSync(out), false, 'the directory was created')
    const human = ok(await exportTo(out, '--dry-run'), 'dry run (human)')
    assert.match(human.stdout, /^Dry run: would write 4 of 4 files in .*; nothing was written\.$/m)
    assert.match(human.stdout, /^--- .*\/known_hosts \(create\)$/m)
    assert.equal(existsSync(out), false)
  })

  it('known_hosts holds exactly the pinned keys the nodes present; a node with another key, unreachable or unpinned gets none', async () => {
    const r = ok(await exportTo(out, '--json'), 'export')
    const result = r.json<InventoryExport>()
    assert.equal(result.dryRun, false)
    const lines = readFileSync(join(out, 'known_hosts'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
    const expected = [`s1,10.0.0.2 ${keyLine('s1', 'ed25519')}`, ...KEY_TYPES.map((t) => `s2,10.0.0.3 ${keyLine('s2', t)}`), `c1,10.0.0.51 ${keyLine('c1', 'rsa')}`]
    assert.deepEqual([...lines].sort(), [...expected].sort())
    assert.deepEqual(Object.fromEntries(result.hosts.map((h) => [h.node, h.status])), {c1: 'written', f1: 'unpinned', s1: 'written', s2: 'written', s3: 'mismatch', s4: 'unreachable'})
    const s3 = result.hosts.find((h) => h.node === 's3')!
    assert.deepEqual([...s3.refused].sort(), KEY_TYPES.map((t) => fp(keyLine('s3', t))).sort(), 's3: what it presents, for an operator to check')
    // The same export again changes nothing; the human form names the nodes Ansible will refuse.
    const again = ok(await exportTo(out), 'export again')
    assert.match(again.stdout, /^No changes in /m)
    assert.match(again.stdout, /^s3\s+10\.0\.0\.4\s+REFUSED: presents SHA256:/m)
    assert.match(again.stdout, /^Ansible will refuse f1, s3, s4 \(no pinned key in known_hosts\)\.$/m)
  })

  it('ansible-inventory through the plugin lists what xcluster inventory --list does, every value marked unsafe; --graph shows the type groups', async () => {
    const ours = normalize(ok(await cli('inventory', '--list'), 'inventory --list').json(), false)
    const r = ok(await runAnsible(ansibleInventory, ['-i', join(out, 'cluster.xcluster.yml'), '--list'], out), 'ansible-inventory --list')
    assert.deepEqual(normalize(r.json(), true), ours)
    // The config's default inventory is the plugin's source: no -i needed.
    assert.deepEqual(normalize(ok(await runAnsible(ansibleInventory, ['--list'], out), 'default inventory').json(), true), ours)
    const graph = ok(await runAnsible(ansibleInventory, ['--graph'], out), 'ansible-inventory --graph').stdout
    for (const [g, hosts] of Object.entries({core: ['s1', 's2', 's3'], storage: ['s4'], compute: ['c1'], frontend: ['f1']})) {
      assert.match(graph, new RegExp(`\\|--@${g}:\\n${hosts.map((h) => `  \\|  \\|--${h}\\n`).join('')}`), `${g} in\n${graph}`)
    }
    assert.match(graph, /\|--@state_ready:\n {2}\| {2}\|--s1\n {2}\| {2}\|--s2\n {2}\| {2}\|--s3\n/)
    const host = ok(await runAnsible(ansibleInventory, ['--host', 's4'], out), 'ansible-inventory --host').json<Record<string, unknown>>()
    assert.deepEqual(normalize({_meta: {hostvars: {s4: host}}, all: {hosts: []}}, true).hostvars.s4, ours.hostvars.s4)
  })

  it("Ansible never templates a value from etcd: c1's reason stays as written", async () => {
    const r = ok(await runAnsible(ansible, ['c1', '-m', 'debug', '-a', 'var=xcluster_reason'], out), 'ansible debug')
    assert.match(r.stdout, /"xcluster_reason": "\{\{ 6 \* 7 \}\} disk gone"/)
  })

  it("the plugin's constructed options: keyed groups from the host variables", async () => {
    const source = join(out, 'keyed.xcluster.yml')
    writeFileSync(source, `${readFileSync(join(out, 'cluster.xcluster.yml'), 'utf8')}keyed_groups:\n  - key: xcluster_state\n    prefix: xc\n`)
    const r = ok(await runAnsible(ansibleInventory, ['-i', source, '--list'], out), 'keyed groups')
    const groups = normalize(r.json(), true).groups
    assert.deepEqual(groups.xc_ready, ['s1', 's2', 's3'])
    assert.deepEqual(groups.xc_drained, ['s4'])
    rmSync(source)
  })

  it("a failing CLI fails Ansible's run with the CLI's own error (unparsed_is_failed), never an empty inventory", async () => {
    const source = join(out, 'down.xcluster.yml')
    writeFileSync(source, readFileSync(join(out, 'cluster.xcluster.yml'), 'utf8').replace(/^etcd: .*$/m, 'etcd: "http://127.0.0.1:9"'))
    try {
      const r = await runAnsible(ansibleInventory, ['-i', source, '--list'], out)
      assert.notEqual(r.code, 0, r.stdout)
      assert.match(r.stderr, /ETCD_UNREACHABLE/)
      assert.match(r.stderr, /127\.0\.0\.1:9/)
    } finally {
      rmSync(source)
    }
  })

  it('the script form: a wrapper around xcluster inventory works with ansible-inventory too', async () => {
    const script = join(dir, 'xcluster-inventory')
    writeFileSync(script, `#!/bin/sh\nexec ${process.execPath} ${BIN} inventory --etcd ${etcd.endpoint} --ssh-key ${clientKey} "$@"\n`)
    chmodSync(script, 0o755)
    const ours = normalize(ok(await cli('inventory', '--list'), 'inventory --list').json(), false)
    const r = ok(await runAnsible(ansibleInventory, ['-i', script, '--list'], out), 'ansible-inventory -i script')
    assert.deepEqual(normalize(r.json(), false), ours)
    const graph = ok(await runAnsible(ansibleInventory, ['-i', script, '--graph', 'core'], out), 'script --graph').stdout
    assert.match(graph, /@core:\n {2}\|--s1\n {2}\|--s2\n {2}\|--s3/)
  })
})

describe('range reads', {concurrency: false}, () => {
  it('inventory --list reads the same few ranges for 206 nodes as for 6', async () => {
    const ranges = async (): Promise<{count: number; hosts: number}> => {
      const before = await rangesServed()
      const hosts = Object.keys(ok(await cli('inventory', '--list'), 'inventory --list').json<AnsibleInventory>()._meta.hostvars).length
      return {count: (await rangesServed()) - before, hosts}
    }
    const few = await ranges()
    const spec = await readStoredSpec(store)
    for (let i = 0; i < 200; i++) await registerNode(store, spec, {name: `c${100 + i}`, mac: `02:58:43:00:0a:${i.toString(16).padStart(2, '0')}`})
    const many = await ranges()
    console.log(`# inventory --list: ${few.count} etcd ranges with ${few.hosts} nodes, ${many.count} with ${many.hosts}`)
    assert.deepEqual([few.hosts, many.hosts], [6, 206])
    assert.ok(few.count > 0 && few.count <= 10, `${few.count} ranges for ${few.hosts} nodes`)
    assert.equal(many.count, few.count, `${many.count} ranges for ${many.hosts} nodes, ${few.count} for ${few.hosts}`)
  })
})
