/**
 * Issue 8's proof, in the lab, from nothing. The lab's nodes are what a preseeded Debian install
 * leaves: systemd, sshd, the operator's key. `xcluster bootstrap`, run on the admin host as an
 * operator would, installs everything else over SSH through its own phases.
 *
 * In order: bad input is refused and changes nothing; a dry run plans every step and changes
 * nothing; the real run (s2's sshd killed while the seed works on it) fails resumably, and
 * `--resume` finishes it even though the admin host's process is killed right after the
 * hand-over; the cluster it leaves (TLS etcd with client certificates and RBAC, one DHCP leader,
 * the admin VIP on one core node) is checked from outside; a re-run changes nothing; the nodes
 * without a fixed address get typed leases from the cluster and are provisioned through its
 * package cache. The other lab tests run on the cluster this leaves.
 */
import assert from 'node:assert/strict'
import {execFile, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parseDocument} from 'yaml'

import {nodeTlsFiles} from '../../src/lib/certs/paths.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {labPaths} from '../../src/lib/lab/paths.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {HostKeyStore} from '../../src/lib/ssh/host-key-store.js'
import type {RunSummary} from '../../src/lib/tasks/runner.js'
import {BIN} from '../helpers/cli.js'
import {admin, adminEnv, bootstrapped, clusterStore, inNode, lab, ok, onNode, renewDhcp, waitUntil} from '../helpers/lab.js'

const CORE = ['s1', 's2', 's3']
const DHCP_NODES = ['s4', 'c1', 'f1']
const state = lab()
let dir: string

/** `xcluster bootstrap` on the admin host with the lab's spec (or another file). */
const bootstrap = (...extra: string[]) => admin(['bootstrap', '--native', '--accept-new-host-key', ...extra])
const specArgs = (file = state.specFile) => ['-f', file]

/** What a bare node has of xcluster: nothing (each line is one thing bootstrap installs). */
function installed(node: string): string[] {
  return inNode(
    node,
    'for p in /usr/local/bin/xcluster /opt/xcluster /etc/xcluster /etc/systemd/system/etcd-member.service /etc/systemd/system/xcluster-serve.service; do [ -e $p ] && echo $p; done; command -v node etcd keepalived squid 2>/dev/null; true',
  )
    .split('\n')
    .filter(Boolean)
}

/** etcdctl against the cluster from the admin host, with the given credentials (or none). */
function etcdctl(args: string[], tls: {ca?: string; cert?: string; key?: string}): Promise<{code: number; out: string}> {
  const flags = [...(tls.ca ? [`--cacert=${tls.ca}`] : ['--insecure-transport=false', '--insecure-skip-tls-verify']), ...(tls.cert ? [`--cert=${tls.cert}`, `--key=${tls.key}`] : [])]
  return new Promise((resolve) =>
    execFile(
      'etcdctl',
      [`--endpoints=${CORE.map((_, i) => `https://10.0.0.${i + 2}:2379`).join(',')}`, '--dial-timeout=3s', '--command-timeout=5s', ...flags, ...args],
      {env: {...process.env, ETCDCTL_API: '3'}},
      (err, stdout, stderr) => resolve({code: err ? ((err as {code?: number}).code ?? 1) : 0, out: `${stdout}${stderr}`}),
    ),
  )
}

/** What listens on the admin host's ports for its bootstrap services (this test runs in its namespace). */
const adminListening = (): string => execFileSync('ss', ['-Hltnu', `( sport = :53 or sport = :69 or sport = :80 or sport = :123 or sport = :3128 )`], {encoding: 'utf8'}).trim()

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xct-bootstrap-'))
  // This file proves a bootstrap from nothing: it needs the fresh lab `npm test` brings up.
  assert.equal(bootstrapped(state), false, 'the lab is already bootstrapped: run `xcluster lab up` for a fresh one')
  for (const node of CORE) assert.deepEqual(installed(node), [], `${node} is not a bare machine`)
})

after(() => {
  rmSync(dir, {recursive: true, force: true})
  for (const n of CORE) inNode(n, 'systemctl start ssh.service; true')
})

describe('bootstrap from bare machines', {concurrency: false}, () => {
  it('refuses a spec with 2 or 4 core nodes, a port taken on the admin host, a changed host key and an unreachable node, changing nothing', async () => {
    const spec = () => parseDocument(readFileSync(state.specFile, 'utf8'))
    const two = join(dir, 'two.yaml')
    const twoDoc = spec()
    const nodes = twoDoc.get('nodes') as {items: {get(k: string): unknown; set(k: string, v: unknown): void}[]}
    nodes.items.find((n) => n.get('name') === 's3')?.set('type', 'storage')
    writeFileSync(two, twoDoc.toString())
    const four = join(dir, 'four.yaml')
    const fourDoc = spec()
    fourDoc.addIn(['nodes'], {name: 's5', mac: '02:58:43:00:01:05', ip: '10.0.0.5', type: 'core'})
    writeFileSync(four, fourDoc.toString())
    for (const [file, count] of [
      [two, 2],
      [four, 4],
    ] as const) {
      const r = await bootstrap(...specArgs(file))
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /SPEC_INVALID/)
      assert.match(r.stderr, new RegExp(`${count} core nodes|exactly 3 or 5`))
      assert.match(r.stderr, /Try this:/)
    }

    // Something else holds the HTTP port on the admin host's address.
    const squatter = spawn('busybox', ['httpd', '-f', '-p', `${state.adminIp}:80`], {stdio: 'ignore'})
    try {
      await waitUntil(
        () => execFileSync('ss', ['-Hltn', 'sport = :80'], {encoding: 'utf8'}).includes(':80'),
        5000,
        () => 'busybox httpd did not listen',
      )
      const r = await bootstrap(...specArgs())
      assert.equal(r.code, 3, r.stderr)
      assert.match(r.stderr, /ADMIN_PORT_TAKEN/)
      assert.match(r.stderr, /80/)
      assert.match(r.stderr, /busybox/)
    } finally {
      squatter.kill('SIGKILL')
    }
    // Nothing started on the admin host, nothing stored, nothing on the nodes.
    assert.equal(adminListening(), '', 'a bootstrap service listens on the admin host')
    const adminEtcd = new EtcdStore({endpoints: [state.etcdEndpoint], cluster: state.cluster})
    try {
      assert.deepEqual(await adminEtcd.snapshot(), {})
    } finally {
      await adminEtcd.close()
    }

    // A core node whose host key is not the one pinned (a reinstalled machine, or an impostor):
    // refused before authenticating, with both fingerprints and the repin command.
    const pinnedEtcd = new EtcdStore({endpoints: [state.etcdEndpoint], cluster: state.cluster})
    const stale = 'SHA256:' + Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')
    try {
      await new HostKeyStore(pinnedEtcd).pin('s2', stale)
      const r = await bootstrap(...specArgs(), '--json')
      assert.equal(r.code, 4, r.stderr)
      const s2 = (JSON.parse(r.stdout) as {error: {details: RunSummary}}).error.details.hosts.find((h) => h.name === 's2')
      assert.match(s2?.failure?.message ?? '', /host key/i)
      assert.ok(r.stdout.includes(stale), 'the pinned fingerprint is not shown')
      assert.match(r.stdout, /xcluster node repin s2 --fingerprint SHA256:/)
    } finally {
      await pinnedEtcd.delete(pinnedEtcd.keys.hostKey('s2'))
      await pinnedEtcd.close()
    }
    for (const node of CORE) assert.deepEqual(installed(node), [], `${node} was changed`)

    // A core node that does not answer SSH: every core node is checked before anything changes.
    inNode('s3', 'systemctl stop ssh.service ssh.socket 2>/dev/null; pkill -KILL -x sshd; true')
    try {
      const r = await bootstrap(...specArgs(), '--json')
      assert.equal(r.code, 4, r.stderr)
      const failed = JSON.parse(r.stdout) as {error: {code: string; details: RunSummary}}
      assert.equal(failed.error.code, 'RUN_PARTIAL_FAILURE')
      const s3 = failed.error.details.hosts.find((h) => h.name === 's3')
      assert.match(s3?.failure?.message ?? '', /s3/)
      for (const h of failed.error.details.hosts.filter((x) => x.name !== 's3')) assert.equal(h.failure?.phase, 'cluster-key', `${h.name} went past the checks`)
    } finally {
      inNode('s3', 'systemctl start ssh.service')
    }
    for (const node of CORE) assert.deepEqual(installed(node), [], `${node} was changed`)
    assert.equal(inNode('s1', 'grep -c xcluster@ /root/.ssh/authorized_keys || true').trim(), '0', 'the cluster key was authorized although a core node failed its checks')
    assert.equal(adminListening(), '', "the admin host's services started although a core node failed its checks")
  })

  it('--dry-run plans every step on every core node and changes nothing anywhere', async () => {
    const adminEtcd = new EtcdStore({endpoints: [state.etcdEndpoint], cluster: state.cluster})
    const before = await adminEtcd.snapshot()
    try {
      const r = ok(await bootstrap(...specArgs(), '--dry-run', '--json'), 'bootstrap --dry-run')
      const run = r.json<{run: RunSummary}>().run
      assert.equal(run.result, 'planned')
      for (const node of CORE) {
        const steps = run.plan[node] ?? []
        assert.ok(
          steps.some((s) => /install Node\.js/.test(s)),
          `${node}: ${steps.join('; ')}`,
        )
        assert.ok(
          steps.some((s) => /etcd/.test(s)),
          `${node}: no etcd step`,
        )
        assert.ok(
          steps.some((s) => /xcluster-serve/.test(s)),
          `${node}: no serve step`,
        )
      }
      assert.ok(
        run.plan.s1?.some((s) => /start package-cache/.test(s)),
        "the admin host's services are planned",
      )
      assert.deepEqual(await adminEtcd.snapshot(), before)
    } finally {
      await adminEtcd.close()
    }
    for (const node of CORE) assert.deepEqual(installed(node), [], `${node} was changed by a dry run`)
    assert.equal(adminListening(), '', 'a bootstrap service listens on the admin host')
    assert.equal(bootstrapped(state), false)
  })

  it("forms the cluster: an sshd killed mid-run fails that run; --resume finishes it on the seed although the admin host's process dies at the hand-over", {timeout: 900_000}, async () => {
    const started = Date.now()
    const child = spawn(process.execPath, [BIN, 'bootstrap', ...specArgs(), '--native', '--accept-new-host-key', '--json'], {env: {...process.env, ...adminEnv(), NO_COLOR: '1'}})
    let stdout = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', () => undefined)
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)))
    // Once the seed carries the run on (its unit runs), s2's sshd dies under it.
    await waitUntil(
      async () => (await onNode('s1', `systemctl is-active --quiet ${settings.bootstrap.continuationUnit}`)).code === 0 || child.exitCode !== null,
      600_000,
      () => 'the seed never took the run over',
    )
    inNode('s2', 'systemctl stop ssh.service ssh.socket 2>/dev/null; pkill -KILL -x sshd; true')
    let code: number
    try {
      code = await exited
    } finally {
      inNode('s2', 'systemctl start ssh.service')
    }
    assert.equal(code, 4, stdout)
    const failed = JSON.parse(stdout) as {error: {code: string; details: RunSummary; suggestion: string}}
    const runId = failed.error.details.runId as string
    assert.ok(runId)
    assert.match(failed.error.suggestion, new RegExp(`--resume ${runId}`))

    // Resume from the admin host, and lose the admin host's process once the seed has the run again.
    const resumed = spawn(process.execPath, [BIN, 'bootstrap', ...specArgs(), '--native', '--resume', runId], {env: {...process.env, ...adminEnv(), NO_COLOR: '1'}, stdio: 'ignore'})
    await waitUntil(
      async () => (await onNode('s1', `systemctl is-active --quiet ${settings.bootstrap.continuationUnit}`)).code === 0 || resumed.exitCode !== null,
      300_000,
      () => 'the resume never handed the run over',
    )
    resumed.kill('SIGKILL')
    // The seed finishes alone.
    await waitUntil(
      async () => (await onNode('s1', `systemctl is-active --quiet ${settings.bootstrap.continuationUnit}`)).code !== 0,
      600_000,
      () => 'the seed did not finish',
    )
    const record = ok(await admin(['runs', 'show', runId, '--json']), 'runs show').json<{record: {result: string; resumes: number}}>().record
    assert.equal(record.result, 'succeeded')
    assert.ok(record.resumes >= 2, `resumed ${record.resumes} times (by the admin host and by the seed)`)
    console.log(`# bootstrap from bare machines to a running cluster: ${((Date.now() - started) / 1000).toFixed(0)} s (including a failed first attempt)`)
  })

  it('the cluster: three etcd members with TLS and client certificates, RBAC, one DHCP leader, the admin VIP on one core node, every core node ready', async () => {
    for (const node of CORE) {
      const has = installed(node)
      for (const thing of ['/usr/local/bin/xcluster', '/opt/xcluster', '/etc/xcluster']) assert.ok(has.includes(thing), `${node} lacks ${thing}`)
      assert.equal(inNode(node, 'systemctl is-active etcd-member xcluster-serve keepalived xcluster-dns squid').trim().split('\n').join(' '), 'active active active active active', node)
      assert.match(inNode(node, '/usr/local/bin/xcluster --version'), /xcluster\//)
    }
    const pki = join(labPaths(state.dir).adminPki, state.cluster)
    const operator = {ca: join(pki, 'ca.crt'), cert: join(pki, 'xcluster-admin.crt'), key: join(pki, 'xcluster-admin.key')}
    const health = await etcdctl(['endpoint', 'health', '--cluster'], operator)
    assert.equal(health.code, 0, health.out)
    assert.equal((health.out.match(/is healthy/g) ?? []).length, 3, health.out)

    const store = clusterStore()
    try {
      for (const node of CORE) assert.equal((await store.getJson<NodeRecord>(store.keys.node(node)))?.value.state, 'ready', node)
      const elections = ok(await admin(['election', 'list', '--json']), 'election list').json<{service: string; leader: string | null; candidates: string[]}[]>()
      const dhcp = elections.find((e) => e.service === 'dhcp')
      assert.ok(dhcp?.leader && CORE.includes(dhcp.leader), JSON.stringify(elections))
      assert.deepEqual([...(dhcp?.candidates ?? [])].sort(), CORE)
      // The auto-provisioner's and the certificate keeper's elections (serve --provision --certs on every core node).
      for (const service of ['provision', 'certs']) {
        const election = elections.find((e) => e.service === service)
        assert.ok(election?.leader && CORE.includes(election.leader), `${service}: ${JSON.stringify(elections)}`)
        assert.deepEqual([...(election?.candidates ?? [])].sort(), CORE, service)
      }
    } finally {
      await store.close()
    }
    const holders = CORE.filter((n) => inNode(n, 'ip -4 -o addr show eth0').includes(` ${'10.0.0.254'}/`))
    assert.equal(holders.length, 1, `the admin VIP is on ${holders.join(', ') || 'no node'}`)
  })

  it('security: without a certificate, or with one from another CA, etcd refuses; a serve identity may not write the spec or host-key pins', async () => {
    const prefix = `/xcluster/${state.cluster}/`
    const none = await etcdctl(['get', `${prefix}spec`], {})
    assert.notEqual(none.code, 0, `read without a client certificate: ${none.out}`)
    const other = join(dir, 'other')
    execFileSync('sh', [
      '-c',
      `mkdir -p ${other} && cd ${other} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj /CN=other -days 1 2>/dev/null && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout c.key -out c.csr -subj /CN=xcluster-admin 2>/dev/null && openssl x509 -req -in c.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out c.crt -days 1 2>/dev/null`,
    ])
    const pki = join(labPaths(state.dir).adminPki, state.cluster)
    const foreign = await etcdctl(['put', `${prefix}spec`, 'x'], {ca: join(pki, 'ca.crt'), cert: join(other, 'c.crt'), key: join(other, 'c.key')})
    assert.notEqual(foreign.code, 0, `a write with a foreign certificate: ${foreign.out}`)

    // The serve identity of s1, copied off the node.
    const serve = {ca: join(dir, 'ca.crt'), cert: join(dir, 'serve.crt'), key: join(dir, 'serve.key')}
    writeFileSync(serve.ca, inNode('s1', `cat ${nodeTlsFiles.ca}`))
    writeFileSync(serve.cert, inNode('s1', `cat ${nodeTlsFiles.clientCert}`))
    writeFileSync(serve.key, inNode('s1', `cat ${nodeTlsFiles.clientKey}`), {mode: 0o600})
    const read = await etcdctl(['get', `${prefix}spec`, '--print-value-only'], serve)
    assert.equal(read.code, 0, read.out)
    for (const key of [`${prefix}spec`, `${prefix}hostkeys/s1`, `${prefix}nodes/s1`]) {
      const write = await etcdctl(['put', key, 'tampered'], serve)
      assert.notEqual(write.code, 0, `the serve identity wrote ${key}`)
      assert.match(write.out, /permission denied/i)
    }
    const store = clusterStore()
    try {
      assert.ok((await store.getJson(`${prefix}hostkeys/s1`))?.value, 'the pin is intact')
    } finally {
      await store.close()
    }
  })

  it('a re-run reports No changes', async () => {
    const r = ok(await bootstrap(...specArgs(), '--json'), 'bootstrap again')
    const run = r.json<{run: RunSummary}>().run
    assert.equal(run.result, 'succeeded')
    assert.equal(run.changed, 0, JSON.stringify(run.plan))
    const human = ok(await bootstrap(...specArgs()), 'bootstrap again (human)')
    assert.match(human.stdout, /No changes/)
  })

  it('a re-run restarts serve where it runs a release older than the one switched to, and nowhere else', async () => {
    // As a crash between the switch and the restart leaves it (or a re-run with a new build): s2's
    // `current` link changed after its serve started.
    const servePid = (n: string) => inNode(n, `systemctl show -p MainPID --value ${settings.serveUnit.name}`).trim()
    const before = Object.fromEntries(CORE.map((n) => [n, servePid(n)]))
    inNode('s2', 'touch -h /opt/xcluster/current')
    const run = ok(await bootstrap(...specArgs(), '--json'), 'bootstrap again').json<{run: RunSummary}>().run
    assert.deepEqual(run.plan, {s2: [`restart ${settings.serveUnit.name} (it runs the release before the one switched to)`]})
    assert.notEqual(servePid('s2'), before.s2, "s2's serve was restarted")
    assert.deepEqual([servePid('s1'), servePid('s3')], [before.s1, before.s3], 'the others were left running')
    assert.equal(inNode('s2', `systemctl is-active ${settings.serveUnit.name}`).trim(), 'active')
  })

  it(
    "s4, c1 and f1 get typed addresses from the cluster's DHCP leader and enlist their host keys with it; s4 and c1 are added with those keys pinned, f1 by the cluster itself (autoProvision)",
    {timeout: 400_000},
    async () => {
      const leases: Record<string, {ip: string; grantedBy: string}> = {}
      await waitUntil(
        async () => {
          renewDhcp(DHCP_NODES.filter((n) => !leases[n]))
          const listed = ok(await admin(['dhcp', 'leases', '--json']), 'dhcp leases').json<{ip: string; node?: string; expired: boolean; grantedBy: string}[]>()
          for (const l of listed) if (l.node && !l.expired) leases[l.node] = l
          return DHCP_NODES.every((n) => leases[n])
        },
        60_000,
        () => `leases so far: ${JSON.stringify(leases)}`,
      )
      assert.match(leases.s4!.ip, /^10\.0\.0\.(1[1-9]|2\d|30)$/)
      assert.match(leases.c1!.ip, /^10\.0\.0\.(5[1-9]|6\d|70)$/)
      assert.match(leases.f1!.ip, /^10\.0\.0\.(7[1-9]|80)$/)
      for (const n of DHCP_NODES) assert.ok(['10.0.0.2', '10.0.0.3', '10.0.0.4'].includes(leases[n]!.grantedBy), `${n}'s lease came from ${leases[n]!.grantedBy}, not a core node`)

      // Enlistment, as the installer's late command would run it: the script the admin host serves,
      // run on the node, reporting to the server its lease came from.
      const macOf = (n: string) => state.hosts.find((h) => h.name === n)!.mac
      const enlist = `python3 -c "import urllib.request as u; print(u.urlopen('http://${state.adminIp}/xcluster-enlist.sh').read().decode())" > /tmp/xcluster-enlist.sh && bash /tmp/xcluster-enlist.sh`
      const manual = ['s4', 'c1']
      for (const n of manual) assert.match(inNode(n, enlist), new RegExp(`: enlisted ${macOf(n)}: SHA256:`), `${n} did not enlist`)
      // A machine without a lease on that address (s1 has a fixed one) is refused.
      const impostor = await onNode('s1', `${enlist} ${leases.c1!.grantedBy}`)
      assert.equal(impostor.code, 1, impostor.stdout + impostor.stderr)
      assert.match(impostor.stdout, /refused: 10\.0\.0\.2 holds no DHCP lease/)

      // No --accept-new-host-key: the first connection is checked against the enlisted keys.
      ok(await admin(['node', 'add', ...manual]), 'node add')

      // autoProvision on: f1 enlists, and the provision leader adds it with nobody asking.
      const auto = join(dir, 'auto-provision.yaml')
      writeFileSync(auto, `${readFileSync(state.specFile, 'utf8')}\nautoProvision: true\n`)
      ok(await admin(['config', 'apply', '-f', auto, '--yes']), 'config apply autoProvision')
      assert.match(inNode('f1', enlist), new RegExp(`: enlisted ${macOf('f1')}: SHA256:`), 'f1 did not enlist')
      const store = clusterStore()
      try {
        await waitUntil(
          async () => (await store.getJson<NodeRecord>(store.keys.node('f1')))?.value.state === 'ready',
          240_000,
          () => 'f1 was not provisioned by the cluster',
        )
        const f1 = (await store.getJson<NodeRecord>(store.keys.node('f1')))!.value
        assert.match(f1.history?.find((h) => h.to === 'provisioning')?.by ?? '', /^xcluster-provision@s[123]$/, JSON.stringify(f1.history))
        for (const n of DHCP_NODES) {
          assert.equal((await store.getJson<NodeRecord>(store.keys.node(n)))?.value.state, 'ready', n)
          const pin = await new HostKeyStore(store).get(n)
          assert.equal(pin?.source, 'enlistment', n)
          const onDisk = inNode(n, 'for f in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $f; done')
            .trim()
            .split('\n')
            .map((l) => l.split(' ')[1])
          assert.deepEqual([...(pin?.fingerprints ?? [])].sort(), onDisk.sort(), `${n}: the pin is not the node's own keys`)
        }
      } finally {
        await store.close()
      }
      for (const n of DHCP_NODES) assert.match(inNode(n, 'cat /etc/apt/apt.conf.d/90xcluster-proxy'), /http:\/\/10\.0\.0\.254:3128/, `${n} does not use the cluster's cache`)
    },
  )
})
