/**
 * `xcluster cert ca rotate` as etcd sees it (the core nodes' side is test/lab/tls-ca-rotation.test.ts):
 * against a real etcd holding the cluster CA, the stored certificates are reissued from the new
 * CA and OpenSSL verifies them against it alone, the CRL is signed afresh by it, the old CA stays
 * trusted (the bundle) until --finish, which is refused with nothing changed while a certificate
 * whose key etcd does not keep still comes from the old CA.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {CaRotateResult} from '../../src/lib/actions/ca-rotate.js'
import {createCa, issueCertificate} from '../../src/lib/certs/authority.js'
import type {CaView} from '../../src/lib/certs/operator.js'
import {adminTlsPaths} from '../../src/lib/certs/paths.js'
import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {loadCa, saveCa, saveIssuedCertificate, type StoredCertificate} from '../../src/lib/certs/store.js'
import type {StoredCrl} from '../../src/lib/certs/revocation.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {HealthReport} from '../../src/lib/health/types.js'
import {xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

describe('xcluster cert ca rotate: a new CA beside the old one, then the old one dropped', {concurrency: false}, () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let pki: string
  let oldCaPem: string
  const outputs: string[] = []
  const cli = async (...args: string[]): Promise<CliResult> => {
    const r = await xcluster([...args, '--etcd', etcd.endpoint], {env: {XCLUSTER_PKI_DIR: pki}})
    outputs.push(r.stdout, r.stderr)
    return r
  }
  const pemFile = (name: string, pem: string): string => {
    const path = join(pki, name)
    writeFileSync(path, pem)
    return path
  }
  /** OpenSSL's verdict on a certificate against exactly these CAs. */
  const verifies = (certPem: string, caPem: string): boolean => spawnSync('openssl', ['verify', '-CAfile', pemFile('trust.pem', caPem), pemFile('leaf.pem', certPem)], {encoding: 'utf8'}).status === 0
  const etcdState = async (): Promise<string[]> => {
    const res = await store.call('dump', (c) => c.kv.range({key: Buffer.from([0]), range_end: Buffer.from([0])}))
    return res.kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}@${kv.mod_revision}`)
  }
  const stored = async (name: string) => (await store.getJson<StoredCertificate>(store.keys.issuedCert(name)))!.value
  const currentCaPem = async () => (await store.getJson<{certPem: string}>(store.keys.certAuthority()))!.value.certPem

  before(async () => {
    requireTool('openssl', 'openssl')
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    pki = mkdtempSync(join(tmpdir(), 'xct-ca-rotation-'))
    process.env.XCLUSTER_PKI_DIR = pki
    const secret = ClusterSecret.generate()
    writeClusterSecret(adminTlsPaths('xcluster').secret, secret)
    const ca = await createCa({cluster: 'xcluster'})
    oldCaPem = ca.certPem
    await saveCa(store, ca, secret)
    // One kept in etcd with its key (the rotation reissues it), one whose key only its host has.
    assert.equal((await cli('cert', 'issue', 'web', '--san', 'www.example.org')).code, 0)
    await saveIssuedCertificate(store, 'host-only', await issueCertificate(await loadCa(store, secret), {commonName: 'host-only', sans: ['h.example.org'], profile: 'server'}))
    assert.equal((await cli('cert', 'issue', 'gone', '--san', 'gone.example.org')).code, 0)
    assert.equal((await cli('cert', 'revoke', 'gone', '--yes')).code, 0)
  })

  after(async () => {
    await store?.close()
    await etcd?.stop()
    if (pki) rmSync(pki, {recursive: true, force: true})
  })

  it('--dry-run plans the rotation and changes nothing', async () => {
    const before = await etcdState()
    const r = await cli('cert', 'ca', 'rotate', '--dry-run', '--json')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.json<CaRotateResult>().step, 'would begin')
    assert.deepEqual(await etcdState(), before)
  })

  it('begins: the new CA signs, the old one stays trusted, web is reissued and the CRL re-signed by the new CA', async () => {
    const oldWeb = await stored('web')
    const r = await cli('cert', 'ca', 'rotate', '--yes', '--json')
    assert.equal(r.code, 0, r.stderr)
    const result = r.json<CaRotateResult>()
    assert.equal(result.step, 'begun')
    const newCaPem = await currentCaPem()
    assert.notEqual(newCaPem, oldCaPem)
    const oldFingerprint = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], {input: oldCaPem, encoding: 'utf8'}).split('=')[1]?.trim()
    assert.equal(result.ca.previous?.fingerprint, oldFingerprint, 'the old CA is the one being retired')
    assert.deepEqual(
      result.reissued.map((c) => c.name),
      ['web'],
      'only web: host-only has no key in etcd, gone is revoked',
    )
    const web = await stored('web')
    assert.notEqual(web.serial, oldWeb.serial)
    assert.deepEqual(web.sans, oldWeb.sans)
    assert.ok(verifies(web.certPem, newCaPem), 'OpenSSL verifies the reissued web against the new CA alone')
    assert.ok(!verifies(web.certPem, oldCaPem), '...and not against the old one')
    assert.ok(verifies((await stored('host-only')).certPem, newCaPem + oldCaPem), 'the bundle still verifies what the old CA signed')
    const crl = (await store.getJson<StoredCrl>(store.keys.certRevocationList()))!.value
    const crlCheck = spawnSync('openssl', ['crl', '-noout', '-CAfile', pemFile('new-ca.pem', newCaPem), '-in', pemFile('crl.pem', crl.pem)], {encoding: 'utf8'})
    assert.match(crlCheck.stderr + crlCheck.stdout, /verify OK/, 'the CRL is signed by the new CA')
    assert.ok(crl.pem.length > 0 && crl.revoked === 1, 'it still lists the revoked serial')

    const view = (await cli('cert', 'ca', 'show', '--json')).json<CaView>()
    assert.equal(view.bundlePem, newCaPem + oldCaPem, 'the trust bundle: the new CA, then the old')
    assert.deepEqual(
      view.stale.map((c) => c.name),
      ['host-only'],
    )
    const bundle = await cli('cert', 'ca', 'show', '--bundle')
    assert.equal(bundle.stdout, newCaPem + oldCaPem)
    const caCheck = (await cli('health', '--json')).json<HealthReport>().checks.find((c) => c.name === 'cert:ca')
    assert.equal(caCheck?.status, 'warn', 'health warns while the old CA is still trusted')
    assert.match(caCheck?.observed ?? '', /rotation is under way/)
    assert.equal(caCheck?.next, 'xcluster cert ca rotate --finish')
  })

  it('running it again carries the same rotation on: no third CA, nothing reissued twice', async () => {
    const ca = await currentCaPem()
    const web = await stored('web')
    const r = await cli('cert', 'ca', 'rotate', '--yes', '--json')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.json<CaRotateResult>().step, 'carried on')
    assert.deepEqual(r.json<CaRotateResult>().reissued, [])
    assert.equal(await currentCaPem(), ca)
    assert.equal((await stored('web')).serial, web.serial)
  })

  it('--finish is refused, changing nothing, while host-only still comes from the old CA; then finishes once it is revoked', async () => {
    const before = await etcdState()
    const refused = await cli('cert', 'ca', 'rotate', '--finish', '--yes')
    assert.equal(refused.code, 3, refused.stdout + refused.stderr)
    assert.match(refused.stderr, /CA_ROTATION_UNFINISHED|Still issued by the previous CA: host-only/)
    assert.match(refused.stderr, /xcluster cert ca rotate/)
    assert.deepEqual(await etcdState(), before)

    assert.equal((await cli('cert', 'revoke', 'host-only', '--yes')).code, 0)
    const r = await cli('cert', 'ca', 'rotate', '--finish', '--yes', '--json')
    assert.equal(r.code, 0, r.stderr)
    const result = r.json<CaRotateResult>()
    assert.equal(result.step, 'finished')
    assert.equal(result.ca.previous, undefined)
    assert.equal(await store.getJson(store.keys.previousCertAuthority()), undefined)
    assert.equal((await cli('cert', 'ca', 'show', '--bundle')).stdout, await currentCaPem(), 'the new CA alone is trusted')
    const caCheck = (await cli('health', '--json')).json<HealthReport>().checks.find((c) => c.name === 'cert:ca')
    assert.equal(caCheck?.status, 'ok', caCheck?.observed)
  })

  it('refuses what makes no sense, changing nothing: --finish with no rotation, --days with --finish', async () => {
    const before = await etcdState()
    const none = await cli('cert', 'ca', 'rotate', '--finish', '--yes')
    assert.equal(none.code, 3)
    assert.match(none.stderr, /No CA rotation is under way/)
    const days = await cli('cert', 'ca', 'rotate', '--finish', '--days', '30', '--yes')
    assert.equal(days.code, 2)
    assert.match(days.stderr, /--days applies to the new CA/)
    assert.deepEqual(await etcdState(), before)
  })

  it('no output and no etcd value holds a private key in clear', async () => {
    for (const text of [...outputs, ...(await etcdState())]) assert.doesNotMatch(text, /PRIVATE KEY/)
  })
})
