/**
 * Public endpoints on the lab's bootstrapped cluster (test/lab/bootstrap.test.ts runs first; the
 * file sorts after it): f1 was provisioned as a frontend (nginx-light under systemd) by the
 * cluster itself. The operator issues a certificate and exposes an endpoint; the elected certs
 * leader (serve --certs on a core node, with the cluster's SSH key) puts the certificate, its key
 * and the site on f1 by itself, and f1's nginx serves it, checked with openssl s_client from the
 * admin host against the cluster CA. A certificate that falls due is renewed by that leader and
 * served by f1 without anyone asking; unexposing the endpoint takes it off f1 the same way.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {issueCertificate} from '../../src/lib/certs/authority.js'
import {readClusterSecret} from '../../src/lib/certs/secret.js'
import {loadCa, saveIssuedCertificate, type StoredCertificate} from '../../src/lib/certs/store.js'
import {leasedAddress} from '../../src/lib/dhcp/leases.js'
import type {LeaderRecord} from '../../src/lib/election/records.js'
import type {FrontendSyncResult} from '../../src/lib/frontend/sync.js'
import {labPaths} from '../../src/lib/lab/paths.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {admin, clusterStore, inNode, lab, ok, waitUntil} from '../helpers/lab.js'

const state = lab()
const PORT = 8443
const NAME = 'www'
const store = clusterStore(state)
const caFile = join(tmpdir(), `xct-lab-frontend-ca-${process.pid}.crt`)
/** The operator's PKI directory on the admin host: the CA certificate and the cluster secret. */
const pki = join(labPaths(state.dir).adminPki, state.cluster)
let f1: string

/** What f1's nginx presents on the endpoint's port, verified against the cluster CA: its serial, or undefined. */
function served(): string | undefined {
  const r = spawnSync('sh', ['-c', `openssl s_client -connect ${f1}:${PORT} -servername www.lab.example -CAfile ${caFile} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial`], {
    encoding: 'utf8',
    timeout: 15_000,
  })
  return r.status === 0 ? r.stdout.trim().split('=')[1]?.toLowerCase() : undefined
}

const record = async () => (await store.getJson<StoredCertificate>(store.keys.issuedCert(NAME)))?.value

describe('frontends in the lab: the certs leader puts certificates on f1, whose nginx serves them', {concurrency: false}, () => {
  before(async () => {
    const node = (await store.getJson<NodeRecord>(store.keys.node('f1')))!.value
    assert.equal(node.state, 'ready', 'f1 is a ready frontend')
    f1 = (await leasedAddress(store, node.mac))!
    assert.ok(f1, "f1's leased address")
    writeFileSync(caFile, readFileSync(join(pki, 'ca.crt')))
  })

  after(async () => {
    await store.close()
    rmSync(caFile, {force: true})
  })

  it('cert issue and frontend expose: the certs leader syncs f1 by itself, nginx -t passes there and f1 serves the certificate', async () => {
    ok(await admin(['cert', 'issue', NAME, '--san', 'www.lab.example', '--san', f1]), 'cert issue')
    ok(await admin(['frontend', 'expose', NAME, '--to', `${state.hosts.find((h) => h.name === 's1')!.ip}:8080`, '--port', String(PORT), '--cert', NAME]), 'frontend expose')
    const serial = (await record())!.serial
    await waitUntil(
      () => served() === serial,
      60_000,
      () => `f1 does not serve ${NAME} (serial ${serial}): ${served() ?? 'no TLS answer'}`,
    )
    assert.equal(inNode('f1', 'systemctl is-active nginx.service').trim(), 'active')
    assert.equal(inNode('f1', `stat -c '%a %U' ${settings.frontend.tlsDir}/private/${NAME}.key`).trim(), '600 root')
    // The operator's own sync finds nothing left to do: the leader did it all.
    const sync = ok(await admin(['frontend', 'sync', '--json']), 'frontend sync').json<FrontendSyncResult>()
    assert.deepEqual(sync.nodes, [{node: 'f1', changed: [], reloaded: false}])
  })

  it('a certificate that falls due is renewed by the certs leader and served by f1, nobody asking', async () => {
    // Time passes: www becomes a one-hour certificate in the last third of its life.
    const secret = readClusterSecret(join(pki, 'cluster.secret'))
    const ca = await loadCa(store, secret)
    const life = 3_600_000
    const due = await issueCertificate(ca, {commonName: NAME, sans: ['www.lab.example', f1], profile: 'server', days: life / 86_400_000, now: new Date(Date.now() - life + 60_000)})
    await saveIssuedCertificate(store, NAME, due, {secret, keepKey: true, replace: true})
    let renewed: StoredCertificate | undefined
    await waitUntil(
      async () => {
        renewed = await record()
        return renewed?.renewedBy !== undefined && served() === renewed.serial
      },
      60_000,
      () => `not renewed and served: etcd has ${renewed?.serial} (renewed by ${JSON.stringify(renewed?.renewedBy)}), f1 serves ${served()}`,
    )
    const leader = (await store.getJson<LeaderRecord>(store.keys.electionLeader(settings.certs.keeperService)))!
    assert.deepEqual(renewed!.renewedBy, {node: leader.value.node, token: leader.createRevision})
    assert.notEqual(renewed!.serial, due.serial)
  })

  it('frontend unexpose: the leader takes the endpoint off f1, whose nginx keeps running', async () => {
    ok(await admin(['frontend', 'unexpose', NAME, '--yes']), 'frontend unexpose')
    await waitUntil(
      () => served() === undefined && !inNode('f1', `cat ${settings.frontend.nginxSite}`).includes(`listen ${PORT}`),
      60_000,
      () => `f1 still serves port ${PORT}`,
    )
    assert.equal(inNode('f1', 'systemctl is-active nginx.service').trim(), 'active')
  })
})
