/**
 * The cluster's etcd as bootstrap forms it: three real members started from the member configs
 * src/lib/etcd/cluster-config.ts renders (peer and client TLS, client-certificate auth), with
 * certificates from the cluster CA (src/lib/certs), then etcd RBAC from configureAccess. What
 * each identity may do is observed from the outside: etcd's answers, etcdctl, the real CLI and a
 * real `xcluster serve` daemon, etcd's own log.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {request} from 'node:https'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parse as parseYaml} from 'yaml'

import {identity} from '../../src/lib/certs/identities.js'
import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {issueCertificate} from '../../src/lib/certs/authority.js'
import {listIssuedCertificates, loadCa, loadTrustBundle, loadIssuedCertificate, saveCa, saveIssuedCertificate} from '../../src/lib/certs/store.js'
import {LeaseAllocator} from '../../src/lib/dhcp/allocator.js'
import {configureAccess, describeChange, type AccessPlan} from '../../src/lib/etcd/access.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {XclusterError} from '../../src/lib/errors.js'
import {settings} from '../../src/lib/settings.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {Daemon, loggedService, readEvents, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startTlsEtcdCluster, type TlsEtcdCluster} from '../helpers/etcd-cluster.js'
import {createTestPki, type ClientFiles, type TestPki} from '../helpers/pki.js'
import {requireTool} from '../helpers/tools.js'

const MAC_C1 = '02:58:43:00:02:01'
const UNKNOWN_MAC = '02:99:00:00:00:42'
const PLAN: AccessPlan = {admins: [identity.admin], serve: [identity.serve('s1'), identity.serve('s2')]}

let dir: string
let pki: TestPki
let etcd: TlsEtcdCluster
let etcdctlBin: string
let opensslBin: string
const stores: EtcdStore[] = []
/** The secret the CA's key is sealed under in etcd (set where the CA is stored). */
let caSecret: ClusterSecret | undefined
/** Everything a command, the daemon or the library printed or returned: grepped for keys at the end. */
const outputs: string[] = []

const files = (cn: string): Promise<ClientFiles> => pki.client(cn)

async function storeAs(cn?: string, ca = pki): Promise<EtcdStore> {
  const f = cn ? await ca.client(cn) : undefined
  const store = new EtcdStore({endpoints: etcd.endpoints, cluster: 'xcluster', ca: pki.caFile, ...(f ? {cert: f.certFile, key: f.keyFile} : {})})
  stores.push(store)
  return store
}

function tlsEnv(f: ClientFiles): Record<string, string> {
  return {XCLUSTER_ETCD: etcd.etcdFlag, XCLUSTER_ETCD_CA: pki.caFile, XCLUSTER_ETCD_CERT: f.certFile, XCLUSTER_ETCD_KEY: f.keyFile}
}

async function cli(args: string[], as: string): Promise<CliResult> {
  const r = await xcluster(args, {env: tlsEnv(await files(as))})
  outputs.push(r.stdout, r.stderr)
  return r
}

/**
 * etcdctl against the cluster, as `f` (or without a client certificate). A refused handshake
 * makes etcdctl retry until its timeout: those calls pass `refused` for a short one.
 */
function etcdctl(f: ClientFiles | undefined, ...args: string[]): {code: number; stdout: string; stderr: string} {
  const auth = f ? ['--cert', f.certFile, '--key', f.keyFile] : []
  const refused = args[0] === 'refused'
  const timeouts = refused ? ['--command-timeout=1s', '--dial-timeout=1s'] : ['--command-timeout=3s', '--dial-timeout=2s']
  const r = spawnSync(etcdctlBin, [`--endpoints=${etcd.etcdFlag}`, '--cacert', pki.caFile, ...auth, ...timeouts, ...args.slice(refused ? 1 : 0)], {encoding: 'utf8'})
  outputs.push(r.stdout, r.stderr)
  return {code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr}
}

/** Everything in etcd (the whole keyspace, read as root): keys and raw values. */
async function everything(): Promise<Record<string, string>> {
  const root = await storeAs(identity.root)
  return root.call('dump', (c) => c.getAll().prefix('').strings())
}

const refusedWith = (code: string) => (e: unknown) => e instanceof XclusterError && e.code === code && Boolean(e.suggestion)

/** GET over https presenting `f` (HTTP/1.1): the status code, or the TLS error. */
function httpsGet(url: string, f: ClientFiles): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(url, {ca: readFileSync(pki.caFile), cert: readFileSync(f.certFile), key: readFileSync(f.keyFile), timeout: 3000}, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', (err) => resolve(String(err.message)))
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end()
  })
}

/** The auth revision etcd logs with a denied request: it moves on every user or role change. */
async function authRevision(): Promise<number> {
  const denied = () =>
    readFileSync(etcd.logFiles[0] as string, 'utf8')
      .split('\n')
      .filter((l) => l.includes('runs/probe') && l.includes('auth_revision'))
  const seen = denied().length
  const serve = await storeAs(identity.serve('s2'))
  await assert.rejects(serve.put(serve.keys.runsPrefix() + 'probe', {}), refusedWith('ETCD_PERMISSION_DENIED'))
  const log = await until("this denied request in etcd's log", () => denied()[seen])
  return Number(/auth_revision:(\d+)/.exec(log)?.[1])
}

before(async () => {
  etcdctlBin = requireTool('etcdctl', 'etcd-client')
  opensslBin = requireTool('openssl', 'openssl')
  dir = mkdtempSync(join(tmpdir(), 'xct-etcd-tls-'))
  pki = await createTestPki(join(dir, 'pki'))
  etcd = await startTlsEtcdCluster(pki, {logLevel: 'info'})
})

after(async () => {
  for (const s of stores) await s.close()
  await etcd?.destroy()
  rmSync(dir, {recursive: true, force: true})
})

describe('the cluster etcd with TLS and client-certificate authentication', {concurrency: false}, () => {
  it('three members run from the rendered configs, TLS with client-certificate auth on both ports', () => {
    for (const file of etcd.configFiles) {
      const config = parseYaml(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown> | string>
      assert.match(String(config['listen-client-urls']), /^https:/)
      assert.match(String(config['listen-peer-urls']), /^https:/)
      assert.equal((config['client-transport-security'] as Record<string, unknown>)['client-cert-auth'], true)
      assert.equal((config['peer-transport-security'] as Record<string, unknown>)['client-cert-auth'], true)
    }
    assert.notEqual(etcdctl(undefined, 'refused', 'endpoint', 'health').code, 0, 'without a client certificate: not even health')
  })

  it("etcdctl with the operator's certificate sees three healthy members on https", async () => {
    const admin = await files(identity.admin)
    const health = etcdctl(admin, 'endpoint', 'health')
    assert.equal(health.code, 0, health.stderr)
    assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3)
    const members = etcdctl(admin, 'member', 'list', '-w', 'json')
    assert.equal(members.code, 0, members.stderr)
    const list = JSON.parse(members.stdout) as {members: {peerURLs: string[]; clientURLs: string[]}[]}
    assert.equal(list.members.length, 3)
    for (const m of list.members) assert.ok(m.peerURLs.every((u) => u.startsWith('https://')) && m.clientURLs.every((u) => u.startsWith('https://')))
  })

  it('openssl verifies every certificate the cluster runs with against the CA, for its purpose', async () => {
    const verify = (file: string, purpose: string) => spawnSync(opensslBin, ['verify', '-CAfile', pki.caFile, '-purpose', purpose, file], {encoding: 'utf8'})
    for (const m of ['s1', 's2', 's3']) {
      for (const purpose of ['sslserver', 'sslclient']) {
        const peer = verify(join(pki.dir, `member-${m}-peer.crt`), purpose)
        assert.equal(peer.status, 0, `peer ${m} ${purpose}: ${peer.stdout}${peer.stderr}`)
      }
      assert.equal(verify(join(pki.dir, `member-${m}-server.crt`), 'sslserver').status, 0)
      assert.notEqual(verify(join(pki.dir, `member-${m}-server.crt`), 'sslclient').status, 0, 'a server certificate is no client')
    }
    for (const cn of [identity.admin, identity.root, identity.serve('s1'), 'xcluster-test-probe']) {
      const f = await files(cn)
      const client = verify(f.certFile, 'sslclient')
      assert.equal(client.status, 0, `${cn}: ${client.stdout}${client.stderr}`)
      assert.notEqual(verify(f.certFile, 'sslserver').status, 0, 'a client certificate is no server')
    }
  })

  it('a client without a certificate is refused, for reads and for writes', async () => {
    const before = await everything()
    const anonymous = await storeAs()
    await assert.rejects(anonymous.getJson(anonymous.keys.spec()), refusedWith('ETCD_TLS_REFUSED'))
    await assert.rejects(anonymous.put(anonymous.keys.spec(), {evil: true}), refusedWith('ETCD_TLS_REFUSED'))
    const get = etcdctl(undefined, 'refused', 'get', '--prefix', '/xcluster/')
    const put = etcdctl(undefined, 'refused', 'put', '/xcluster/xcluster/spec', 'evil')
    assert.notEqual(get.code, 0)
    assert.notEqual(put.code, 0)
    assert.deepEqual(await everything(), before, 'etcd unchanged')
  })

  it('a client with a certificate from another CA is refused', async () => {
    const before = await everything()
    const other = await createTestPki(join(dir, 'other-pki'))
    const foreign = await storeAs(identity.admin, other)
    await assert.rejects(foreign.getJson(foreign.keys.spec()), refusedWith('ETCD_TLS_REFUSED'))
    await assert.rejects(foreign.put(foreign.keys.spec(), {evil: true}), refusedWith('ETCD_TLS_REFUSED'))
    const adminFiles = await files(identity.admin)
    const trustingOther = new EtcdStore({endpoints: etcd.endpoints, cluster: 'xcluster', ca: other.caFile, cert: adminFiles.certFile, key: adminFiles.keyFile})
    stores.push(trustingOther)
    await assert.rejects(trustingOther.getJson(trustingOther.keys.spec()), refusedWith('ETCD_TLS_REFUSED'), 'nor does a client trust members of another CA')
    const put = etcdctl(await other.client(identity.admin), 'refused', 'put', '/xcluster/xcluster/spec', 'evil')
    assert.notEqual(put.code, 0)
    assert.deepEqual(await everything(), before, 'etcd unchanged')
  })

  it('the peer port admits only member peer certificates, not a client certificate of the same CA', async () => {
    const peerUrl = parseYaml(readFileSync(etcd.configFiles[0] as string, 'utf8'))['listen-peer-urls'] as string
    const peer: ClientFiles = {commonName: identity.etcdPeer, certFile: join(pki.dir, 'member-s2-peer.crt'), keyFile: join(pki.dir, 'member-s2-peer.key')}
    assert.equal(await httpsGet(`${peerUrl}/members`, peer), 200, "a member's peer certificate is admitted")
    const serve = await httpsGet(`${peerUrl}/members`, await files(identity.serve('s1')))
    assert.notEqual(serve, 200, 'a serve certificate is not')
    const admin = await httpsGet(`${peerUrl}/members`, await files(identity.admin))
    assert.notEqual(admin, 200, "nor the operator's")
    assert.ok(readFileSync(etcd.logFiles[0] as string, 'utf8').includes('client certificate authentication failed'), 'etcd logs the refusal')
  })
})

describe('etcd RBAC: configureAccess', {concurrency: false}, () => {
  it('the first run creates the roles and users and enables auth', async () => {
    const root = await storeAs(identity.root)
    const report = await configureAccess(root, PLAN)
    outputs.push(JSON.stringify(report))
    assert.equal(report.authWasEnabled, false)
    assert.deepEqual(report.changes.map(describeChange), [
      'add role xcluster:xcluster:admin',
      'role xcluster:xcluster:admin: grant readwrite /xcluster/xcluster/*',
      'add role xcluster:xcluster:serve',
      'role xcluster:xcluster:serve: grant read /xcluster/xcluster/*',
      'role xcluster:xcluster:serve: grant readwrite /xcluster/xcluster/election/*',
      'role xcluster:xcluster:serve: grant readwrite /xcluster/xcluster/dhcp/leases/*',
      'role xcluster:xcluster:serve: grant readwrite /xcluster/xcluster/dhcp/by-mac/*',
      'role xcluster:xcluster:serve: grant readwrite /xcluster/xcluster/dhcp/discovered/*',
      'role xcluster:xcluster:serve: grant readwrite /xcluster/xcluster/dhcp/enlisted/*',
      'add user root (certificate login only)',
      'user root: grant role root',
      'add user xcluster-admin (certificate login only)',
      'user xcluster-admin: grant role xcluster:xcluster:admin',
      'add user xcluster-serve-s1 (certificate login only)',
      'user xcluster-serve-s1: grant role xcluster:xcluster:serve',
      'add user xcluster-serve-s2 (certificate login only)',
      'user xcluster-serve-s2: grant role xcluster:xcluster:serve',
      'enable etcd authentication',
    ])
    const log = readFileSync(etcd.logFiles[0] as string, 'utf8')
    assert.match(log, /"msg":"enabled authentication"/, 'etcd itself reports auth on')
    const roles = etcdctl(await files(identity.root), 'user', 'get', identity.serve('s1'))
    assert.match(roles.stdout, /Roles: xcluster:xcluster:serve/)
    const perms = etcdctl(await files(identity.root), 'role', 'get', 'xcluster:xcluster:serve')
    assert.match(perms.stdout, /KV Read:\n\s+\[\/xcluster\/xcluster\/, \/xcluster\/xcluster0\) \(prefix \/xcluster\/xcluster\/\)/)
    assert.doesNotMatch(perms.stdout, /\/spec|hostkeys/)
  })

  it("a re-run changes nothing: it says so, and etcd's auth revision does not move", async () => {
    const root = await storeAs(identity.root)
    const before = await authRevision()
    const report = await configureAccess(root, PLAN)
    outputs.push(JSON.stringify(report))
    assert.deepEqual(report.changes, [])
    assert.equal(report.authWasEnabled, true)
    assert.equal(await authRevision(), before)
  })

  it('a dry run reports what would change and changes nothing', async () => {
    const root = await storeAs(identity.root)
    const before = await authRevision()
    const report = await configureAccess(root, {...PLAN, serve: [...PLAN.serve, identity.serve('s3')]}, {dryRun: true})
    assert.deepEqual(report.changes.map(describeChange), ['add user xcluster-serve-s3 (certificate login only)', 'user xcluster-serve-s3: grant role xcluster:xcluster:serve'])
    assert.equal(await authRevision(), before)
  })

  it('only root may change users and roles: the operator is told how', async () => {
    const admin = await storeAs(identity.admin)
    await assert.rejects(configureAccess(admin, PLAN), refusedWith('ETCD_ACCESS_NEEDS_ROOT'))
    await assert.rejects(configureAccess(admin, {admins: [], serve: []}), refusedWith('USAGE'), 'a plan without an admin')
    await assert.rejects(configureAccess(admin, {admins: [identity.admin], serve: ['etcd-peer']}), refusedWith('USAGE'), 'a member name as a user')
  })
})

describe('what each identity may do', {concurrency: false}, () => {
  let specFile: string

  it('the operator applies the spec and lists nodes with the CLI over TLS', async () => {
    specFile = join(dir, 'spec.yaml')
    writeSpec(specFile, specBase(ROOT), loggedService('svc', join(dir, 'svc.log'), 2))
    const applied = await cli(['config', 'apply', '-f', specFile, '--yes'], identity.admin)
    assert.equal(applied.code, 0, applied.stderr)
    const list = await cli(['node', 'list', '--json'], identity.admin)
    assert.equal(list.code, 0, list.stderr)
    assert.ok(list.json<{name: string}[]>().some((n) => n.name === 's1'))
  })

  it('the operator reads and writes anything under the cluster prefix, also with etcdctl, and nothing outside it', async () => {
    const admin = await storeAs(identity.admin)
    await admin.put(admin.keys.hostKey('s1'), {fingerprints: ['SHA256:test']})
    assert.deepEqual((await admin.getJson(admin.keys.hostKey('s1')))?.value, {fingerprints: ['SHA256:test']})
    const adminFiles = await files(identity.admin)
    const put = etcdctl(adminFiles, 'put', '/xcluster/xcluster/runs/etcdctl-test', '{"by":"etcdctl"}')
    assert.equal(put.code, 0, put.stderr)
    const get = etcdctl(adminFiles, 'get', '/xcluster/xcluster/runs/etcdctl-test', '--print-value-only')
    assert.equal(get.stdout.trim(), '{"by":"etcdctl"}')
    assert.equal(etcdctl(adminFiles, 'del', '/xcluster/xcluster/runs/etcdctl-test').code, 0)
    const outside = etcdctl(adminFiles, 'put', '/elsewhere', 'x')
    assert.notEqual(outside.code, 0)
    assert.match(outside.stderr, /permission denied/)
    await assert.rejects(admin.put('/xcluster/other/spec', {}), refusedWith('ETCD_PERMISSION_DENIED'), "another cluster's prefix")
  })

  it('a serve identity campaigns with a real serve daemon: lease, leader key, history, resignation', async () => {
    const daemon = new Daemon('s1', ['svc'], etcd.etcdFlag, join(dir, 'serve-s1.err'), [], tlsEnv(await files(identity.serve('s1')))).start()
    const admin = await storeAs(identity.admin)
    try {
      const elected = await until('the serve daemon elected', () => daemon.events.find((e) => e.event === 'elected'), 20_000)
      const leader = await admin.call('leader', (c) => c.get(admin.keys.electionLeader('svc')).exec())
      assert.equal(leader.kvs.length, 1)
      assert.notEqual(String(leader.kvs[0]?.lease), '0', "the leader key is held under the daemon's lease")
      assert.equal(String(leader.kvs[0]?.create_revision), elected.token)
      await until('the service started', () => readEvents(join(dir, 'svc.log')).find((e) => e.kind === 'start'))
      daemon.signal('SIGTERM')
      await daemon.wait()
      assert.equal(daemon.proc.exitCode, 0, readFileSync(join(dir, 'serve-s1.err'), 'utf8'))
      const failed = daemon.events.filter((e) => /failed|denied/.test(e.event) || /denied/i.test(JSON.stringify(e)))
      assert.deepEqual(failed, [], 'no step was refused')
      assert.ok(daemon.events.some((e) => e.event === 'resigned'))
      assert.equal(await admin.getJson(admin.keys.electionLeader('svc')), undefined, 'the seat is released')
      const history = await admin.listJson<{event: string}>(admin.keys.electionHistoryPrefix('svc'))
      assert.deepEqual(
        history.map((h) => h.value.event),
        ['elected', 'resigned'],
      )
    } finally {
      await daemon.stop('SIGKILL')
      outputs.push(readFileSync(join(dir, 'serve-s1.err'), 'utf8'))
    }
  })

  it('a serve identity grants, keeps alive and revokes a lease holding an election key', async () => {
    const serve = await storeAs(identity.serve('s2'))
    const key = serve.keys.electionCandidate('svc', 's2')
    const lease = serve.client.lease(5, {autoKeepAlive: false})
    await lease.grant()
    await lease.put(key).value('{"node":"s2"}')
    await lease.keepaliveOnce()
    assert.ok(await serve.getJson(key))
    await lease.revoke()
    assert.equal(await serve.getJson(key), undefined, 'revoked with its key')
  })

  it('a serve identity writes DHCP leases, the MAC index and discovered MACs with the real allocator', async () => {
    const serve = await storeAs(identity.serve('s1'))
    const allocator = new LeaseAllocator(serve, {serverId: '10.0.0.2', unknown: 'discover'})
    await allocator.start()
    try {
      const offer = await allocator.offer({mac: MAC_C1})
      assert.ok(offer)
      const committed = await allocator.commit({mac: MAC_C1}, offer.ip)
      assert.equal(committed?.ok, true, JSON.stringify(committed))
      assert.ok(await allocator.offer({mac: UNKNOWN_MAC}))
    } finally {
      await allocator.stop()
    }
    const admin = await storeAs(identity.admin)
    const leases = await admin.listJson<{mac: string}>(admin.keys.leasesPrefix())
    assert.ok(leases.some((l) => l.value.mac === MAC_C1))
    assert.ok(await admin.getJson(admin.keys.leaseByMac(MAC_C1)))
    assert.ok(await admin.getJson(admin.keys.discovered(UNKNOWN_MAC)))
  })

  it('a serve identity cannot write the spec, nodes, MACs, host-key pins, runs, certificates, or outside the cluster', async () => {
    const serve = await storeAs(identity.serve('s1'))
    const k = serve.keys
    const before = await everything()
    for (const key of [k.spec(), k.node('s1'), k.mac(MAC_C1), k.hostKey('s1'), k.run('evil'), k.certAuthority(), k.issuedCert('evil'), '/xcluster/other/spec', '/elsewhere']) {
      await assert.rejects(serve.put(key, {evil: true}), refusedWith('ETCD_PERMISSION_DENIED'), key)
    }
    await assert.rejects(serve.delete(k.spec()), refusedWith('ETCD_PERMISSION_DENIED'))
    await assert.rejects(serve.transaction().put(k.lease('10.0.0.60'), {}).put(k.hostKey('s2'), {}).commit(), refusedWith('ETCD_PERMISSION_DENIED'), 'one forbidden key refuses the whole transaction')
    const etcdctlPut = etcdctl(await files(identity.serve('s1')), 'put', '/xcluster/xcluster/hostkeys/s1', 'evil')
    assert.notEqual(etcdctlPut.code, 0)
    assert.match(etcdctlPut.stderr, /permission denied/)
    const changed = join(dir, 'spec-changed.yaml')
    writeSpec(changed, specBase(ROOT), loggedService('svc', join(dir, 'svc.log'), 2) + loggedService('other', join(dir, 'other.log'), 2))
    const applied = await cli(['config', 'apply', '-f', changed, '--yes'], identity.serve('s1'))
    assert.equal(applied.code, 3, applied.stderr)
    assert.match(applied.stderr, /ETCD_PERMISSION_DENIED/)
    assert.match(applied.stderr, /identity "xcluster-serve-s1"/)
    assert.deepEqual(await everything(), before, 'etcd unchanged')
  })

  it('a certificate of the CA whose identity is no etcd user reads nothing', async () => {
    const stranger = await storeAs('stranger')
    await assert.rejects(stranger.getJson(stranger.keys.spec()), refusedWith('ETCD_PERMISSION_DENIED'))
  })

  it('a node left out of the plan is cut off at once; its certificate is still valid TLS', async () => {
    const root = await storeAs(identity.root)
    const report = await configureAccess(root, {...PLAN, serve: [identity.serve('s1')]})
    assert.deepEqual(report.changes.map(describeChange), ['user xcluster-serve-s2: revoke role xcluster:xcluster:serve'])
    const s2 = await storeAs(identity.serve('s2'))
    await assert.rejects(s2.getJson(s2.keys.spec()), refusedWith('ETCD_PERMISSION_DENIED'))
    await assert.rejects(s2.put(s2.keys.lease('10.0.0.61'), {}), refusedWith('ETCD_PERMISSION_DENIED'))
    assert.deepEqual((await configureAccess(root, {...PLAN, serve: [identity.serve('s1')]})).changes, [], 'and that is stable')
  })
})

describe('the CA in etcd, and no private key anywhere in clear', {concurrency: false}, () => {
  it('stores the CA create-only, its key sealed; loads it back only with the cluster secret', async () => {
    const admin = await storeAs(identity.admin)
    const secret = ClusterSecret.generate()
    assert.deepEqual(await saveCa(admin, pki.ca, secret), {stored: true})
    caSecret = secret
    assert.deepEqual(await saveCa(admin, pki.ca, secret), {stored: false}, 'the same CA again: no change')
    const before = await everything()
    const other = await createTestPki(join(dir, 'pki-2'))
    await assert.rejects(saveCa(admin, other.ca, secret), refusedWith('CA_EXISTS'))
    assert.deepEqual(await everything(), before, 'a different CA is refused, etcd unchanged')
    const loaded = await loadCa(admin, secret)
    assert.equal(loaded.key.exportPem(), pki.ca.key.exportPem())
    await assert.rejects(loadCa(admin, ClusterSecret.generate()), refusedWith('SECRET_MISMATCH'))
    const server = await issueCertificate(loaded, {commonName: 'etcd-server-s9', sans: ['s9', '10.0.0.9'], profile: 'server', days: 30})
    const summary = await saveIssuedCertificate(admin, 'etcd-server-s9', server, {secret, keepKey: true})
    outputs.push(JSON.stringify(summary), JSON.stringify(await listIssuedCertificates(admin)), JSON.stringify(server), JSON.stringify(loaded))
    assert.equal(summary.hasKey, true)
    assert.equal((await loadIssuedCertificate(admin, 'etcd-server-s9', secret)).key.exportPem(), server.key.exportPem())
    await assert.rejects(loadIssuedCertificate(admin, 'etcd-server-s9', ClusterSecret.generate()), refusedWith('SECRET_MISMATCH'))
    await assert.rejects(saveIssuedCertificate(admin, 'etcd-server-s9', server), refusedWith('CERT_EXISTS'))
    const serve = await storeAs(identity.serve('s1'))
    assert.equal(await loadTrustBundle(serve), pki.ca.certPem, 'every identity can read the CA certificate it trusts')
    await assert.rejects(loadCa(serve, ClusterSecret.generate()), refusedWith('SECRET_MISMATCH'), 'a serve daemon may read the sealed key, not open it')
  })

  it('etcd snapshot save by the operator: RBAC gives snapshots to root alone, so a root certificate is minted from the CA for it and forgotten', async () => {
    assert.ok(caSecret, 'the CA is stored in etcd by the test before')
    const pkiDir = join(dir, 'operator-pki')
    const runtime = join(dir, 'runtime')
    mkdirSync(runtime, {mode: 0o700})
    const env = {...tlsEnv(await files(identity.admin)), XCLUSTER_PKI_DIR: pkiDir, XDG_RUNTIME_DIR: runtime}
    const file = join(dir, 'rbac-backup.db')
    // Without the cluster secret there is no way to root: refused, with the way out, and no file.
    const refused = await xcluster(['etcd', 'snapshot', 'save', file, '--json'], {env})
    outputs.push(refused.stdout, refused.stderr)
    assert.equal(refused.code, 3, refused.stdout + refused.stderr)
    assert.equal(refused.json<{error: {code: string}}>().error.code, 'ETCD_ROOT_UNAVAILABLE')
    assert.ok(!existsSync(file) && !existsSync(`${file}.part`), 'nothing written')
    writeClusterSecret(join(pkiDir, 'xcluster', 'cluster.secret'), caSecret)
    const saved = await xcluster(['etcd', 'snapshot', 'save', file, '--json'], {env})
    outputs.push(saved.stdout, saved.stderr)
    assert.equal(saved.code, 0, saved.stdout + saved.stderr)
    const facts = saved.json<{revision: number; keys: number; member: string}>()
    assert.ok(facts.revision > 0 && facts.keys > 0, JSON.stringify(facts))
    const status = JSON.parse(spawnSync(etcdctlBin, ['snapshot', 'status', file, '-w', 'json'], {encoding: 'utf8'}).stdout) as {revision: number}
    assert.equal(status.revision, facts.revision, "etcdctl reads the operator's snapshot")
    assert.deepEqual(readdirSync(join(runtime, settings.bootstrap.mintedDirName)), [], 'the minted root certificate is forgotten')
  })

  it('no value in etcd and no output of this file holds a private key', async () => {
    const values = Object.entries(await everything())
    assert.ok(
      values.some(([k]) => k.endsWith('/certs/ca')),
      'the CA is there to be checked',
    )
    const keysInClear = [pki.ca.key.exportPem(), ...['s1', 's2', 's3'].map((m) => readFileSync(join(pki.dir, `member-${m}-server.key`), 'utf8'))]
    const bodies = keysInClear.map((pem) => pem.replace(/-----[A-Z ]+-----|\s/g, '').slice(40, 100))
    for (const [key, value] of values) {
      assert.doesNotMatch(value, /PRIVATE KEY/, key)
      for (const body of bodies) assert.ok(!value.includes(body), `${key} holds no key material`)
    }
    const logs = etcd.logFiles.map((f) => readFileSync(f, 'utf8'))
    for (const out of [...outputs, ...logs]) {
      assert.doesNotMatch(out, /PRIVATE KEY/)
      for (const body of bodies) assert.ok(!out.includes(body))
    }
    assert.ok(outputs.length > 10, `the outputs were collected (${outputs.length})`)
  })
})
