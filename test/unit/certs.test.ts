/**
 * The cluster CA (src/lib/certs), checked by real OpenSSL: what it issues verifies against the
 * CA for exactly the purposes its profile names, and private keys and the cluster secret never
 * come out in clear except through their one export call.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {inspect} from 'node:util'
import {after, before, describe, it} from 'node:test'

import {caFromPem, certificateInfo, createCa, issueCertificate, issuedBy, type CertificateAuthority, type IssuedCertificate} from '../../src/lib/certs/authority.js'
import {coreNodeTlsFiles, issueClientCertificate, issueMemberCertificates, writeAdminCredentials} from '../../src/lib/certs/cluster-pki.js'
import {identity} from '../../src/lib/certs/identities.js'
import {openSealedKey, sealPrivateKey} from '../../src/lib/certs/sealed.js'
import {ClusterSecret, readClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {XclusterError} from '../../src/lib/errors.js'
import {settings} from '../../src/lib/settings.js'
import {requireTool} from '../helpers/tools.js'

const isError = (code: string, exit?: number) => (e: unknown) => e instanceof XclusterError && e.code === code && (exit === undefined || e.exit === exit) && Boolean(e.suggestion)

let dir: string
let openssl: string
let ca: CertificateAuthority
let caFile: string

/** Writes a PEM and runs `openssl verify -purpose P` against the CA: true when it verifies. */
function verifies(cert: IssuedCertificate | string, purpose?: 'sslserver' | 'sslclient', caPath = caFile): boolean {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.pem`)
  writeFileSync(file, typeof cert === 'string' ? cert : cert.certPem)
  const res = spawnSync(openssl, ['verify', '-CAfile', caPath, ...(purpose ? ['-purpose', purpose] : []), file], {encoding: 'utf8'})
  return res.status === 0 && res.stdout.trim().endsWith(': OK')
}

const text = (pem: string): string => {
  const file = join(dir, 'x.pem')
  writeFileSync(file, pem)
  return execFileSync(openssl, ['x509', '-in', file, '-noout', '-text'], {encoding: 'utf8'})
}

before(async () => {
  openssl = requireTool('openssl', 'openssl')
  dir = mkdtempSync(join(tmpdir(), 'xct-certs-'))
  ca = await createCa({cluster: 'lab'})
  caFile = join(dir, 'ca.pem')
  writeFileSync(caFile, ca.certPem)
})
after(() => rmSync(dir, {recursive: true, force: true}))

describe('cluster CA', () => {
  it('is a self-signed ECDSA P-256 CA that may sign only leaf certificates', () => {
    const t = text(ca.certPem)
    assert.match(t, /Signature Algorithm: ecdsa-with-SHA256/)
    assert.match(t, /ASN1 OID: prime256v1/)
    assert.match(t, /X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/)
    assert.match(t, /X509v3 Key Usage: critical\n\s+Digital Signature, Certificate Sign, CRL Sign/)
    const ski = /Subject Key Identifier: \n\s+([0-9A-F:]+)/.exec(t)?.[1]
    assert.ok(ski, 'has a subject key identifier')
    assert.match(t, new RegExp(`Authority Key Identifier: \\n\\s+(keyid:)?${ski}`))
    assert.ok(verifies(ca.certPem), 'openssl verifies the CA against itself')
    const info = certificateInfo(ca.certPem)
    assert.equal(info.isCa, true)
    assert.equal(info.subject, 'CN=xcluster CA lab')
    const days = (Date.parse(info.notAfter) - Date.now()) / 86_400_000
    assert.ok(Math.abs(days - settings.certs.caDays) < 1, `valid for ${settings.certs.caDays} days (${days})`)
  })

  it('issues server, client and peer certificates that verify for exactly their purposes', async () => {
    const server = await issueCertificate(ca, {commonName: 'etcd-server-s1', sans: ['s1', '10.0.0.2', 'S1.lab', 'fd00::2'], profile: 'server'})
    const client = await issueCertificate(ca, {commonName: 'xcluster-admin', profile: 'client'})
    const peer = await issueCertificate(ca, {commonName: 'etcd-peer', sans: ['s1', '10.0.0.2'], profile: 'peer'})
    assert.deepEqual([verifies(server, 'sslserver'), verifies(server, 'sslclient')], [true, false], 'server: serverAuth only')
    assert.deepEqual([verifies(client, 'sslserver'), verifies(client, 'sslclient')], [false, true], 'client: clientAuth only')
    assert.deepEqual([verifies(peer, 'sslserver'), verifies(peer, 'sslclient')], [true, true], 'peer: both, as etcd peer links need')

    const t = text(server.certPem)
    assert.match(t, /X509v3 Basic Constraints: critical\n\s+CA:FALSE/)
    assert.match(t, /X509v3 Key Usage: critical\n\s+Digital Signature\n/)
    assert.match(t, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication\n/)
    assert.match(t, /DNS:s1, IP Address:10\.0\.0\.2, DNS:s1\.lab, IP Address:FD00:0:0:0:0:0:0:2/i)
    const caSki = /Subject Key Identifier: \n\s+([0-9A-F:]+)/.exec(text(ca.certPem))?.[1]
    assert.match(t, new RegExp(`Authority Key Identifier: \\n\\s+(keyid:)?${caSki}`), 'AKI names the CA key')
    assert.match(text(client.certPem), /X509v3 Extended Key Usage: \n\s+TLS Web Client Authentication\n/)
    assert.doesNotMatch(text(client.certPem), /Subject Alternative Name/)
    assert.match(text(peer.certPem), /TLS Web Server Authentication, TLS Web Client Authentication/)

    assert.deepEqual([server.profile, client.profile, peer.profile], ['server', 'client', 'peer'])
    assert.deepEqual(server.sans, ['s1', '10.0.0.2', 's1.lab', 'fd00::2'])
    assert.equal(await issuedBy(ca, server.certPem), true)
  })

  it('gives every certificate a fresh key that matches it, and a distinct positive 16-byte serial', async () => {
    const certs = await Promise.all(Array.from({length: 20}, (_, i) => issueCertificate(ca, {commonName: `c${i}`, profile: 'client', days: 1})))
    const serials = new Set(certs.map((c) => c.serial))
    assert.equal(serials.size, 20)
    for (const c of certs) assert.match(c.serial, /^[4-7][0-9a-f]{31}$/, 'positive, full length')
    const keys = new Set(certs.map((c) => c.key.exportPem()))
    assert.equal(keys.size, 20)
    const c = certs[0] as IssuedCertificate
    const certFile = join(dir, 'k.crt')
    const keyFile = join(dir, 'k.key')
    writeFileSync(certFile, c.certPem)
    writeFileSync(keyFile, c.key.exportPem())
    const pub = (args: string[]) => execFileSync(openssl, args, {encoding: 'utf8'})
    assert.equal(pub(['x509', '-in', certFile, '-noout', '-pubkey']), pub(['pkey', '-in', keyFile, '-pubout']), "openssl: the key is the certificate's")
  })

  it('issues an etcd member its peer and server certificates, and the identities their client certificates', async () => {
    const member = await issueMemberCertificates(ca, {name: 's2', ip: '10.0.0.3'})
    assert.equal(member.peer.commonName, identity.etcdPeer)
    assert.equal(member.server.commonName, identity.etcdServer('s2'))
    assert.deepEqual(member.peer.sans, ['s2', '10.0.0.3'])
    assert.deepEqual(member.server.sans, ['s2', '10.0.0.3'])
    assert.ok(verifies(member.peer, 'sslserver') && verifies(member.peer, 'sslclient'))
    assert.ok(verifies(member.server, 'sslserver') && !verifies(member.server, 'sslclient'))
    const serve = await issueClientCertificate(ca, identity.serve('s2'))
    assert.equal(serve.commonName, 'xcluster-serve-s2')
    assert.ok(verifies(serve, 'sslclient'))
    const root = await issueClientCertificate(ca, identity.root)
    const hours = (Date.parse(root.notAfter) - Date.now()) / 3_600_000
    assert.ok(hours > 0.9 && hours <= 1, `a root certificate is short-lived (${hours.toFixed(2)} h)`)
    await assert.rejects(issueClientCertificate(ca, 'etcd-peer'), isError('USAGE', 2), 'member names are not client identities')
    const files = coreNodeTlsFiles(ca.certPem, member, serve)
    assert.deepEqual(
      files.map((f) => `${f.path} ${f.mode.toString(8)}`),
      [
        '/etc/xcluster/pki/ca.crt 644',
        '/etc/xcluster/pki/etcd-peer.crt 644',
        '/etc/xcluster/pki/etcd-peer.key 600',
        '/etc/xcluster/pki/etcd-server.crt 644',
        '/etc/xcluster/pki/etcd-server.key 600',
        '/etc/xcluster/pki/serve.crt 644',
        '/etc/xcluster/pki/serve.key 600',
      ],
    )
    assert.doesNotMatch(JSON.stringify(files), /PRIVATE KEY|BEGIN/, 'a plan of files serializes without contents')
  })

  it('a certificate from another CA does not verify against this one', async () => {
    const other = await createCa({cluster: 'other'})
    const foreign = await issueCertificate(other, {commonName: 'xcluster-admin', profile: 'client'})
    assert.equal(verifies(foreign, 'sslclient'), false)
    assert.equal(await issuedBy(ca, foreign.certPem), false)
  })

  it('refuses bad requests with a clear error', async () => {
    await assert.rejects(issueCertificate(ca, {commonName: 's1', profile: 'server'}), isError('USAGE', 2), 'a server certificate without a SAN')
    await assert.rejects(issueCertificate(ca, {commonName: 's1', sans: ['not a name!'], profile: 'peer'}), isError('USAGE', 2))
    await assert.rejects(issueCertificate(ca, {commonName: '', profile: 'client'}), isError('USAGE', 2))
    await assert.rejects(issueCertificate(ca, {commonName: 'x', profile: 'client', days: 0}), isError('USAGE', 2))
    await assert.rejects(issueCertificate(ca, {commonName: 'x', profile: 'bogus' as 'client'}), isError('USAGE', 2))
    await assert.rejects(issueCertificate(ca, {commonName: 'x', profile: 'client', days: settings.certs.caDays + 30}), isError('CERT_OUTLIVES_CA', 3))
  })

  it('loads a CA from PEM only with its own key', async () => {
    const other = await createCa({cluster: 'lab'})
    assert.equal(caFromPem('lab', ca.certPem, ca.key.exportPem()).certPem, ca.certPem)
    assert.throws(() => caFromPem('lab', ca.certPem, other.key.exportPem()), isError('CA_KEY_MISMATCH', 3))
    const leaf = await issueCertificate(ca, {commonName: 'x', profile: 'client', days: 1})
    assert.throws(() => caFromPem('lab', leaf.certPem, leaf.key.exportPem()), isError('CA_NOT_A_CA', 3))
  })
})

describe('private keys and the cluster secret never leak by accident', () => {
  it('JSON, String(), template literals and util.inspect show a placeholder, not the key', async () => {
    const issued = await issueCertificate(ca, {commonName: 'x', profile: 'client', days: 1})
    const secret = ClusterSecret.generate()
    const outputs = [JSON.stringify(issued), JSON.stringify(ca), String(issued.key), `${issued.key}`, inspect(issued, {depth: 5}), inspect(ca), JSON.stringify({secret}), `${secret}`, inspect(secret)]
    for (const out of outputs) assert.doesNotMatch(out, /PRIVATE KEY/)
    const raw = secret.exportBytes().toString('base64url')
    for (const out of outputs) assert.ok(!out.includes(raw), 'the secret is not printed')
    assert.match(issued.key.exportPem(), /^-----BEGIN PRIVATE KEY-----\n/, 'exportPem() is the one way out')
  })

  it('seals a key with AES-256-GCM under the cluster secret; only that secret and that place open it', async () => {
    const secret = ClusterSecret.generate()
    const sealed = await sealPrivateKey(ca.key, secret, '/xcluster/lab/certs/ca')
    const stored = JSON.stringify(sealed)
    assert.doesNotMatch(stored, /PRIVATE KEY/)
    const der = Buffer.from(ca.key.exportPem().replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
    assert.ok(!stored.includes(der.toString('base64').slice(20, 60)), 'no part of the key in clear')
    assert.deepEqual({N: sealed.kdf.N, r: sealed.kdf.r, p: sealed.kdf.p}, {N: settings.certs.scrypt.N, r: settings.certs.scrypt.r, p: settings.certs.scrypt.p})
    assert.equal((await openSealedKey(sealed, secret, '/xcluster/lab/certs/ca')).exportPem(), ca.key.exportPem())
    await assert.rejects(openSealedKey(sealed, ClusterSecret.generate(), '/xcluster/lab/certs/ca'), isError('SECRET_MISMATCH', 3), 'another secret')
    await assert.rejects(openSealedKey(sealed, secret, '/xcluster/lab/certs/issued/x'), isError('SECRET_MISMATCH', 3), 'moved to another key')
    await assert.rejects(openSealedKey({...sealed, kdf: {...sealed.kdf, N: 2 ** 14}}, secret, '/xcluster/lab/certs/ca'), isError('SECRET_MISMATCH', 3), 'edited parameters')
    await assert.rejects(openSealedKey({...sealed, kdf: {...sealed.kdf, N: 2 ** 30}}, secret, '/xcluster/lab/certs/ca'), isError('SEALED_KEY_FORMAT', 3), 'absurd parameters are not run')
    const flipped = Buffer.from(sealed.data, 'base64')
    flipped[0] = (flipped[0] as number) ^ 1
    await assert.rejects(openSealedKey({...sealed, data: flipped.toString('base64')}, secret, '/xcluster/lab/certs/ca'), isError('SECRET_MISMATCH', 3), 'tampered ciphertext')
  })

  it("writes the operator's CA, certificate and key to the admin host's per-cluster directory, owner-only", async () => {
    const admin = await issueClientCertificate(ca, identity.admin, 1)
    const saved = process.env.XCLUSTER_PKI_DIR
    process.env.XCLUSTER_PKI_DIR = join(dir, 'admin-home')
    try {
      const paths = writeAdminCredentials('lab', ca.certPem, admin)
      assert.deepEqual(paths, {ca: join(dir, 'admin-home', 'lab', 'ca.crt'), cert: join(dir, 'admin-home', 'lab', 'xcluster-admin.crt'), key: join(dir, 'admin-home', 'lab', 'xcluster-admin.key')})
      assert.equal(statSync(join(dir, 'admin-home', 'lab')).mode & 0o777, 0o700)
      for (const f of Object.values(paths)) assert.equal(statSync(f).mode & 0o777, 0o600, f)
      assert.equal(readFileSync(paths.key, 'utf8'), admin.key.exportPem())
      assert.ok(verifies(readFileSync(paths.cert, 'utf8'), 'sslclient', paths.ca))
    } finally {
      if (saved === undefined) delete process.env.XCLUSTER_PKI_DIR
      else process.env.XCLUSTER_PKI_DIR = saved
    }
  })

  it('keeps the secret in a 0600 file, refuses one others can read, and never replaces a different one', () => {
    const file = join(dir, 'pki', 'lab', 'cluster.secret')
    const secret = ClusterSecret.generate()
    assert.deepEqual(writeClusterSecret(file, secret), {written: true})
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(statSync(join(dir, 'pki', 'lab')).mode & 0o777, 0o700)
    assert.ok(readClusterSecret(file).equals(secret))
    assert.deepEqual(writeClusterSecret(file, secret), {written: false}, 'the same secret again: no change')
    const before = readFileSync(file, 'utf8')
    assert.throws(() => writeClusterSecret(file, ClusterSecret.generate()), isError('SECRET_EXISTS', 3))
    assert.equal(readFileSync(file, 'utf8'), before, 'the existing secret is untouched')
    chmodSync(file, 0o644)
    assert.throws(
      () => readClusterSecret(file),
      (e: unknown) => isError('SECRET_FILE_MODE', 3)(e) && /chmod 600/.test((e as XclusterError).suggestion ?? ''),
    )
    chmodSync(file, 0o600)
    writeFileSync(file, 'too short\n', {mode: 0o600})
    assert.throws(() => readClusterSecret(file), isError('SECRET_INVALID', 3))
    assert.throws(() => readClusterSecret(join(dir, 'none')), isError('SECRET_MISSING', 3))
  })
})
