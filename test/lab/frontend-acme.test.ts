/**
 * ACME in the lab, the way production wires it (test/lab/bootstrap.test.ts runs first): Pebble,
 * the ACME test CA, runs on the admin host with its DNS answering every name with f1's address;
 * `cert acme issue` on the admin host orders a certificate, and Pebble's validator fetches each
 * HTTP-01 token from f1's nginx on port 80, which passes /.well-known/acme-challenge/ to the admin
 * VIP, where the core nodes' `serve --acme-http` answers from etcd. The certificate, exposed on
 * f1, is put there by the certs leader; f1 serves it with Pebble's intermediate, verified by
 * s_client against Pebble's root alone. `cert acme renew` then gets a new one, which f1 serves
 * after the leader's next sync while a TLS connection opened before the reload still gets its
 * answer.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {request as httpsRequest} from 'node:https'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {AcmeIssueResult} from '../../src/lib/certs/acme.js'
import type {StoredCertificate} from '../../src/lib/certs/store.js'
import {leasedAddress} from '../../src/lib/dhcp/leases.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {freePort} from '../helpers/etcd.js'
import {admin, clusterStore, lab, ok, waitUntil} from '../helpers/lab.js'
import {requireTool} from '../helpers/tools.js'

const state = lab()
const store = clusterStore(state)
const DOMAIN = 'shop.lab.test'
const PORT = 9443
const ports = {dns: 0, acme: 0, management: 0, challtestManagement: 0, tlsAlpn: 0}
const children: ChildProcess[] = []
let dir: string
let f1: string

const directory = () => `https://127.0.0.1:${ports.acme}/dir`
const tlsCa = () => join(dir, 'tls-ca.crt')
const openssl = (...args: string[]) => execFileSync('openssl', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})

/** Pebble's management API (HTTPS, trusting only the test CA made for it). */
const management = (path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const req = httpsRequest(`https://127.0.0.1:${ports.management}${path}`, {ca: readFileSync(tlsCa())}, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${path}: ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end()
  })

/** What f1 presents on the endpoint's port, verified against Pebble's root only: its serial. */
function served(): string | undefined {
  const r = spawnSync(
    'sh',
    ['-c', `openssl s_client -connect ${f1}:${PORT} -servername ${DOMAIN} -CAfile ${join(dir, 'root.pem')} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial`],
    {encoding: 'utf8', timeout: 15_000},
  )
  return r.status === 0 ? r.stdout.trim().split('=')[1]?.toLowerCase() : undefined
}

const record = async () => (await store.getJson<StoredCertificate>(store.keys.issuedCert(DOMAIN)))?.value

function start(command: string, args: string[], env: Record<string, string> = {}): void {
  const child = spawn(command, args, {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'ignore', 'ignore']})
  children.push(child)
}

describe('ACME in the lab: Pebble validates through f1’s nginx and the core nodes’ responder; f1 serves what it issued', {concurrency: false}, () => {
  before(async () => {
    requireTool('pebble', 'pebble')
    requireTool('pebble-challtestsrv', 'pebble')
    dir = mkdtempSync(join(tmpdir(), 'xct-lab-acme-'))
    const node = (await store.getJson<NodeRecord>(store.keys.node('f1')))!.value
    assert.equal(node.state, 'ready', 'f1 is a ready frontend')
    f1 = (await leasedAddress(store, node.mac))!
    for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort()
    // The site (port 80 passing ACME challenges to the admin VIP) on f1, before any endpoint.
    ok(await admin(['frontend', 'sync']), 'frontend sync')

    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    openssl('req', '-x509', ...ec, '-keyout', join(dir, 'tls-ca.key'), '-out', tlsCa(), '-days', '1', '-subj', '/CN=xcluster lab Pebble TLS CA')
    openssl('req', ...ec, '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.csr'), '-subj', '/CN=localhost')
    writeFileSync(join(dir, 'tls.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
    openssl(
      'x509',
      '-req',
      '-in',
      join(dir, 'tls.csr'),
      '-CA',
      tlsCa(),
      '-CAkey',
      join(dir, 'tls-ca.key'),
      '-CAcreateserial',
      '-out',
      join(dir, 'tls.crt'),
      '-days',
      '1',
      '-extfile',
      join(dir, 'tls.ext'),
    )
    // Every name resolves to f1; the test server's own challenge listeners off.
    start('pebble-challtestsrv', [
      '-defaultIPv4',
      f1,
      '-defaultIPv6',
      '',
      '-dns01',
      `127.0.0.1:${ports.dns}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `127.0.0.1:${ports.challtestManagement}`,
    ])
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${ports.acme}`,
        managementListenAddress: `127.0.0.1:${ports.management}`,
        certificate: join(dir, 'tls.crt'),
        privateKey: join(dir, 'tls.key'),
        // HTTP-01 at port 80 of the address DNS gave: f1's nginx.
        httpPort: 80,
        tlsPort: ports.tlsAlpn,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }
    writeFileSync(join(dir, 'pebble.json'), JSON.stringify(config))
    assert.equal(process.env.PEBBLE_VA_ALWAYS_VALID, undefined, 'validation is real')
    start('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${ports.dns}`], {PEBBLE_VA_NOSLEEP: '1'})
    await waitUntil(
      async () => (await management('/roots/0').catch(() => '')).includes('BEGIN CERTIFICATE'),
      20_000,
      () => 'Pebble did not start',
    )
    writeFileSync(join(dir, 'root.pem'), await management('/roots/0'))
  })

  after(async () => {
    for (const child of children) child.kill('SIGTERM')
    await admin(['frontend', 'unexpose', 'shop', '--yes']).catch(() => undefined)
    await store.close()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('cert acme issue: Pebble fetches every token from f1, which passes it to the core nodes; exposed, f1 serves the certificate with its chain', async () => {
    const issued = ok(await admin(['cert', 'acme', 'issue', DOMAIN, '--email', 'ops@lab.test', '--directory', directory(), '--ca-file', tlsCa(), '--json']), 'cert acme issue').json<AcmeIssueResult>()
    assert.equal(issued.certificate?.name, DOMAIN)
    assert.deepEqual(
      Object.keys(await store.snapshot()).filter((k) => k.startsWith(store.keys.acmeChallengesPrefix())),
      [],
      'the challenges are gone',
    )
    ok(await admin(['frontend', 'expose', 'shop', '--to', `${state.hosts.find((h) => h.name === 's1')!.ip}:8080`, '--port', String(PORT), '--cert', DOMAIN]), 'frontend expose')
    const serial = (await record())!.serial
    await waitUntil(
      () => served() === serial,
      60_000,
      () => `f1 does not serve ${DOMAIN} (serial ${serial}) with a chain to Pebble's root: ${served() ?? 'no verified answer'}`,
    )
  })

  it('cert acme renew: the new certificate is served after the leader syncs, and a connection opened before the reload still gets its answer', async () => {
    const old = (await record())!.serial
    const held = spawn('openssl', ['s_client', '-connect', `${f1}:${PORT}`, '-servername', DOMAIN, '-CAfile', join(dir, 'root.pem'), '-quiet'], {stdio: ['pipe', 'pipe', 'pipe']})
    let answer = ''
    let handshake = ''
    held.stdout.on('data', (d: Buffer) => (answer += d.toString()))
    held.stderr.on('data', (d: Buffer) => (handshake += d.toString()))
    try {
      await waitUntil(
        () => /depth=0 .*\n?verify return:1/.test(handshake),
        15_000,
        () => `the held connection: ${handshake}`,
      )
      ok(await admin(['cert', 'acme', 'renew', DOMAIN, '--ca-file', tlsCa()]), 'cert acme renew')
      const renewed = (await record())!.serial
      assert.notEqual(renewed, old)
      await waitUntil(
        () => served() === renewed,
        60_000,
        () => `f1 does not serve the renewed ${renewed}: ${served()}`,
      )
      held.stdin.write(`GET / HTTP/1.1\r\nHost: ${DOMAIN}\r\nConnection: close\r\n\r\n`)
      await waitUntil(
        () => /HTTP\/1\.1 \d{3}/.test(answer),
        15_000,
        () => `no answer on the connection opened before the reload: ${answer}`,
      )
    } finally {
      held.kill()
    }
  })
})
