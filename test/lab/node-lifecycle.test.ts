/**
 * The node lifecycle against the lab's real nodes, on the cluster test/lab/bootstrap.test.ts
 * bootstrapped (its TLS etcd, its DHCP leader, its package cache): `node add` of all six nodes
 * changes nothing after bootstrap, an interrupted run resumes, a changed host key is refused,
 * and drain / undrain / remove move nodes through their states. s4, c1 and f1 have no fixed
 * address: they hold MAC-typed leases from the cluster's DHCP leader, and `node add` reaches them
 * at the leased address it finds in etcd.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn} from 'node:child_process'
import {after, before, describe, it} from 'node:test'

import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {renderTemplate} from '../../src/lib/render/template.js'
import {fingerprintOfPublicKey, SshHost} from '../../src/lib/ssh/index.js'
import type {RunSummary} from '../../src/lib/tasks/runner.js'
import {BIN, type CliResult} from '../helpers/cli.js'
import {admin, adminEnv, clusterStore, inNode, lab, renewDhcp} from '../helpers/lab.js'

const state = lab()
const CLUSTER = state.cluster
const NODES = ['s1', 's2', 's3', 's4', 'c1', 'f1']
const CORE = ['s1', 's2', 's3']
const DHCP_NODES = ['s4', 'c1', 'f1']
const leased: Record<string, string> = {}
const cli = (...args: string[]) => admin(args)
const store = clusterStore(state)
const ip = (name: string) => state.hosts.find((h) => h.name === name)!.ip ?? leased[name]

async function sshTo(name: string): Promise<SshHost> {
  const fingerprint = state.hosts.find((h) => h.name === name)!.hostKeyFingerprint!
  return SshHost.connect({name, address: ip(name), user: 'root', privateKeyPath: state.sshKey, hostKey: {pinned: [fingerprint]}})
}

async function readRemote(name: string, path: string): Promise<string> {
  const ssh = await sshTo(name)
  try {
    return (await ssh.run(`cat ${path}`)).stdout
  } finally {
    await ssh.close()
  }
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, why: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    assert.ok(Date.now() < deadline, why())
    await new Promise((r) => setTimeout(r, 100))
  }
}

const pick = (rows: {name: string; ip: string | null; leasedIp?: string}[], name: string) => {
  const row = rows.find((r) => r.name === name)
  return {ip: row?.ip, leasedIp: row?.leasedIp}
}
const ok = (r: CliResult, what: string) => assert.equal(r.code, 0, `${what}: ${r.stderr}${r.stdout}`)
const nodeState = async (name: string) => (await store.getJson<NodeRecord>(store.keys.node(name)))!.value
const dhcpLeader = async () => (await cli('election', 'list', '--json')).json<{service: string; leader: string | null; candidates: string[]}[]>().find((e) => e.service === 'dhcp')

describe('node lifecycle on the lab', () => {
  before(async () => {
    // sshd up everywhere, even if an earlier run of this file stopped in the middle.
    for (const name of NODES) inNode(name, 'systemctl start ssh.service')
    await waitFor(
      async () => {
        const leases = (await cli('dhcp', 'leases', '--json')).json<{ip: string; node?: string; expired: boolean}[]>()
        for (const l of leases) if (l.node && !l.expired) leased[l.node] = l.ip
        const missing = DHCP_NODES.filter((n) => !leased[n] || !execFileSync('ip', ['-n', `xc-${n}`, '-4', 'addr', 'show', 'eth0'], {encoding: 'utf8'}).includes(`inet ${leased[n]}/`))
        renewDhcp(missing)
        return missing.length === 0
      },
      60_000,
      () => `no DHCP leases for ${DHCP_NODES.join(' ')}: ${JSON.stringify(leased)}`,
    )
  })

  after(async () => {
    await store.close()
  })

  it('DHCP typed the nodes by MAC: storage, compute and frontend ranges', () => {
    assert.match(leased.s4, /^10\.0\.0\.(1[1-9]|2\d|30)$/)
    assert.match(leased.c1, /^10\.0\.0\.(5[1-9]|6\d|70)$/)
    assert.match(leased.f1, /^10\.0\.0\.(7[1-9]|80)$/)
  })

  it('node list shows the leased address of the nodes without a fixed IP', async () => {
    const listed = (await cli('node', 'list', '--json')).json<{name: string; ip: string | null; leasedIp?: string}[]>()
    for (const name of DHCP_NODES) assert.deepEqual(pick(listed, name), {ip: null, leasedIp: leased[name]}, name)
    assert.deepEqual(pick(listed, 's1'), {ip: '10.0.0.2', leasedIp: undefined})
    const table = (await cli('node', 'list')).stdout
    assert.match(table, new RegExp(`s4 .* ${leased.s4.replaceAll('.', '\\.')} \\(dhcp\\)`))
  })

  it("node add of all six after bootstrap: only the core nodes' /etc/hosts learns the nodes that got addresses since; the rendered files are on each", async () => {
    const r = await cli('node', 'add', ...NODES, '--json')
    ok(r, 'node add')
    const run = r.json<{run: RunSummary}>().run
    assert.equal(run.result, 'succeeded')
    for (const [host, steps] of Object.entries(run.plan)) assert.ok(CORE.includes(host) && steps.every((step) => step === 'update /etc/hosts'), `${host}: ${steps.join('; ')}`)
    for (const name of NODES) assert.equal((await nodeState(name)).state, 'ready', name)

    // The pins taken on first contact are the keys the nodes really have.
    for (const name of NODES) {
      const pin = (await store.getJson<{fingerprints: string[]}>(store.keys.hostKey(name)))!.value
      const host = state.hosts.find((h) => h.name === name)!
      assert.deepEqual(pin.fingerprints, [fingerprintOfPublicKey(host.hostPublicKey!)], name)
    }

    // Every node of the lab's spec with an address, in etcd's (name) order.
    const peers = state.hosts
      .filter((h) => h.kind === 'node' && ip(h.name))
      .map((h) => h.name)
      .sort()
      .map((name) => ({name, ip: ip(name)}))
    const coreEndpoints = CORE.map((n) => `"https://${ip(n)}:2379"`).join(', ')
    for (const name of NODES) {
      const type = state.hosts.find((h) => h.name === name)!.type!
      const mac = state.hosts.find((h) => h.name === name)!.mac
      assert.equal(
        await readRemote(name, '/etc/xcluster/agent.yaml'),
        renderTemplate('node/agent.yaml', {cluster: CLUSTER, name, type, mac, ip: ip(name), etcdEndpoints: coreEndpoints, adminVip: '10.0.0.254'}),
      )
      assert.equal(await readRemote(name, '/etc/hosts'), renderTemplate('node/hosts', {name, domain: 'xcluster.lan', adminVip: '10.0.0.254', peers}))
      // Core nodes were set up while only the admin host's cache existed; the others use the cluster's.
      const proxyUrl = CORE.includes(name) ? 'http://10.0.0.1:3128' : 'http://10.0.0.254:3128'
      assert.equal(await readRemote(name, '/etc/apt/apt.conf.d/90xcluster-proxy'), renderTemplate('node/apt-proxy.conf', {proxyUrl}))
      const servers = [...CORE.filter((n) => n !== name).map(ip), '10.0.0.1']
      assert.equal(await readRemote(name, '/etc/chrony/chrony.conf'), renderTemplate('node/chrony.conf', {servers, subnet: '10.0.0.0/24'}))
      assert.equal((await readRemote(name, '/etc/hostname')).trim(), name)
    }
    const s4 = await sshTo('s4')
    assert.equal((await s4.exec("dpkg-query -W -f='${Status}' lvm2")).stdout, 'install ok installed')
    await s4.close()
    const f1 = await sshTo('f1')
    assert.equal((await f1.systemctl('is-active', 'nginx.service')).stdout.trim(), 'active')
    await f1.close()
  })

  it('a re-run changes nothing and says so', async () => {
    const before = await cli('node', 'add', ...NODES, '--json')
    ok(before, 'node add again')
    assert.equal(before.json<{run: RunSummary}>().run.changed, 0)
    const human = await cli('node', 'add', 's1', 'c1')
    ok(human, 'node add again (human)')
    assert.match(human.stdout, /No changes: 2 host\(s\) already as wanted/)
  })

  it('--dry-run shows the plan per host and changes nothing', async () => {
    inNode('c1', 'rm /etc/xcluster/agent.yaml')
    const snapshot = await store.snapshot()
    const r = await cli('node', 'add', 'c1', 's1', '--dry-run', '--json')
    ok(r, 'dry run')
    const run = r.json<{run: RunSummary}>().run
    assert.deepEqual(run.plan, {c1: ['create /etc/xcluster/agent.yaml']})
    assert.equal(run.result, 'planned')
    assert.throws(() => inNode('c1', 'test -e /etc/xcluster/agent.yaml'))
    assert.deepEqual(await store.snapshot(), snapshot)
    ok(await cli('node', 'add', 'c1'), 'repair c1')
  })

  it('a run interrupted on one host (its sshd killed) fails that host only; --resume completes it', async () => {
    for (const name of NODES) inNode(name, 'rm -f /etc/xcluster/agent.yaml')
    // A slow step on c1 (reinstalling chrony) opens the window in which its sshd dies.
    inNode('c1', 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq chrony >/dev/null 2>&1')
    const child = spawn(process.execPath, [BIN, 'node', 'add', ...NODES, '--json'], {env: {...process.env, ...adminEnv(state), NO_COLOR: '1'}})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)))

    // Kill c1's sshd (listener and sessions) once its package-proxy step is checkpointed.
    const deadline = Date.now() + 60_000
    for (;;) {
      const keys = Object.keys(await store.snapshot())
      if (keys.some((k) => k.endsWith('/package-proxy/c1'))) break
      assert.ok(Date.now() < deadline, 'the run never reached c1')
      await new Promise((r) => setTimeout(r, 25))
    }
    inNode('c1', 'systemctl stop ssh.service ssh.socket 2>/dev/null; pkill -KILL -x sshd; true')
    let code: number
    try {
      code = await exited
    } finally {
      inNode('c1', 'systemctl start ssh.service')
    }
    assert.equal(code, 4, stderr)
    const failed = JSON.parse(stdout) as {error: {code: string; message: string; details: RunSummary; suggestion: string}}
    assert.equal(failed.error.code, 'RUN_PARTIAL_FAILURE')
    const runId = failed.error.details.runId!
    assert.deepEqual(
      failed.error.details.hosts.filter((h) => h.status === 'failed').map((h) => h.name),
      ['c1'],
    )
    assert.match(failed.error.suggestion, new RegExp(`xcluster node add .*--resume ${runId}`))
    for (const name of NODES.filter((n) => n !== 'c1')) assert.equal((await nodeState(name)).state, 'ready', name)
    assert.equal((await nodeState('c1')).state, 'failed')
    assert.ok((await nodeState('c1')).reason)

    const resumed = await cli('node', 'add', ...NODES, '--resume', runId, '--json')
    ok(resumed, 'resume')
    const summary = resumed.json<{run: RunSummary}>().run
    assert.equal(summary.runId, runId)
    assert.deepEqual(Object.keys(summary.plan), ['c1'], 'only c1 had anything left to do')
    assert.equal((await nodeState('c1')).state, 'ready')
    assert.equal((await readRemote('c1', '/etc/xcluster/agent.yaml')).includes('name: c1'), true)
    const shown = (await cli('runs', 'show', runId, '--json')).json<{record: {result: string; resumes: number}}>()
    assert.deepEqual([shown.record.result, shown.record.resumes], ['succeeded', 1])
  })

  it('a changed host key is refused before anything runs; a re-pin lets it through', async () => {
    const pinned = (await store.getJson<{fingerprints: string[]}>(store.keys.hostKey('s4')))!.value.fingerprints[0]
    inNode(
      's4',
      'mkdir -p /root/keys && cp -a /etc/ssh/ssh_host_* /root/keys/ && rm /etc/ssh/ssh_host_* && ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh.service && rm -f /etc/xcluster/agent.yaml',
    )
    const presented = inNode('s4', 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub').split(' ')[1]
    try {
      const snapshotBefore = await store.snapshot()
      const r = await cli('node', 'add', 's4')
      assert.equal(r.code, 4, r.stderr)
      assert.match(
        r.stderr,
        new RegExp(`Host key of s4 \\(${leased.s4.replaceAll('.', '\\.')}\\) does not match its pin: expected ${pinned.replace(/[+/]/g, '\\$&')}, presented ${presented.replace(/[+/]/g, '\\$&')}`),
      )
      assert.match(r.stderr, new RegExp(`xcluster node repin s4 --fingerprint ${presented.replace(/[+/]/g, '\\$&')}`))
      assert.throws(() => inNode('s4', 'test -e /etc/xcluster/agent.yaml'), 'nothing ran on the host')
      // Only the audit trail of the refused run was written.
      const changed = Object.keys(await store.snapshot()).filter((k) => snapshotBefore[k] === undefined)
      assert.ok(
        changed.every((k) => k.includes('/runs/')),
        changed.join(' '),
      )

      ok(await cli('node', 'repin', 's4', '--fingerprint', presented, '--yes'), 'repin')
      ok(await cli('node', 'add', 's4'), 'add after repin')
      assert.doesNotThrow(() => inNode('s4', 'test -e /etc/xcluster/agent.yaml'))
    } finally {
      inNode('s4', 'cp -a /root/keys/ssh_host_* /etc/ssh/ && systemctl restart ssh.service')
      ok(await cli('node', 'repin', 's4', '--fingerprint', pinned, '--yes'), 'repin back')
    }
  })

  it("drain hands the node's leaderships to a peer and stops its serve daemon and keepalived; undrain starts them again", async () => {
    await waitFor(
      async () => Boolean((await dhcpLeader())?.leader) && (await dhcpLeader())!.candidates.length === 3,
      20_000,
      () => 'no dhcp leader with three candidates',
    )
    const leader = (await dhcpLeader())!.leader!
    // Every election it leads (dhcp, and provision when it won that one too) is handed over.
    const led = (await cli('election', 'list', '--json'))
      .json<{service: string; leader: string | null}[]>()
      .filter((e) => e.leader === leader)
      .map((e) => e.service)
    const drained = await cli('node', 'drain', leader, '--json')
    ok(drained, `drain ${leader}`)
    const result = drained.json<{holdings: {leaderships: {service: string}[]}}>()
    assert.ok(led.includes('dhcp'), led.join(' '))
    assert.deepEqual(result.holdings.leaderships.map((l) => l.service).sort(), led.sort())
    const now = await dhcpLeader()
    assert.ok(now?.leader && now.leader !== leader && CORE.includes(now.leader), `dhcp leader after the drain: ${now?.leader}`)
    assert.equal(inNode(leader, 'systemctl is-active xcluster-serve.service || true').trim(), 'inactive')
    assert.equal(inNode(leader, 'systemctl is-active keepalived.service || true').trim(), 'inactive')
    assert.equal((await nodeState(leader)).state, 'drained')
    ok(await cli('node', 'undrain', leader), `undrain ${leader}`)
    assert.equal(inNode(leader, 'systemctl is-active xcluster-serve.service').trim(), 'active')
    await waitFor(
      async () => (await dhcpLeader())?.candidates.includes(leader) ?? false,
      15_000,
      () => `${leader} campaigns again`,
    )
    assert.equal((await dhcpLeader())?.leader, now!.leader, 'leadership stays with the peer')
  })

  it('drain stops stateful services and undrain brings them back; quorum guards core nodes', async () => {
    const drained = await cli('node', 'drain', 'f1', '--json')
    ok(drained, 'drain f1')
    assert.equal((await nodeState('f1')).state, 'drained')
    assert.equal(inNode('f1', 'systemctl is-active nginx.service || true').trim(), 'inactive')
    assert.deepEqual(
      (await nodeState('f1')).history!.slice(-2).map((h) => h.to),
      ['draining', 'drained'],
    )
    ok(await cli('node', 'undrain', 'f1'), 'undrain f1')
    assert.equal((await nodeState('f1')).state, 'ready')
    assert.equal(inNode('f1', 'systemctl is-active nginx.service').trim(), 'active')

    ok(await cli('node', 'drain', 's2'), 'drain s2')
    const refused = await cli('node', 'drain', 's3')
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /would leave 1 of 3 core nodes up; etcd needs 2/)
    assert.equal((await nodeState('s3')).state, 'ready')
    ok(await cli('node', 'undrain', 's2'), 'undrain s2')
  })

  it('remove refuses a node that is not drained, then removes a drained one', async () => {
    const refused = await cli('node', 'remove', 'c1', '--yes')
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /not drained/)
    ok(await cli('node', 'drain', 'c1'), 'drain c1')
    // c1 enlisted in test/lab/bootstrap.test.ts; its enlistment goes with it.
    assert.ok(await store.getJson(store.keys.enlisted('02:58:43:00:02:01')), 'c1 never enlisted')
    ok(await cli('node', 'remove', 'c1', '--yes'), 'remove c1')
    assert.equal((await nodeState('c1')).state, 'removed')
    assert.equal(await store.getJson(store.keys.mac('02:58:43:00:02:01')), undefined)
    assert.equal(await store.getJson(store.keys.enlisted('02:58:43:00:02:01')), undefined)
    const list = (await cli('node', 'list', '--json')).json<{name: string; state: string}[]>()
    assert.equal(list.find((n) => n.name === 'c1')?.state, 'removed')
  })

  it('vip status finds the admin VIP on the one core node keepalived gave it to; two holders are split brain', async () => {
    const one = await cli('vip', 'status', '--json')
    ok(one, 'vip status')
    const holders = one.json<{address: string; holders: string[]}[]>().find((v) => v.address === '10.0.0.254')?.holders ?? []
    assert.equal(holders.length, 1, `holders: ${holders.join(', ')}`)
    const other = CORE.find((n) => n !== holders[0])!
    try {
      execFileSync('ip', ['-n', `xc-${other}`, 'addr', 'add', '10.0.0.254/32', 'dev', 'eth0'])
      const two = await cli('vip', 'status')
      ok(two, 'vip status (table)')
      assert.match(two.stdout, new RegExp(`10\\.0\\.0\\.254\\s+admin\\s+${[holders[0], other].sort().join(',')}\\s+SPLIT BRAIN`))
    } finally {
      execFileSync('sh', ['-c', `ip -n xc-${other} addr del 10.0.0.254/32 dev eth0 2>/dev/null || true`])
    }
  })
})
