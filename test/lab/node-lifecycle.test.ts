/**
 * The node lifecycle against the lab's real nodes: `node add` provisions six nodes over SSH in
 * one run, re-runs change nothing, an interrupted run resumes, a changed host key is refused,
 * and drain / undrain / remove move nodes through their states. s4, c1 and f1 have no fixed
 * address: they take MAC-typed leases from `xcluster serve --dhcp` on s1's network, and `node
 * add` reaches them at the leased address it finds in etcd.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import {containerInitPid, readLabState} from '../../src/lib/lab/state.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {renderServeEnv} from '../../src/lib/election/units.js'
import {renderTemplate} from '../../src/lib/render/template.js'
import {fingerprintOfPublicKey, SshHost} from '../../src/lib/ssh/index.js'
import type {RunSummary} from '../../src/lib/tasks/runner.js'
import {BIN, xcluster, type CliResult} from '../helpers/cli.js'

const state = readLabState()
const CLUSTER = 'lifecycle'
const NODES = ['s1', 's2', 's3', 's4', 'c1', 'f1']
const DHCP_NODES = ['s4', 'c1', 'f1']
/** A guarded singleton the core nodes' serve daemons campaign for (drain must hand it over). */
const SERVICE = 'lcsvc'
const leased: Record<string, string> = {}
const env = {XCLUSTER_ETCD: state.etcdEndpoint, XCLUSTER_CLUSTER: CLUSTER, XCLUSTER_SSH_KEY: state.sshKey}
const cli = (...args: string[]) => xcluster(args, {env})
const store = new EtcdStore({endpoints: [state.etcdEndpoint], cluster: CLUSTER})
const ip = (name: string) => state.hosts.find((h) => h.name === name)!.ip ?? leased[name]

/** A command inside a node's container, as root, without SSH (for breaking SSH on purpose). */
function inNode(name: string, script: string): string {
  const pid = containerInitPid(state.dir, name)
  assert.ok(pid, `no running container for ${name}`)
  return execFileSync('nsenter', ['-t', String(pid), '-a', 'sh', '-c', script], {encoding: 'utf8'})
}

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

describe('node lifecycle on the lab', () => {
  let dhcpServer: ChildProcess

  before(async () => {
    // sshd up everywhere, even if an earlier run of this file stopped in the middle.
    for (const name of NODES) inNode(name, 'systemctl start ssh.service')
    const spec = `${readFileSync(state.specFile, 'utf8').replace(/^cluster: .*$/m, `cluster: ${CLUSTER}`)}services:\n  - {name: ${SERVICE}, start: 'true', stop: 'true'}\n`
    const file = join(mkdtempSync(join(tmpdir(), 'xc-life-')), 'xcluster.yaml')
    writeFileSync(file, spec)
    await store.client.delete().prefix(store.keys.prefix).exec()
    ok(await cli('config', 'apply', '-f', file), 'config apply')

    // The DHCP server in s1's network namespace; the nodes' own systemd-networkd asks it.
    dhcpServer = spawn('ip', ['netns', 'exec', 'xc-s1', process.execPath, BIN, 'serve', '--dhcp', '--interface', 'eth0', '--node', 's1'], {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let log = ''
    dhcpServer.stdout!.on('data', (d) => (log += d))
    dhcpServer.stderr!.on('data', (d) => (log += d))
    await waitFor(() => log.includes('"source":"dhcp","event":"started"'), 15_000, () => `the DHCP server did not start: ${log}`)
    for (const name of DHCP_NODES) inNode(name, 'systemctl restart systemd-networkd')
    await waitFor(async () => {
      const leases = (await cli('dhcp', 'leases', '--json')).json<{ip: string; node?: string; expired: boolean}[]>()
      for (const l of leases) if (l.node && !l.expired) leased[l.node] = l.ip
      return DHCP_NODES.every((n) => leased[n] && execFileSync('ip', ['-n', `xc-${n}`, '-4', 'addr', 'show', 'eth0'], {encoding: 'utf8'}).includes(`inet ${leased[n]}/`))
    }, 30_000, () => `no DHCP leases for ${DHCP_NODES.join(' ')}: ${JSON.stringify(leased)}`)
  })

  after(async () => {
    dhcpServer?.kill('SIGTERM')
    for (const name of DHCP_NODES) {
      inNode(name, 'systemctl stop systemd-networkd systemd-networkd.socket; true')
      execFileSync('ip', ['-n', `xc-${name}`, 'addr', 'flush', 'dev', 'eth0', 'scope', 'global'])
      execFileSync('ip', ['-n', `xc-${name}`, 'route', 'flush', 'dev', 'eth0'], {stdio: 'ignore'})
    }
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

  it('adds the six lab nodes in one run, writing the rendered files on each', async () => {
    const r = await cli('node', 'add', ...NODES, '--accept-new-host-key', '--json')
    ok(r, 'node add')
    const run = r.json<{run: RunSummary}>().run
    assert.equal(run.result, 'succeeded')
    assert.deepEqual(run.hosts.map((h) => h.status), NODES.map(() => 'ok'))
    for (const name of NODES) assert.equal((await nodeState(name)).state, 'ready', name)

    // The pins taken on first contact are the keys the nodes really have.
    for (const name of NODES) {
      const pin = (await store.getJson<{fingerprints: string[]}>(store.keys.hostKey(name)))!.value
      const host = state.hosts.find((h) => h.name === name)!
      assert.deepEqual(pin.fingerprints, [fingerprintOfPublicKey(host.hostPublicKey!)], name)
    }

    // Every node of the lab's spec with an address, in etcd's (name) order.
    const peers = state.hosts.filter((h) => h.kind === 'node' && ip(h.name)).map((h) => h.name).sort().map((name) => ({name, ip: ip(name)}))
    const coreEndpoints = ['s1', 's2', 's3'].map((n) => `"http://${ip(n)}:2379"`).join(', ')
    for (const name of NODES) {
      const type = state.hosts.find((h) => h.name === name)!.type!
      const mac = state.hosts.find((h) => h.name === name)!.mac
      assert.equal(await readRemote(name, '/etc/xcluster/agent.yaml'), renderTemplate('node/agent.yaml', {cluster: CLUSTER, name, type, mac, ip: ip(name), etcdEndpoints: coreEndpoints, adminVip: '10.0.0.254'}))
      assert.equal(await readRemote(name, '/etc/hosts'), renderTemplate('node/hosts', {name, domain: 'xcluster.lan', adminVip: '10.0.0.254', peers}))
      assert.equal(await readRemote(name, '/etc/apt/apt.conf.d/90xcluster-proxy'), renderTemplate('node/apt-proxy.conf', {proxyUrl: 'http://10.0.0.1:3128'}))
      const servers = [...['s1', 's2', 's3'].filter((n) => n !== name).map(ip), '10.0.0.1']
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
    const child = spawn(process.execPath, [BIN, 'node', 'add', ...NODES, '--json'], {env: {...process.env, ...env, NO_COLOR: '1'}})
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
    assert.deepEqual(failed.error.details.hosts.filter((h) => h.status === 'failed').map((h) => h.name), ['c1'])
    assert.match(failed.error.suggestion, new RegExp(`xcluster node add --resume ${runId}`))
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
    inNode('s4', 'mkdir -p /root/keys && cp -a /etc/ssh/ssh_host_* /root/keys/ && rm /etc/ssh/ssh_host_* && ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh.service && rm -f /etc/xcluster/agent.yaml')
    const presented = inNode('s4', 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub').split(' ')[1]
    try {
      const snapshotBefore = await store.snapshot()
      const r = await cli('node', 'add', 's4')
      assert.equal(r.code, 4, r.stderr)
      assert.match(r.stderr, new RegExp(`Host key of s4 \\(${leased.s4.replaceAll('.', '\\.')}\\) does not match its pin: expected ${pinned.replace(/[+/]/g, '\\$&')}, presented ${presented.replace(/[+/]/g, '\\$&')}`))
      assert.match(r.stderr, new RegExp(`xcluster node repin s4 --fingerprint ${presented.replace(/[+/]/g, '\\$&')}`))
      assert.throws(() => inNode('s4', 'test -e /etc/xcluster/agent.yaml'), 'nothing ran on the host')
      // Only the audit trail of the refused run was written.
      const changed = Object.keys(await store.snapshot()).filter((k) => snapshotBefore[k] === undefined)
      assert.ok(changed.every((k) => k.includes('/runs/')), changed.join(' '))

      ok(await cli('node', 'repin', 's4', '--fingerprint', presented, '--yes'), 'repin')
      ok(await cli('node', 'add', 's4'), 'add after repin')
      assert.doesNotThrow(() => inNode('s4', 'test -e /etc/xcluster/agent.yaml'))
    } finally {
      inNode('s4', 'cp -a /root/keys/ssh_host_* /etc/ssh/ && systemctl restart ssh.service')
      ok(await cli('node', 'repin', 's4', '--fingerprint', pinned, '--yes'), 'repin back')
    }
  })

  it('drain hands the node\'s leaderships to a peer and stops its serve daemon; undrain starts it again', async () => {
    // The real serve unit, enabled on s2 and s3 (s1 already leads dhcp here), campaigning for
    // SERVICE against the admin etcd.
    const envFile = renderServeEnv({etcd: state.etcdEndpoint, cluster: CLUSTER, elect: [SERVICE]})
    for (const name of ['s2', 's3']) {
      inNode(name, `mkdir -p /etc/xcluster && cat > /etc/xcluster/serve.env <<'EOF'\n${envFile}EOF\nsystemctl enable --now xcluster-serve.service`)
    }
    try {
      const leaderNow = async () => (await cli('election', 'list', '--json')).json<{service: string; leader: string | null; candidates: string[]}[]>().find((e) => e.service === SERVICE)
      await waitFor(async () => (await leaderNow())?.candidates.length === 2 && Boolean((await leaderNow())?.leader), 20_000, () => 'no leader with two candidates')
      const leader = (await leaderNow())!.leader!
      const peer = leader === 's2' ? 's3' : 's2'

      const drained = await cli('node', 'drain', leader, '--json')
      ok(drained, `drain ${leader}`)
      const result = drained.json<{holdings: {leaderships: {service: string}[]}}>()
      assert.deepEqual(result.holdings.leaderships.map((l) => l.service), [SERVICE])
      assert.equal((await leaderNow())?.leader, peer, 'the peer leads')
      assert.equal(inNode(leader, 'systemctl is-active xcluster-serve.service || true').trim(), 'inactive')
      assert.equal((await nodeState(leader)).state, 'drained')
      const human = await cli('node', 'undrain', leader)
      ok(human, `undrain ${leader}`)
      assert.equal(inNode(leader, 'systemctl is-active xcluster-serve.service').trim(), 'active')
      await waitFor(async () => (await leaderNow())?.candidates.includes(leader) ?? false, 10_000, () => `${leader} campaigns again`)
      assert.equal((await leaderNow())?.leader, peer, 'leadership stays with the peer')
    } finally {
      for (const name of ['s2', 's3']) inNode(name, 'systemctl disable --now xcluster-serve.service; rm -f /etc/xcluster/serve.env')
    }
  })

  it('drain stops stateful services and undrain brings them back; quorum guards core nodes', async () => {
    const drained = await cli('node', 'drain', 'f1', '--json')
    ok(drained, 'drain f1')
    assert.equal((await nodeState('f1')).state, 'drained')
    assert.equal(inNode('f1', 'systemctl is-active nginx.service || true').trim(), 'inactive')
    assert.deepEqual((await nodeState('f1')).history!.slice(-2).map((h) => h.to), ['draining', 'drained'])
    ok(await cli('node', 'undrain', 'f1'), 'undrain f1')
    assert.equal((await nodeState('f1')).state, 'ready')
    assert.equal(inNode('f1', 'systemctl is-active nginx.service').trim(), 'active')

    // s1 leads dhcp (the only DHCP daemon here): draining it is refused, as no peer could take over.
    const lone = await cli('node', 'drain', 's1')
    assert.equal(lone.code, 4)
    assert.match(lone.stderr, /no other node campaigns for dhcp, so its leadership cannot move/)
    assert.equal((await nodeState('s1')).state, 'draining', 'a drain that stopped half-way leaves the node draining')
    ok(await cli('node', 'undrain', 's1'), 'undrain s1 (it stopped in draining)')
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
    ok(await cli('node', 'remove', 'c1', '--yes'), 'remove c1')
    assert.equal((await nodeState('c1')).state, 'removed')
    assert.equal(await store.getJson(store.keys.mac('02:58:43:00:02:01')), undefined)
    const list = (await cli('node', 'list', '--json')).json<{name: string; state: string}[]>()
    assert.equal(list.find((n) => n.name === 'c1')?.state, 'removed')
  })

  it('vip status finds VIP holders on the core nodes over SSH, and two holders are split brain', async () => {
    try {
      execFileSync('ip', ['-n', 'xc-s2', 'addr', 'add', '10.0.0.254/32', 'dev', 'eth0'])
      const one = await cli('vip', 'status', '--json')
      ok(one, 'vip status')
      assert.deepEqual(one.json<{address: string; holders: string[]}[]>().find((v) => v.address === '10.0.0.254')?.holders, ['s2'])
      execFileSync('ip', ['-n', 'xc-s3', 'addr', 'add', '10.0.0.254/32', 'dev', 'eth0'])
      const two = await cli('vip', 'status')
      ok(two, 'vip status (table)')
      assert.match(two.stdout, /10\.0\.0\.254\s+admin\s+s2,s3\s+SPLIT BRAIN/)
    } finally {
      for (const n of ['s2', 's3']) execFileSync('sh', ['-c', `ip -n xc-${n} addr del 10.0.0.254/32 dev eth0 2>/dev/null || true`])
    }
  })
})
