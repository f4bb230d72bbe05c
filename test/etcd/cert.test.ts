/**
 * `xcluster cert issue|list|show` as an operator runs them, against a real etcd holding the
 * cluster CA (its key sealed) and the cluster secret in the admin host's PKI directory: what is
 * issued is checked with OpenSSL itself (chain, SANs, usage, the key matching the certificate),
 * every refusal leaves etcd and the disk as they were, and no output nor etcd value ever holds a
 * private key in clear.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {createCa} from '../../src/lib/certs/authority.js'
import type {CertificateView, IssueResult} from '../../src/lib/certs/operator.js'
import {adminTlsPaths} from '../../src/lib/certs/paths.js'
import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {saveCa} from '../../src/lib/certs/store.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

describe('xcluster cert: issue, list and show from the cluster CA', {concurrency: false}, () => {
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
    assert.match(table.stdout, /^NAME\s+SANS\s+PROFILE\s+NOT AFTER\s+DAYS LEFT\s+KEY$/m)
    assert.match(table.stdout, /^web\s+www\.example\.org,10\.0\.0\.80\s+server\s+\S+\s+29\s+sealed$/m)
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
