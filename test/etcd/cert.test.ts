/**
 * `xcluster cert issue|list|show` as an operator runs them, against a real etcd holding the
 * cluster CA (its key sealed) and the cluster secret in the admin host's PKI directory: what is
 * issued is checked with OpenSSL itself (chain, SANs, usage, the key matching the certificate),
 * every refusal leaves etcd and the disk as they were, and no output nor etcd value ever holds a
 * private key in clear.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {createCa, issueCertificate} from '../../src/lib/certs/authority.js'
import type {CertificateView, IssueResult} from '../../src/lib/certs/operator.js'
import {adminTlsPaths} from '../../src/lib/certs/paths.js'
import type {RenewResult} from '../../src/lib/certs/renewal.js'
import type {RevokeResult} from '../../src/lib/certs/revocation.js'
import {ClusterSecret, readClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {loadCa, saveCa, saveIssuedCertificate} from '../../src/lib/certs/store.js'
import type {HealthReport} from '../../src/lib/health/types.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number}
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })

/** s_server prints ACCEPT once it listens. */
const listening = (server: ChildProcess): Promise<void> =>
  new Promise((resolve, reject) => {
    let seen = ''
    server.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes('ACCEPT')) resolve()
    })
    server.on('exit', (code) => reject(new Error(`openssl s_server exited (${code}) before listening: ${seen}`)))
  })

describe('xcluster cert: issue, list, show, revoke, renew and the CRL from the cluster CA', {concurrency: false}, () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let pki: string
  let out: string
  const outputs: string[] = []
  const cli = async (...args: string[]): Promise<CliResult> => {
    const r = await xcluster([...args, '--etcd', etcd.endpoint], {env: {XCLUSTER_PKI_DIR: pki}})
    outputs.push(r.stdout, r.stderr)
    return r
  }
  const openssl = (...args: string[]) => execFileSync('openssl', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  /** Every key and value of the whole keyspace: what a refusal must leave as it was. */
  const etcdState = async (): Promise<string[]> => {
    const res = await store.call('dump', (c) => c.kv.range({key: Buffer.from([0]), range_end: Buffer.from([0])}))
    return res.kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}@${kv.mod_revision}`)
  }
  const files = () => readdirSync(out).sort()

  before(async () => {
    requireTool('openssl', 'openssl')
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    pki = mkdtempSync(join(tmpdir(), 'xct-cert-pki-'))
    out = mkdtempSync(join(tmpdir(), 'xct-cert-out-'))
    process.env.XCLUSTER_PKI_DIR = pki
    const secret = ClusterSecret.generate()
    writeClusterSecret(adminTlsPaths('xcluster').secret, secret)
    await saveCa(store, await createCa({cluster: 'xcluster'}), secret)
  })

  after(async () => {
    await store?.close()
    await etcd?.stop()
    for (const dir of [pki, out]) if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('cert issue: a server certificate OpenSSL verifies against the CA, for the SANs given, its key 0600 and matching', async () => {
    const r = await cli('cert', 'issue', 'web', '--san', 'www.example.org', '--san', '10.0.0.80', '--days', '30', '--out', out, '--json')
    assert.equal(r.code, 0, r.stderr)
    const result = r.json<IssueResult>()
    assert.deepEqual(files(), ['ca.crt', 'web.crt', 'web.key'])
    assert.equal(statSync(join(out, 'web.key')).mode & 0o777, 0o600)
    assert.equal(openssl('verify', '-CAfile', join(out, 'ca.crt'), join(out, 'web.crt')).trim(), `${join(out, 'web.crt')}: OK`)
    assert.match(openssl('verify', '-CAfile', join(out, 'ca.crt'), '-purpose', 'sslserver', join(out, 'web.crt')), /: OK$/m)
    const text = openssl('x509', '-in', join(out, 'web.crt'), '-noout', '-text')
    assert.match(text, /DNS:www\.example\.org, IP Address:10\.0\.0\.80/)
    assert.match(text, /TLS Web Server Authentication/)
    assert.match(text, /Subject: CN ?= ?web/)
    assert.equal(openssl('x509', '-in', join(out, 'web.crt'), '-noout', '-pubkey'), openssl('pkey', '-in', join(out, 'web.key'), '-pubout'), 'the key is the certificate’s')
    // Valid for 30 days: past 29, not past 31.
    assert.doesNotThrow(() => openssl('x509', '-in', join(out, 'web.crt'), '-noout', '-checkend', String(29 * 86400)))
    assert.throws(() => openssl('x509', '-in', join(out, 'web.crt'), '-noout', '-checkend', String(31 * 86400)))
    assert.deepEqual(
      {name: result.certificate.name, sans: result.certificate.sans, profile: result.certificate.profile, hasKey: result.certificate.hasKey},
      {name: 'web', sans: ['www.example.org', '10.0.0.80'], profile: 'server', hasKey: true},
    )
    assert.equal(result.certificate.serial, openssl('x509', '-in', join(out, 'web.crt'), '-noout', '-serial').trim().split('=')[1]!.toLowerCase())
  })

  it('cert issue --profile client: clientAuth only, no SAN needed; without --out the key stays only sealed in etcd', async () => {
    const before = files()
    const r = await cli('cert', 'issue', 'backup-agent', '--profile', 'client', '--days', '2')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^Issued backup-agent \(client, serial [0-9a-f]+\) for backup-agent, valid until \S+ \(1 days\); its key is sealed in etcd\.$/m)
    assert.deepEqual(files(), before)
    const shown = await cli('cert', 'show', 'backup-agent', '--json')
    const pem = shown.json<{certPem: string}>().certPem
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], {input: pem, encoding: 'utf8'})
    assert.match(text, /TLS Web Client Authentication/)
    assert.doesNotMatch(text, /TLS Web Server Authentication/)
  })

  it('cert list: every certificate, soonest to expire first, with days left; as a table and --json', async () => {
    const listed = (await cli('cert', 'list', '--json')).json<CertificateView[]>()
    assert.deepEqual(
      listed.map((c) => [c.name, c.daysLeft, c.hasKey]),
      [
        ['backup-agent', 1, true],
        ['web', 29, true],
      ],
    )
    const table = await cli('cert', 'list')
    assert.equal(table.code, 0)
    assert.match(table.stdout, /^NAME\s+SANS\s+PROFILE\s+NOT AFTER\s+DAYS LEFT\s+STATUS\s+KEY\s+FROM$/m)
    // 29 of 30 days left: not yet in its last third, so not due.
    assert.match(table.stdout, /^web\s+www\.example\.org,10\.0\.0\.80\s+server\s+\S+\s+29\s+ok\s+sealed\s+cluster CA$/m)
  })

  it('cert show: the facts and the PEM of the file written, never the key', async () => {
    const r = await cli('cert', 'show', 'web')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^sans: +www\.example\.org, 10\.0\.0\.80$/m)
    assert.ok(r.stdout.includes(readFileSync(join(out, 'web.crt'), 'utf8').trimEnd()))
    const missing = await cli('cert', 'show', 'nope')
    assert.equal(missing.code, 3)
    assert.match(missing.stderr, /No certificate named "nope" in etcd/)
  })

  it('refused with nothing written: a name taken, a server without SAN, a bad name, days or profile, a missing --out', async () => {
    const cases: [string[], number, RegExp][] = [
      [['web', '--san', 'x.example.org', '--out', out], 3, /Error \[CERT_EXISTS\]: A certificate named "web" is already stored/],
      [['api', '--out', out], 2, /A server certificate needs at least one SAN/],
      [['Bad_Name', '--san', 'x'], 2, /Invalid certificate name: "Bad_Name"/],
      [['api', '--san', 'x', '--days', '0'], 2, /--days/],
      [['api', '--san', 'x', '--profile', 'admin'], 2, /--profile/],
      [['api', '--san', 'x', '--days', '5000'], 3, /would end after the CA does/],
      [['api', '--san', 'x', '--out', join(out, 'missing')], 2, /is not a directory/],
    ]
    for (const [args, exit, message] of cases) {
      const [etcdBefore, filesBefore] = [await etcdState(), files()]
      const r = await cli('cert', 'issue', ...args)
      assert.equal(r.code, exit, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message)
      assert.deepEqual(await etcdState(), etcdBefore, `${args.join(' ')} changed etcd`)
      assert.deepEqual(files(), filesBefore)
    }
  })

  it('cert revoke: the certificate marked and listed in a new CRL; OpenSSL, as a verifier and as a TLS client checking the CRL, refuses it and still takes the others', async () => {
    const api = await cli('cert', 'issue', 'api', '--san', '127.0.0.1', '--san', 'api.example.org', '--out', out)
    assert.equal(api.code, 0, api.stderr)
    const none = await cli('cert', 'crl')
    assert.equal(none.code, 3)
    assert.match(none.stderr, /has no revocation list yet[\s\S]*xcluster cert crl --refresh/)
    const before = await etcdState()
    const unasked = await cli('cert', 'revoke', 'web')
    assert.equal(unasked.code, 2, unasked.stderr)
    assert.match(unasked.stderr, /Refusing without confirmation[\s\S]*--yes/)
    assert.deepEqual(await etcdState(), before, 'an unconfirmed revoke changed etcd')

    const webSerial = (await cli('cert', 'show', 'web', '--json')).json<CertificateView>().serial
    const r = await cli('cert', 'revoke', 'web', '--reason', 'key-compromise', '--yes', '--json')
    assert.equal(r.code, 0, r.stderr)
    const revoked = r.json<RevokeResult>()
    assert.deepEqual([revoked.serial, revoked.reason, revoked.crl.number, revoked.crl.revoked], [webSerial, 'key-compromise', 1, 1])
    const crlFile = join(out, 'cluster.crl')
    const written = await cli('cert', 'crl', '--out', crlFile)
    assert.equal(written.code, 0, written.stderr)
    const crlText = openssl('crl', '-in', crlFile, '-noout', '-text')
    assert.match(crlText, new RegExp(`Serial Number: ${webSerial.toUpperCase()}`))
    assert.match(crlText, /Key Compromise/)
    assert.match(crlText, /X509v3 CRL Number: *\n *1\n/)
    const ca = join(out, 'ca.crt')
    const verify = (cert: string) => spawnSync('openssl', ['verify', '-crl_check', '-CAfile', ca, '-CRLfile', crlFile, cert], {encoding: 'utf8'})
    const refused = verify(join(out, 'web.crt'))
    assert.notEqual(refused.status, 0)
    assert.match(refused.stdout + refused.stderr, /certificate revoked/)
    assert.equal(verify(join(out, 'api.crt')).status, 0, verify(join(out, 'api.crt')).stderr)

    // A real TLS handshake: s_server presents each certificate, s_client checks the CRL.
    const handshake = async (name: string) => {
      const port = await freePort()
      const server = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', join(out, `${name}.crt`), '-key', join(out, `${name}.key`)], {stdio: ['pipe', 'pipe', 'pipe']})
      try {
        await listening(server)
        return spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', ca, '-CRL', crlFile, '-crl_check', '-verify_return_error', '-brief'], {
          input: '',
          encoding: 'utf8',
          timeout: 10_000,
        })
      } finally {
        server.kill()
      }
    }
    const toWeb = await handshake('web')
    assert.notEqual(toWeb.status, 0)
    assert.match(toWeb.stderr, /certificate revoked/)
    const toApi = await handshake('api')
    assert.equal(toApi.status, 0, toApi.stderr)
    assert.match(toApi.stderr, /Verification: OK/)

    const listed = (await cli('cert', 'list', '--json')).json<CertificateView[]>()
    assert.deepEqual(listed.find((c) => c.name === 'web')?.status, 'revoked')
    for (const [args, message] of [
      [['web', '--yes'], /Error \[CERT_REVOKED\]: The certificate "web" \(serial [0-9a-f]+\) was already revoked[\s\S]*xcluster cert renew web/],
      [['nope', '--yes'], /Error \[CERT_MISSING\]: No certificate named "nope"/],
    ] as const) {
      const state = await etcdState()
      const again = await cli('cert', 'revoke', ...args)
      assert.equal(again.code, 3, again.stderr)
      assert.match(again.stderr, message)
      assert.deepEqual(await etcdState(), state)
    }
  })

  it('cert renew NAME: a revoked certificate replaced by a new key and serial with the same names, which the CRL does not list', async () => {
    const old = (await cli('cert', 'show', 'web', '--json')).json<CertificateView & {certPem: string}>()
    const r = await cli('cert', 'renew', 'web', '--json')
    assert.equal(r.code, 0, r.stderr)
    const [renewed] = r.json<RenewResult>().certificates
    assert.equal(renewed?.action, 'renewed')
    const now = (await cli('cert', 'show', 'web', '--json')).json<CertificateView & {certPem: string}>()
    assert.notEqual(now.serial, old.serial)
    assert.equal(now.serial, renewed?.serial)
    assert.deepEqual([now.sans, now.profile, now.status, now.revoked], [old.sans, old.profile, 'ok', undefined])
    assert.ok(Date.parse(now.notAfter) - Date.parse(now.notBefore) >= 30 * 86_400_000, 'the validity it had')
    const crlFile = join(out, 'cluster.crl')
    assert.equal((await cli('cert', 'crl', '--out', crlFile)).code, 0)
    const certFile = join(out, 'web-renewed.crt')
    writeFileSync(certFile, now.certPem)
    const checked = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', join(out, 'ca.crt'), '-CRLfile', crlFile, certFile], {encoding: 'utf8'})
    assert.equal(checked.status, 0, checked.stdout + checked.stderr)
    assert.notEqual(openssl('x509', '-noout', '-pubkey', '-in', certFile), openssl('x509', '-noout', '-pubkey', '-in', join(out, 'web.crt')), 'a new key')
  })

  it('cert renew --all: only what is due (--before), --dry-run changes nothing; bad requests are refused with nothing changed', async () => {
    const before = await etcdState()
    const dry = await cli('cert', 'renew', '--all', '--before', '400d', '--dry-run', '--json')
    assert.equal(dry.code, 0, dry.stderr)
    assert.deepEqual(
      dry
        .json<RenewResult>()
        .certificates.map((c) => [c.name, c.action])
        .sort(),
      [
        ['api', 'would renew'],
        ['backup-agent', 'would renew'],
        ['web', 'would renew'],
      ],
    )
    assert.deepEqual(await etcdState(), before, '--dry-run changed etcd')
    const agent = (await cli('cert', 'show', 'backup-agent', '--json')).json<CertificateView>()
    const due = await cli('cert', 'renew', '--all', '--before', '2d', '--json')
    assert.equal(due.code, 0, due.stderr)
    assert.deepEqual(
      due
        .json<RenewResult>()
        .certificates.map((c) => [c.name, c.action, c.reason])
        .sort(),
      [
        ['api', 'skipped', 'not due'],
        ['backup-agent', 'renewed', undefined],
        ['web', 'skipped', 'not due'],
      ],
    )
    const after = (await cli('cert', 'show', 'backup-agent', '--json')).json<CertificateView>()
    assert.notEqual(after.serial, agent.serial)
    assert.equal(after.profile, 'client')

    const cases: [string[], number, RegExp][] = [
      [[], 2, /Name the certificates to renew, or give --all/],
      [['web', '--all'], 2, /Name the certificates to renew, or give --all \(not both\)/],
      [['web', '--before', '5d'], 2, /--before/],
      [['--all', '--before', 'soon'], 2, /--before soon is not a duration/],
      [['nope'], 3, /No certificate named "nope"/],
    ]
    for (const [args, exit, message] of cases) {
      const state = await etcdState()
      const bad = await cli('cert', 'renew', ...args)
      assert.equal(bad.code, exit, `${args.join(' ')}: ${bad.stderr}`)
      assert.match(bad.stderr, message)
      assert.deepEqual(await etcdState(), state, `${args.join(' ')} changed etcd`)
    }
  })

  it('health: a certificate near its end warns, one nearer fails, each with the renew command, which run as printed clears it; /metrics-style days left', async () => {
    const secret = readClusterSecret(adminTlsPaths('xcluster').secret)
    const ca = await loadCa(store, secret)
    const DAY = 86_400_000
    // Issued in the past, as a certificate that has lived most of its 60 days.
    for (const [name, left] of [
      ['near', 15],
      ['nearer', 3],
    ] as const) {
      const issued = await issueCertificate(ca, {commonName: name, sans: [`${name}.example.org`], profile: 'server', days: 60, now: new Date(Date.now() - (60 - left) * DAY)})
      await saveIssuedCertificate(store, name, issued, {secret, keepKey: true})
    }
    const health = async () => (await cli('health', '--json')).json<HealthReport>().checks.filter((c) => c.name.startsWith('cert:'))
    const checks = await health()
    const near = checks.find((c) => c.name === 'cert:near')
    const nearer = checks.find((c) => c.name === 'cert:nearer')
    assert.deepEqual([near?.status, near?.next], ['warn', 'xcluster cert renew near'])
    assert.deepEqual([nearer?.status, nearer?.next], ['fail', 'xcluster cert renew nearer'])
    assert.match(nearer?.observed ?? '', /^certificate nearer \(serial [0-9a-f]+\) valid until \S+ \(2 days left\)$/)
    assert.equal(checks.find((c) => c.name === 'cert:web')?.status, 'ok')
    assert.equal(checks.find((c) => c.name === 'cert:ca')?.status, 'ok')
    assert.equal(checks.find((c) => c.name === 'cert:crl')?.status, 'ok')
    for (const c of [near, nearer]) {
      const [, ...args] = (c?.next ?? '').split(' ')
      const ran = await cli(...args)
      assert.equal(ran.code, 0, ran.stderr)
    }
    const cleared = await health()
    assert.deepEqual(
      cleared.filter((c) => c.status !== 'ok').map((c) => c.name),
      [],
    )
  })

  it('no output of any cert command and no value in etcd holds a private key in clear', async () => {
    assert.ok(outputs.length > 10)
    for (const text of outputs) assert.doesNotMatch(text, /PRIVATE KEY/)
    const values = await etcdState()
    assert.ok(
      values.some((v) => v.includes('sealedKey')),
      'the keys are there, sealed',
    )
    for (const value of values) assert.doesNotMatch(value, /PRIVATE KEY/)
  })
})
