/**
 * `xcluster frontend sync` as an operator runs it, against a frontend node reached over real SSH
 * (a sandbox host: real sshd, its own namespaces, every write landing in an overlay) running
 * Debian's real nginx: the certificates, keys and site etcd describes land there with their modes,
 * nginx serves the certificate (checked with openssl s_client), a renewed certificate is served
 * after the next sync while a connection opened before the reload still gets its answer, and a
 * certificate nginx refuses is put back: the files stay as they were and the old one keeps serving.
 */
import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {createCa, issueCertificate, type CertificateAuthority} from '../../src/lib/certs/authority.js'
import type {CertificateView} from '../../src/lib/certs/operator.js'
import {adminTlsPaths} from '../../src/lib/certs/paths.js'
import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {saveCa, saveIssuedCertificate, type StoredCertificate} from '../../src/lib/certs/store.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {FrontendSyncResult} from '../../src/lib/frontend/sync.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {Daemon, until} from '../helpers/election-harness.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSandboxHost, type SandboxHost} from '../helpers/sandbox-host.js'
import {requireTool} from '../helpers/tools.js'

const F1 = '10.0.0.71'
const PORT = 8443
const TLS_DIR = '/etc/xcluster/tls'
const SITE = '/etc/nginx/conf.d/xcluster-frontends.conf'
const RATHOLE = '/etc/xcluster/frontend/rathole-server.toml'
/** The mutual-TLS endpoint's public port, and where its clients' certificates are written (inside the sandbox). */
const API_PORT = 9443
const CLIENTS = '/root/xct-clients'

let etcd: TestEtcd
let store: EtcdStore
let host: SandboxHost
let dir: string
let pki: string
let secret: ClusterSecret
let ca: CertificateAuthority
const outputs: string[] = []

/** The CLI inside the sandbox's namespaces (where f1's address answers), against the test etcd. */
async function cli(args: string[]): Promise<CliResult> {
  const r = await xcluster([...args, '--etcd', etcd.unixEndpoint!], {wrap: host.wrap, env: {XCLUSTER_PKI_DIR: pki}})
  outputs.push(r.stdout, r.stderr)
  return r
}

async function ok(args: string[]): Promise<CliResult> {
  const r = await cli(args)
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`)
  return r
}

/** A command in the sandbox (its mount namespace: the node's files; its network: f1's address). */
function inSandbox(argv: string[], input?: string) {
  return spawnSync(host.wrap[0]!, [...host.wrap.slice(1), ...argv], {encoding: 'utf8', timeout: 30_000, ...(input === undefined ? {} : {input})})
}

/** The serial of the certificate nginx presents for the name, verified against the cluster CA. */
function servedSerial(): string {
  const r = inSandbox([
    'sh',
    '-c',
    `openssl s_client -connect ${F1}:${PORT} -servername www.example.org -CAfile ${TLS_DIR}/ca.crt -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial`,
  ])
  assert.equal(r.status, 0, `s_client: ${r.stdout}${r.stderr}`)
  return r.stdout.trim().split('=')[1]!.toLowerCase()
}

/** Path, mode, owner and hash of each file the sync manages, as the node has them. */
function nodeFiles(): string {
  const r = inSandbox([
    'sh',
    '-c',
    `cd / && for f in ${TLS_DIR}/ca.crt ${TLS_DIR}/certs/www.crt ${TLS_DIR}/private/www.key ${SITE} ${RATHOLE}; do echo "$f $(stat -c '%a %U:%G' $f) $(sha256sum < $f)"; done`,
  ])
  assert.equal(r.status, 0, r.stderr)
  return r.stdout
}

/** What the mutual-TLS endpoint answers a request over a connection with CLIENT's certificate, or none. */
function apiAnswer(client?: string): string {
  const auth = client ? `-cert ${CLIENTS}/${client}.crt -key ${CLIENTS}/${client}.key` : ''
  const r = inSandbox([
    'sh',
    '-c',
    `printf 'GET / HTTP/1.0\\r\\nHost: api.example.org\\r\\n\\r\\n' | openssl s_client -connect ${F1}:${API_PORT} -servername api.example.org -CAfile ${TLS_DIR}/ca.crt ${auth} -quiet 2>/dev/null`,
  ])
  return r.stdout
}

const certOf = async (name: string) => (await cli(['cert', 'show', name, '--json'])).json<CertificateView & {certPem: string}>()

describe('xcluster frontend sync: certificates and the site onto a frontend over SSH, nginx -t before any reload', {concurrency: false}, () => {
  before(async () => {
    requireTool('nginx', 'nginx')
    requireTool('openssl', 'openssl')
    etcd = await startEtcd({unixSocket: true, dir: mkdtempSync(join('/dev/shm', 'xct-fsync-etcd-'))})
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    host = await startSandboxHost({tag: 'fsync', addresses: [F1]})
    dir = mkdtempSync(join('/dev/shm', 'xct-fsync-spec-'))
    pki = mkdtempSync(join('/dev/shm', 'xct-fsync-pki-'))
    process.env.XCLUSTER_PKI_DIR = pki
    secret = ClusterSecret.generate()
    writeClusterSecret(adminTlsPaths('xcluster').secret, secret)
    ca = await createCa({cluster: 'xcluster'})
    await saveCa(store, ca, secret)
    const spec = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')
      .replace('key: ~/.ssh/id_ed25519', `key: ${host.clientKeyPath}`)
      .replace(/(\{name: f1, mac: "[^"]+")(, ip: [0-9.]+)?\}/, `$1, ip: ${F1}}`)
    writeFileSync(join(dir, 'xcluster.yaml'), spec)
    await ok(['config', 'apply', '-f', join(dir, 'xcluster.yaml')])
    for (const name of ['f1', 's1']) {
      const n = (await store.getJson<NodeRecord>(store.keys.node(name)))!.value
      await store.put(store.keys.node(name), {...n, state: 'ready'})
    }
    await store.put(store.keys.hostKey('f1'), {fingerprints: [host.hostFingerprint], pinnedAt: new Date().toISOString(), source: 'registration'})
    await ok(['cert', 'issue', 'www', '--san', 'www.example.org', '--days', '30'])
    await ok(['frontend', 'expose', 'www', '--to', '10.0.0.99:8080', '--port', String(PORT), '--cert', 'www'])
  })

  after(async () => {
    await Daemon.killAll()
    await store?.close()
    await host?.stop()
    await etcd?.stop()
    for (const d of [dir, pki]) if (d) rmSync(d, {recursive: true, force: true})
  })

  it('--dry-run names the files that differ from etcd and changes nothing on the node', async () => {
    const before = host.snapshot()
    const r = await ok(['frontend', 'sync', '--dry-run', '--json'])
    const [f1] = r.json<FrontendSyncResult>().nodes
    assert.deepEqual(f1?.changed.sort(), [RATHOLE, SITE, `${TLS_DIR}/ca.crt`, `${TLS_DIR}/certs/www.crt`, `${TLS_DIR}/private/www.key`].sort())
    assert.equal(f1?.reloaded, false)
    assert.deepEqual(host.snapshot(), before, '--dry-run wrote on the node')
    assert.notEqual(inSandbox(['pgrep', '-x', 'nginx']).status, 0, 'nginx was not started')
  })

  it('installs the files with their modes, nginx -t passes, nginx serves the certificate from etcd; a re-run changes nothing', async () => {
    const r = await ok(['frontend', 'sync'])
    assert.match(r.stdout, /^f1: changed .*; nginx reloaded\.$/m)
    const files = nodeFiles()
    for (const [path, mode] of [
      [`${TLS_DIR}/certs/www.crt`, '644'],
      [`${TLS_DIR}/private/www.key`, '600'],
      [SITE, '644'],
      [RATHOLE, '600'],
    ])
      assert.match(files, new RegExp(`^${path} ${mode} root:root [0-9a-f]{64}`, 'm'))
    const www = await certOf('www')
    assert.equal(servedSerial(), www.serial)
    const key = inSandbox(['openssl', 'pkey', '-in', `${TLS_DIR}/private/www.key`, '-pubout'])
    const pub = inSandbox(['openssl', 'x509', '-in', `${TLS_DIR}/certs/www.crt`, '-noout', '-pubkey'])
    assert.equal(key.stdout, pub.stdout, 'the key is the certificate’s')

    const before = host.snapshot()
    const again = await ok(['frontend', 'sync', '--json'])
    assert.deepEqual(again.json<FrontendSyncResult>().nodes, [{node: 'f1', changed: [], reloaded: false}])
    assert.deepEqual(host.snapshot(), before, 'a re-run wrote on the node')
  })

  it('after cert renew, the next sync serves the new certificate, and a connection opened before the reload still gets its answer', async () => {
    const old = await certOf('www')
    // A TLS connection held open across the reload: its request is sent only afterwards.
    const held = spawn(host.wrap[0]!, [...host.wrap.slice(1), 'openssl', 's_client', '-connect', `${F1}:${PORT}`, '-servername', 'www.example.org', '-CAfile', `${TLS_DIR}/ca.crt`, '-quiet'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let answer = ''
    let handshake = ''
    held.stdout.on('data', (d: Buffer) => (answer += d.toString()))
    held.stderr.on('data', (d: Buffer) => (handshake += d.toString()))
    try {
      // s_client prints the chain it verified once the handshake is done.
      for (const deadline = Date.now() + 10_000; !/depth=0 .*\n?verify return:1/.test(handshake); await new Promise((r) => setTimeout(r, 50))) {
        assert.ok(Date.now() < deadline && held.exitCode === null, `the held connection is up: ${handshake}`)
      }
      await ok(['cert', 'renew', 'www'])
      const r = await ok(['frontend', 'sync', '--json'])
      assert.deepEqual(r.json<FrontendSyncResult>().nodes[0]?.changed.sort(), [`${TLS_DIR}/certs/www.crt`, `${TLS_DIR}/private/www.key`])
      const renewed = await certOf('www')
      assert.notEqual(renewed.serial, old.serial)
      assert.equal(servedSerial(), renewed.serial)
      held.stdin.write('GET / HTTP/1.1\r\nHost: www.example.org\r\nConnection: close\r\n\r\n')
      for (const deadline = Date.now() + 10_000; !/HTTP\/1\.1 \d{3}/.test(answer); await new Promise((r) => setTimeout(r, 50)))
        assert.ok(Date.now() < deadline, `an answer on the old connection: ${answer}`)
      // No Rathole tunnel listens behind it: nginx itself answers 502, on the connection it accepted before the reload.
      assert.match(answer, /HTTP\/1\.1 502/)
    } finally {
      held.kill()
    }
  })

  it('a certificate nginx refuses (not its key’s) is put back: the node’s files stay as they were and the old certificate keeps serving', async () => {
    const serving = await certOf('www')
    const filesBefore = nodeFiles()
    // Another certificate's PEM under www's record, whose sealed key is www's: nginx -t refuses the pair.
    const stranger = await issueCertificate(await createCa({cluster: 'xcluster'}), {commonName: 'www', sans: ['www.example.org'], profile: 'server'})
    const stored = (await store.getJson<StoredCertificate>(store.keys.issuedCert('www')))!.value
    await store.put(store.keys.issuedCert('www'), {...stored, certPem: stranger.certPem})
    try {
      const r = await cli(['frontend', 'sync'])
      assert.equal(r.code, 4, r.stdout + r.stderr)
      assert.match(r.stdout + r.stderr, /nginx on f1 refused the new files, which were put back as they were \(nginx keeps serving the old ones\): .*key values mismatch/)
      assert.equal(nodeFiles(), filesBefore)
      assert.equal(inSandbox(['sh', '-c', `ls ${TLS_DIR}/certs ${TLS_DIR}/private | grep -c xcluster-`]).stdout.trim(), '0', 'no staged or saved copy is left')
      assert.equal(servedSerial(), serving.serial)
    } finally {
      await store.put(store.keys.issuedCert('www'), stored)
    }
  })

  it('refused with nothing changed: a node that is not a frontend, an unknown node', async () => {
    for (const [args, message] of [
      [['s1'], /Error \[FRONTEND_NOT_FOR_NODE\]: s1 is a core node, not a frontend/],
      [['f9'], /Unknown node: f9/],
    ] as const) {
      const before = [await store.snapshot(), host.snapshot()]
      const r = await cli(['frontend', 'sync', ...args])
      assert.equal(r.code, 3, r.stderr)
      assert.match(r.stderr, message)
      assert.deepEqual([await store.snapshot(), host.snapshot()], before)
    }
  })

  it('--client-auth: nginx serves a client holding a certificate of the cluster CA, and refuses it by the CRL once it is revoked and synced', async () => {
    assert.equal(inSandbox(['mkdir', '-p', CLIENTS]).status, 0)
    await ok(['cert', 'issue', 'api', '--san', 'api.example.org', '--days', '30'])
    for (const client of ['alice', 'bob']) await ok(['cert', 'issue', client, '--profile', 'client', '--out', CLIENTS])
    const refused = await cli(['frontend', 'expose', 'nocert', '--to', '10.0.0.99:8082', '--port', '9444', '--client-auth'])
    assert.equal(refused.code, 2, refused.stderr)
    assert.match(refused.stderr, /--client-auth needs --cert/)
    await ok(['frontend', 'expose', 'api', '--to', '10.0.0.99:8081', '--port', String(API_PORT), '--cert', 'api', '--client-auth'])
    await ok(['frontend', 'sync'])
    // Let in, nginx proxies to the tunnel, where nothing listens: its own 502.
    assert.match(apiAnswer('alice'), /^HTTP\/1\.1 502/)
    assert.match(apiAnswer(), /^HTTP\/1\.1 400[\s\S]*No required SSL certificate was sent/)
    assert.doesNotMatch(inSandbox(['cat', SITE]).stdout, /ssl_crl/, 'nothing revoked yet: no CRL to check')

    await ok(['cert', 'revoke', 'alice', '--yes'])
    const sync = await ok(['frontend', 'sync', '--json'])
    assert.deepEqual(sync.json<FrontendSyncResult>().nodes[0]?.changed.sort(), [SITE, `${TLS_DIR}/crl.pem`].sort())
    assert.match(inSandbox(['cat', SITE]).stdout, new RegExp(`ssl_crl ${TLS_DIR}/crl.pem;`))
    // A reload is graceful: the workers of the old configuration answer until the new ones take over.
    await until('nginx refusing the revoked client', () => /^HTTP\/1\.1 400[\s\S]*The SSL certificate error/.test(apiAnswer('alice')), 10_000, 100)
    assert.match(apiAnswer('bob'), /^HTTP\/1\.1 502/, 'another client still gets through')
  })

  it('serve --certs on a core node (the cluster SSH key at hand): the certs leader renews a due certificate and puts it on the frontend, no operator involved', async () => {
    // The sandbox doubles as a core node: the cluster's SSH key where bootstrap puts it.
    const keyPath = settings.bootstrap.nodeClusterKey
    const placed = inSandbox(['sh', '-c', `mkdir -p ${dirname(keyPath)} && cp ${host.clientKeyPath} ${keyPath} && chmod 600 ${keyPath}`])
    assert.equal(placed.status, 0, placed.stderr)
    // www falls due: a one-hour certificate in the last third of its life.
    const stored = (await store.getJson<StoredCertificate>(store.keys.issuedCert('www')))!.value
    const life = 3_600_000
    const due = await issueCertificate(ca, {commonName: 'www', sans: stored.sans, profile: 'server', days: life / 86_400_000, now: new Date(Date.now() - life + 60_000)})
    await saveIssuedCertificate(store, 'www', due, {secret, keepKey: true, replace: true})
    const served = servedSerial()
    const daemon = new Daemon('s1', [], etcd.unixEndpoint!, undefined, host.wrap, {}, ['--certs', '--secret-file', adminTlsPaths('xcluster').secret]).start()
    try {
      const renewed = await until(
        'www renewed by the certs leader',
        async () => {
          const now = (await store.getJson<StoredCertificate>(store.keys.issuedCert('www')))!.value
          return now.renewedBy?.node === 's1' ? now : undefined
        },
        30_000,
        200,
      )
      assert.notEqual(renewed.serial, due.serial)
      await until('nginx serving the renewed certificate', () => servedSerial() === renewed.serial, 30_000, 250)
      assert.notEqual(renewed.serial, served)
      // Its log line may reach us after the handshake that showed the new certificate.
      await until('the sync logged', () => daemon.events.some((e) => e.event === 'frontends-synced'), 5_000, 50)
      // A revocation reaches the frontends with nobody syncing: the leader puts the new CRL there.
      await ok(['cert', 'revoke', 'bob', '--yes'])
      await until('nginx refusing bob by the CRL', () => /^HTTP\/1\.1 400[\s\S]*The SSL certificate error/.test(apiAnswer('bob')), 30_000, 250)
      // A frontend that becomes ready gets its site from the leader, nobody syncing: f1 as if new.
      const site = inSandbox(['cat', SITE]).stdout
      assert.equal(inSandbox(['rm', SITE]).status, 0)
      const f1 = (await store.getJson<NodeRecord>(store.keys.node('f1')))!.value
      await store.put(store.keys.node('f1'), {...f1, state: 'drained'})
      await store.put(store.keys.node('f1'), {...f1, state: 'ready'})
      await until('f1 given its site again', () => inSandbox(['cat', SITE]).stdout === site, 30_000, 250)
    } finally {
      await daemon.stop('SIGTERM')
    }
  })

  it('no output holds a private key or a Rathole token', async () => {
    const token = (await store.listJson<{token: string}>(store.keys.frontendsPrefix()))[0]!.value.token
    assert.ok(outputs.length > 10)
    for (const text of outputs) {
      assert.doesNotMatch(text, /PRIVATE KEY/)
      assert.ok(!text.includes(token))
    }
  })
})
