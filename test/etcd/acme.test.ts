/**
 * `xcluster cert acme issue` against a real ACME CA: Debian's Pebble on loopback, resolving
 * every name to 127.0.0.1 through pebble-challtestsrv's DNS, and validating HTTP-01 for real
 * (no PEBBLE_VA_ALWAYS_VALID) by fetching each token from `xcluster serve --acme-http`, which
 * answers from etcd. What is issued is checked with OpenSSL against Pebble's own root and
 * intermediate; every refusal and a failed order leave etcd as it was; no output nor etcd value
 * ever holds a private key in clear.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {request as httpRequest, type IncomingMessage} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {AcmeIssueResult, StoredAcmeAccount} from '../../src/lib/certs/acme.js'
import type {CertificateView} from '../../src/lib/certs/operator.js'
import {adminTlsPaths} from '../../src/lib/certs/paths.js'
import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {loadIssuedCertificate, saveCa} from '../../src/lib/certs/store.js'
import {createCa} from '../../src/lib/certs/authority.js'
import {readFrontendState} from '../../src/lib/frontend/registry.js'
import {certPaths, defaultLayout} from '../../src/lib/frontend/render.js'
import {frontendFiles} from '../../src/lib/frontend/sync.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {specBase} from '../helpers/election-harness.js'
import {freePort, startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startPebble, type Pebble} from '../helpers/pebble.js'

const DOMAINS = ['app.xcluster.test', 'www.xcluster.test']
const EMAIL = 'ops@xcluster.test'

describe('xcluster cert acme issue: HTTP-01 against a real Pebble, answered from etcd by serve --acme-http', {concurrency: false}, () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let dir: string
  let secret: ClusterSecret
  const ports = {http01: 0}
  let pebble: Pebble | undefined
  let serve: ChildProcess | undefined
  let serveLog = ''
  const outputs: string[] = []
  const directory = () => pebble!.directory
  const tlsCa = () => pebble!.tlsCaFile
  const cli = async (...args: string[]): Promise<CliResult> => {
    const r = await xcluster([...args, '--etcd', etcd.endpoint], {env: {XCLUSTER_PKI_DIR: join(dir, 'pki')}})
    outputs.push(r.stdout, r.stderr)
    return r
  }
  const issue = (...args: string[]) => cli('cert', 'acme', 'issue', ...args)
  const openssl = (...args: string[]) => execFileSync('openssl', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  /** Every key and value of the whole keyspace: what a refusal must leave as it was. */
  const etcdState = async (): Promise<string[]> => {
    const res = await store.call('dump', (c) => c.kv.range({key: Buffer.from([0]), range_end: Buffer.from([0])}))
    return res.kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}@${kv.mod_revision}`)
  }
  const challengeKeys = async () => Object.keys(await store.snapshot()).filter((k) => k.startsWith(store.keys.acmeChallengesPrefix()))
  /** GET over plain HTTP (the responder). */
  const get = (url: string): Promise<{status: number; body: string}> =>
    new Promise((resolve, reject) => {
      const done = (res: IncomingMessage) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
      }
      const req = httpRequest(url, done)
      req.on('error', reject)
      req.setTimeout(2000, () => req.destroy(new Error(`timeout: ${url}`)))
      req.end()
    })
  const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (await check().catch(() => false)) return
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-acme-'))
    for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort()
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    process.env.XCLUSTER_PKI_DIR = join(dir, 'pki')
    secret = ClusterSecret.generate()
    writeClusterSecret(adminTlsPaths('xcluster').secret, secret)
    // serve reads the stored spec: the template's.
    writeFileSync(join(dir, 'spec.yaml'), specBase(ROOT))
    const applied = await cli('config', 'apply', '-f', join(dir, 'spec.yaml'), '--yes')
    assert.equal(applied.code, 0, applied.stderr)

    pebble = await startPebble({dir, address: '127.0.0.1', httpPort: ports.http01})
  })

  after(async () => {
    if (serve && serve.exitCode === null) serve.kill('SIGTERM')
    await pebble?.stop()
    await store?.close()
    await etcd?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('an order whose challenges nobody answers fails with the CA’s reason, and leaves etcd as it was', async () => {
    const before = await etcdState()
    const r = await issue(DOMAINS[0]!, '--email', EMAIL, '--directory', directory(), '--ca-file', tlsCa())
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /Error \[ACME_REFUSED\]: The ACME CA at https:\/\/127\.0\.0\.1:\d+\/dir refused to obtain the certificate for app\.xcluster\.test: .*(refused|connect)/i)
    assert.match(r.stderr, /Try this: .*proxies \/\.well-known\/acme-challenge\/ to xcluster serve --acme-http/)
    assert.deepEqual(await etcdState(), before, 'no account, no challenge, no certificate left behind')
  })

  it('serve --acme-http answers 404 for unknown tokens, bad tokens and other paths', async () => {
    serve = spawn(process.execPath, [join(ROOT, 'bin', 'run.js'), 'serve', '--node', 'f1', '--acme-http', `127.0.0.1:${ports.http01}`, '--etcd', etcd.endpoint], {
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    serve.stdout!.on('data', (d) => (serveLog += d))
    serve.stderr!.on('data', (d) => (serveLog += d))
    const base = `http://127.0.0.1:${ports.http01}`
    await until('serve --acme-http', async () => (await get(`${base}/.well-known/acme-challenge/unknown-Token_1`)).status === 404)
    for (const path of ['/.well-known/acme-challenge/a.b', '/.well-known/acme-challenge/..%2Fissued', '/.well-known/acme-challenge/', '/health']) {
      assert.equal((await get(`${base}${path}`)).status, 404, path)
    }
    // A token put in etcd is answered at once, by its key authorization alone.
    const token = 'Tok3n_test-1'
    await store.put(store.keys.acmeChallenge(token), {domain: DOMAINS[0], keyAuthorization: `${token}.thumbprint`, createdAt: new Date().toISOString()})
    assert.deepEqual(await get(`${base}/.well-known/acme-challenge/${token}`), {status: 200, body: `${token}.thumbprint`})
    await store.delete(store.keys.acmeChallenge(token))
    assert.equal((await get(`${base}/.well-known/acme-challenge/${token}`)).status, 404)
  })

  it('issues: Pebble validates every domain over HTTP-01 through the responder; OpenSSL verifies the certificate against Pebble’s root', async () => {
    const r = await issue(...DOMAINS, '--email', EMAIL, '--directory', directory(), '--ca-file', tlsCa(), '--json')
    assert.equal(r.code, 0, r.stderr)
    const result = r.json<AcmeIssueResult>()
    assert.equal(result.name, 'app.xcluster.test')
    assert.equal(result.account?.created, true)
    assert.deepEqual(result.certificate?.sans.sort(), [...DOMAINS].sort())
    assert.equal(result.certificate?.hasKey, true)
    assert.deepEqual(result.certificate?.source, {kind: 'acme', directory: directory(), account: result.account!.url})
    // The CA fetched both tokens from the responder (it logs each answer), and they are gone now.
    for (const domain of DOMAINS) assert.match(serveLog, new RegExp(`"event":"acme-challenge-answered".*"domain":"${domain.replaceAll('.', '\\.')}"`))
    assert.deepEqual(await challengeKeys(), [])

    const shown = (await cli('cert', 'show', 'app.xcluster.test', '--json')).json<{certPem: string; chainPem: string}>()
    const [root, intermediate] = [(await pebble!.management('/roots/0')).body, (await pebble!.management('/intermediates/0')).body]
    writeFileSync(join(dir, 'root.pem'), root)
    writeFileSync(join(dir, 'intermediate.pem'), intermediate)
    writeFileSync(join(dir, 'cert.pem'), shown.certPem)
    writeFileSync(join(dir, 'chain.pem'), shown.chainPem)
    const cert = join(dir, 'cert.pem')
    assert.equal(openssl('verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediate.pem'), cert).trim(), `${cert}: OK`)
    assert.equal(
      openssl('verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'chain.pem'), '-purpose', 'sslserver', cert).trim(),
      `${cert}: OK`,
      'the chain recorded is the one Pebble sent',
    )
    const text = openssl('x509', '-in', cert, '-noout', '-text')
    for (const domain of DOMAINS) assert.match(text, new RegExp(`DNS:${domain.replaceAll('.', '\\.')}`))
    assert.match(text, /Issuer: CN ?= ?Pebble Intermediate CA/)
    // The key kept is the certificate's: opened with the cluster secret, it matches.
    const issued = await loadIssuedCertificate(store, 'app.xcluster.test', secret)
    writeFileSync(join(dir, 'cert.key'), issued.key.exportPem(), {mode: 0o600})
    assert.equal(openssl('x509', '-in', cert, '-noout', '-pubkey'), openssl('pkey', '-in', join(dir, 'cert.key'), '-pubout'))
    rmSync(join(dir, 'cert.key'))
    // The account is recorded once, its key sealed.
    const accounts = await store.listJson<StoredAcmeAccount>(store.keys.acmeAccountsPrefix())
    assert.deepEqual(
      accounts.map((a) => [a.value.directory, a.value.url, a.value.email, a.value.sealedKey.format]),
      [[directory(), result.account!.url, EMAIL, 'xcluster-sealed-key/1']],
    )
  })

  it('cert list shows it, from ACME; the same account serves a second certificate', async () => {
    const listed = (await cli('cert', 'list', '--json')).json<CertificateView[]>()
    assert.deepEqual(
      listed.map((c) => [c.name, c.source?.kind, c.hasKey]),
      [['app.xcluster.test', 'acme', true]],
    )
    const table = await cli('cert', 'list')
    assert.match(table.stdout, new RegExp(`^app\\.xcluster\\.test\\s+\\S+\\s+\\S+\\s+\\S+\\s+\\d+\\s+ok\\s+sealed\\s+acme 127\\.0\\.0\\.1:${new URL(directory()).port}$`, 'm'))
    const again = await issue('api.xcluster.test', '--email', EMAIL, '--directory', directory(), '--ca-file', tlsCa())
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /^Issued api\.xcluster\.test by CN=Pebble Intermediate CA \S+ \(serial [0-9a-f]+\) for api\.xcluster\.test, valid until \S+ \(\d+ days\); its key is sealed in etcd\.$/m)
    assert.doesNotMatch(again.stdout, /Created the ACME account/)
    assert.equal((await store.listJson(store.keys.acmeAccountsPrefix())).length, 1)
    assert.deepEqual(await challengeKeys(), [])
  })

  it('refused with etcd unchanged: a name taken, a bad domain or email, an unreachable or untrusted directory', async () => {
    const closed = await freePort()
    const cases: [string[], number, RegExp, RegExp][] = [
      [
        [DOMAINS[0]!, '--email', EMAIL, '--directory', directory(), '--ca-file', tlsCa()],
        3,
        /Error \[CERT_EXISTS\]: A certificate named "app\.xcluster\.test" is already stored/,
        /cert show app\.xcluster\.test/,
      ],
      [['app_bad.xcluster.test', '--email', EMAIL], 2, /"app_bad\.xcluster\.test" is not a domain name a CA can validate/, /fully qualified DNS name/],
      [['*.xcluster.test', '--email', EMAIL], 2, /wildcard name, which HTTP-01 cannot prove/, /Name each host/],
      [['10.0.0.80', '--email', EMAIL], 2, /is an IP address/, /DNS name/],
      [['localhost', '--email', EMAIL], 2, /not a domain name a CA can validate/, /app\.example\.org/],
      [['new.xcluster.test', '--email', 'ops-at-example.org'], 2, /"ops-at-example\.org" is not an email address/, /--email ops@example\.org/],
      [['new.xcluster.test', '--email', EMAIL, '--directory', 'http://127.0.0.1/dir'], 2, /is not an ACME directory URL/, /--directory https:/],
      [
        ['new.xcluster.test', '--email', EMAIL, '--directory', `https://127.0.0.1:${closed}/dir`],
        3,
        /Error \[ACME_UNREACHABLE\]: The ACME directory https:\/\/127\.0\.0\.1:\d+\/dir is unreachable \(ECONNREFUSED\)/,
        /Check --directory/,
      ],
      [
        ['new.xcluster.test', '--email', EMAIL, '--directory', directory()],
        3,
        /Error \[ACME_TLS_UNTRUSTED\]: The ACME directory \S+ presented an HTTPS certificate this host does not trust/,
        /--ca-file/,
      ],
      [
        ['new.xcluster.test', '--email', EMAIL, '--directory', `https://127.0.0.1:${pebble!.managementPort}/roots/0`, '--ca-file', tlsCa()],
        3,
        /Error \[ACME_DIRECTORY_INVALID\]: \S+ is not an ACME directory \(HTTP 200, without newNonce, newAccount and newOrder\)/,
        /--directory https:/,
      ],
    ]
    for (const [args, exit, message, next] of cases) {
      const before = await etcdState()
      const r = await issue(...args)
      assert.equal(r.code, exit, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, args.join(' '))
      assert.match(r.stderr, /Try this:/, args.join(' '))
      assert.match(r.stderr, next, args.join(' '))
      assert.deepEqual(await etcdState(), before, `${args.join(' ')} changed etcd`)
    }
  })

  it('cert acme renew: a new certificate and key for the same names from the same account replace the record; refusals change nothing', async () => {
    const before = (await cli('cert', 'show', 'app.xcluster.test', '--json')).json<CertificateView>()
    const r = await cli('cert', 'acme', 'renew', 'app.xcluster.test', '--ca-file', tlsCa())
    assert.equal(r.code, 0, r.stderr)
    assert.match(
      r.stdout,
      /^Renewed app\.xcluster\.test by CN=Pebble Intermediate CA \S+ \(serial [0-9a-f]+\) for app\.xcluster\.test, www\.xcluster\.test, valid until \S+ \(\d+ days\); its new key is sealed in etcd\.$/m,
    )
    const after = (await cli('cert', 'show', 'app.xcluster.test', '--json')).json<CertificateView & {certPem: string}>()
    assert.notEqual(after.serial, before.serial)
    assert.deepEqual(after.sans.sort(), [...DOMAINS].sort())
    writeFileSync(join(dir, 'renewed.pem'), after.certPem)
    assert.match(openssl('verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediate.pem'), join(dir, 'renewed.pem')), /: OK$/m)
    const issued = await loadIssuedCertificate(store, 'app.xcluster.test', secret)
    writeFileSync(join(dir, 'renewed.key'), issued.key.exportPem(), {mode: 0o600})
    assert.equal(openssl('x509', '-in', join(dir, 'renewed.pem'), '-noout', '-pubkey'), openssl('pkey', '-in', join(dir, 'renewed.key'), '-pubout'), 'the new key is the new certificate’s')
    assert.notEqual(openssl('x509', '-in', join(dir, 'renewed.pem'), '-noout', '-pubkey'), openssl('x509', '-in', join(dir, 'cert.pem'), '-noout', '-pubkey'), 'a new key')
    rmSync(join(dir, 'renewed.key'))
    assert.equal((await store.listJson(store.keys.acmeAccountsPrefix())).length, 1)
    assert.deepEqual(await challengeKeys(), [])
    const cases: [string[], RegExp][] = [
      [['nope.xcluster.test'], /Error \[CERT_MISSING\]: No certificate named "nope\.xcluster\.test" in etcd/],
      [['app.xcluster.test'], /Error \[ACME_TLS_UNTRUSTED\]/],
    ]
    for (const [args, message] of cases) {
      const state = await etcdState()
      const refused = await cli('cert', 'acme', 'renew', ...args)
      assert.equal(refused.code, 3, refused.stderr)
      assert.match(refused.stderr, message)
      assert.match(refused.stderr, /Try this:/)
      assert.deepEqual(await etcdState(), state)
    }
  })

  it('the cluster CA leaves an ACME certificate to its CA: cert renew refuses it, renew --all skips it, cert revoke refuses it', async () => {
    const state = await etcdState()
    const renew = await cli('cert', 'renew', 'app.xcluster.test')
    assert.equal(renew.code, 3, renew.stderr)
    assert.match(renew.stderr, /Error \[CERT_FROM_ACME\]: The certificate "app\.xcluster\.test" was issued by the ACME CA at https:\/\/127\.0\.0\.1:\d+\/dir, not the cluster CA/)
    assert.match(renew.stderr, /Try this: Renew it from that CA: xcluster cert acme renew app\.xcluster\.test/)
    const all = await cli('cert', 'renew', '--all', '--before', '100000d', '--dry-run', '--json')
    assert.equal(all.code, 0, all.stderr)
    assert.deepEqual(
      all.json<{certificates: {name: string; action: string; reason?: string}[]}>().certificates.map((c) => [c.name, c.action, c.reason]),
      ['api.xcluster.test', 'app.xcluster.test'].map((n) => [n, 'skipped', `from an ACME CA: xcluster cert acme renew ${n} renews it`]),
    )
    const revoke = await cli('cert', 'revoke', 'app.xcluster.test', '--yes')
    assert.equal(revoke.code, 3, revoke.stderr)
    assert.match(revoke.stderr, /Error \[CERT_FROM_ACME\]: .*the cluster CA's CRL cannot revoke it/)
    assert.match(revoke.stderr, /Try this: .*xcluster cert acme renew app\.xcluster\.test/)
    assert.deepEqual(await etcdState(), state)
  })

  it('frontend sync gives a frontend an ACME certificate with its intermediates after it, as nginx must send them', async () => {
    await saveCa(store, await createCa({cluster: 'xcluster'}), secret)
    const node = await store.getJson<Record<string, unknown>>(store.keys.node('f1'))
    await store.put(store.keys.node('f1'), {...node!.value, state: 'ready'})
    const exposed = await cli('frontend', 'expose', 'app', '--to', '10.0.0.80:8080', '--port', '443', '--cert', 'app.xcluster.test')
    assert.equal(exposed.code, 0, exposed.stderr)
    const files = await frontendFiles(store, await readFrontendState(store), 'f1', () => secret)
    const served = files.find((f) => f.path === certPaths(defaultLayout().tlsDir, 'app.xcluster.test').cert)!
    const pems = served.content.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    assert.equal(pems.length, 2, 'the certificate, then Pebble’s intermediate')
    writeFileSync(join(dir, 'served.pem'), served.content)
    // openssl verify checks the first certificate of the file, with the rest of it as the chain: what a browser gets.
    const fullchain = join(dir, 'served.pem')
    assert.equal(openssl('verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', fullchain, fullchain).trim(), `${fullchain}: OK`)
    const listed = await cli('frontend', 'list', '--json')
    assert.doesNotMatch(listed.stdout, /BEGIN CERTIFICATE/, 'no chain in the listing')
  })

  it('--dry-run changes nothing and calls no CA: it says what it would do', async () => {
    const before = await etcdState()
    const r = await issue('new.xcluster.test', '--email', EMAIL, '--directory', directory(), '--dry-run')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^Would \(dry run, nothing written, the CA not called\):$/m)
    assert.match(r.stdout, /use the ACME account https:\/\/127\.0\.0\.1:\d+\/\S+ at https:\/\/127\.0\.0\.1:\d+\/dir/)
    assert.match(r.stdout, /record it as "new\.xcluster\.test" with its private key sealed/)
    // It reads etcd only: no cluster secret is needed to plan (the Let's Encrypt default is not called either).
    const empty = mkdtempSync(join(tmpdir(), 'xct-acme-nopki-'))
    const plain = await xcluster(['cert', 'acme', 'issue', 'new.example.org', '--email', 'ops@example.org', '--dry-run', '--json', '--etcd', etcd.endpoint], {env: {XCLUSTER_PKI_DIR: empty}})
    rmSync(empty, {recursive: true})
    outputs.push(plain.stdout, plain.stderr)
    assert.equal(plain.code, 0, plain.stderr)
    assert.deepEqual((({name, directory, dryRun}) => ({name, directory, dryRun}))(plain.json<AcmeIssueResult>()), {
      name: 'new.example.org',
      directory: 'https://acme-v02.api.letsencrypt.org/directory',
      dryRun: true,
    })
    assert.match(plain.json<AcmeIssueResult>().plan[0]!, /^create an ACME account at https:\/\/acme-v02\.api\.letsencrypt\.org\/directory for ops@example\.org/)
    assert.deepEqual(await etcdState(), before)
  })

  it('no output of any command and no value in etcd holds a private key in clear', async () => {
    assert.ok(outputs.length > 20)
    for (const text of [...outputs, serveLog]) assert.doesNotMatch(text, /PRIVATE KEY/)
    const values = await etcdState()
    assert.equal(values.filter((v) => v.includes('"sealedKey"')).length, 4, 'two certificates, the account and the cluster CA, their keys sealed')
    for (const v of values) assert.doesNotMatch(v, /PRIVATE KEY/)
  })
})
