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
import {spawn, spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {AcmeIssueResult} from '../../src/lib/certs/acme.js'
import type {StoredCertificate} from '../../src/lib/certs/store.js'
import {leasedAddress} from '../../src/lib/dhcp/leases.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {admin, clusterStore, lab, ok, waitUntil} from '../helpers/lab.js'
import {startPebble, type Pebble} from '../helpers/pebble.js'

const state = lab()
const store = clusterStore(state)
const DOMAIN = 'shop.lab.test'
const PORT = 9443
let pebble: Pebble | undefined
let dir: string
let f1: string

const directory = () => pebble!.directory
const tlsCa = () => pebble!.tlsCaFile

/** Pebble's management API (HTTPS, trusting only the test CA made for it): the body of a 200. */
async function management(path: string): Promise<string> {
  const r = await pebble!.management(path)
  if (r.status !== 200) throw new Error(`${path}: ${r.status}`)
  return r.body
}

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

describe('ACME in the lab: Pebble validates through f1’s nginx and the core nodes’ responder; f1 serves what it issued', {concurrency: false}, () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-lab-acme-'))
    const node = (await store.getJson<NodeRecord>(store.keys.node('f1')))!.value
    assert.equal(node.state, 'ready', 'f1 is a ready frontend')
    f1 = (await leasedAddress(store, node.mac))!
    // The site (port 80 passing ACME challenges to the admin VIP) on f1, before any endpoint.
    ok(await admin(['frontend', 'sync']), 'frontend sync')

    // Every name resolves to f1; HTTP-01 at port 80 of f1: its nginx.
    pebble = await startPebble({dir, address: f1, httpPort: 80})
    writeFileSync(join(dir, 'root.pem'), await management('/roots/0'))
  })

  after(async () => {
    await pebble?.stop()
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
