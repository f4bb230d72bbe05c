/**
 * Automatic renewal by the elected `certs` service of `serve --certs`, against a real etcd with
 * TLS (the keeper writes as an operator identity it mints from the CA, as on a core node):
 * real serve processes renew a certificate as it falls due, the leader alone, under its token; a
 * leader paused with SIGSTOP renews nothing while its successor does; and a keeper whose token is
 * no longer the leadership is refused by etcd itself (the fenced transaction), leaving the
 * certificate as it was. Every renewal is observed as etcd's own write history of the key.
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {issueCertificate} from '../../src/lib/certs/authority.js'
import {CertKeeper} from '../../src/lib/certs/keeper.js'
import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {loadIssuedCertificate, saveCa, saveIssuedCertificate, type StoredCertificate} from '../../src/lib/certs/store.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {PrefixWatch} from '../../src/lib/etcd/watch.js'
import {settings} from '../../src/lib/settings.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {Daemon, electionLeader, sleep, until} from '../helpers/election-harness.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {createTestPki, type TestPki} from '../helpers/pki.js'

const SERVICE = settings.certs.keeperService
const TTL = 2
const LIFE_MS = 3_600_000

describe('serve --certs: the elected certs leader renews certificates as they fall due, fenced by its token', {concurrency: false}, () => {
  let dir: string
  let pki: TestPki
  let etcd: TestEtcd
  let store: EtcdStore
  let secret: ClusterSecret
  let secretPath: string
  let watch: PrefixWatch
  /** Every write etcd made to a certificate record, in order: what a reader of etcd saw. */
  const writes: StoredCertificate[] = []
  const daemons = new Map<string, Daemon>()

  const leader = () => electionLeader(store, SERVICE)
  const writesOf = (name: string) => writes.filter((w) => w.name === name)

  /** A one-hour certificate whose renewal falls due `inMs` from now (the last third of its life, counted from its backdated start). */
  async function storeDueIn(name: string, inMs: number): Promise<StoredCertificate> {
    const lifetime = LIFE_MS + settings.certs.backdateMs
    const issued = await issueCertificate(pki.ca, {
      commonName: name,
      sans: [`${name}.example.org`],
      profile: 'server',
      days: LIFE_MS / 86_400_000,
      now: new Date(Date.now() - (LIFE_MS - lifetime / 3 - inMs)),
    })
    await saveIssuedCertificate(store, name, issued, {secret, keepKey: true})
    return (await store.getJson<StoredCertificate>(store.keys.issuedCert(name)))!.value
  }

  const startServe = async (node: string) => {
    const files = await pki.client(`xcluster-serve-${node}`)
    const daemon = new Daemon(node, [], etcd.endpoint, undefined, [], {XCLUSTER_ETCD_CA: pki.caFile, XCLUSTER_ETCD_CERT: files.certFile, XCLUSTER_ETCD_KEY: files.keyFile}, [
      '--certs',
      '--secret-file',
      secretPath,
    ])
    daemons.set(node, daemon.start())
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-cert-keeper-'))
    pki = await createTestPki(join(dir, 'pki'))
    etcd = await startEtcd({tls: pki})
    const admin = await pki.client('xcluster-admin')
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster', ca: pki.caFile, cert: admin.certFile, key: admin.keyFile})
    secret = ClusterSecret.generate()
    secretPath = join(dir, 'cluster.secret')
    writeClusterSecret(secretPath, secret)
    await saveCa(store, pki.ca, secret)
    await applyPlan(store, await planApply(store, parseSpec(`${testSpecYaml(70)}services:\n  - {name: ${SERVICE}, ttl: ${TTL}}\n`, 'test.yaml')))
    watch = store.watchPrefix(store.keys.issuedCertsPrefix(), {onPut: (kv) => writes.push(kv.value as StoredCertificate)})
    for (const node of ['s1', 's2']) await startServe(node)
  })

  after(async () => {
    await watch?.cancel()
    await Daemon.killAll()
    await store?.close()
    await etcd?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('renews a certificate as it falls due: once, by the leader, under its token, with a new key sealed and the same names', async () => {
    const held = await until('a certs leader', leader, 15_000, 100)
    const old = await storeDueIn('api', 2000)
    const renewed = await until('api renewed', () => writesOf('api').find((w) => w.renewedBy), 20_000, 100)
    assert.deepEqual(renewed.renewedBy, held, 'renewed by the leader etcd names, under its token')
    assert.notEqual(renewed.serial, old.serial)
    assert.deepEqual([renewed.sans, renewed.profile], [old.sans, old.profile])
    const life = Date.parse(renewed.notAfter) - Date.parse(renewed.notBefore) - settings.certs.backdateMs
    assert.ok(Math.abs(life - LIFE_MS) < 2000, `the validity it had: ${life} ms`)
    const opened = await loadIssuedCertificate(store, 'api', secret)
    assert.equal(opened.serial, renewed.serial, 'its sealed key opens with the cluster secret')
    // Renewed once: no second write follows, from either daemon.
    await sleep(1500)
    assert.equal(writesOf('api').length, 2, JSON.stringify(writesOf('api').map((w) => w.renewedBy)))
    const follower = [...daemons.values()].find((d) => d.node !== held.node)!
    assert.equal(follower.events.filter((e) => e.event === 'cert-renewed').length, 0, 'the follower renewed nothing')
  })

  it('with the leader paused (SIGSTOP), its successor renews; resumed, the old leader writes nothing', async () => {
    const first = (await leader())!
    const paused = daemons.get(first.node)!
    paused.signal('SIGSTOP')
    try {
      const next = await until(
        'a new certs leader',
        async () => {
          const now = await leader()
          return now && now.node !== first.node ? now : undefined
        },
        15_000,
        100,
      )
      assert.ok(BigInt(next.token) > BigInt(first.token), 'a newer token')
      await storeDueIn('db', 1000)
      const renewed = await until('db renewed', () => writesOf('db').find((w) => w.renewedBy), 20_000, 100)
      assert.deepEqual(renewed.renewedBy, next)
    } finally {
      paused.signal('SIGCONT')
    }
    await sleep(2000)
    assert.deepEqual(
      writes.filter((w) => w.renewedBy?.node === first.node && w.renewedBy.token === first.token && w.name === 'db'),
      [],
      'the paused leader wrote nothing after it woke',
    )
    assert.equal(writesOf('db').length, 2)
  })

  it('a keeper whose token is no longer the leadership is refused by etcd: the due certificate stays as it was', async () => {
    const current = (await leader())!
    const before = await storeDueIn('old-token', -1000)
    // Stop the real daemons first, so only the stale keeper could renew it.
    await Daemon.killAll()
    const events: {event: string; details: Record<string, unknown>}[] = []
    const stale = new CertKeeper({store, node: 's9', secretPath, log: (event, details) => events.push({event, details}), adminStore: async () => store})
    try {
      stale.start(String(BigInt(current.token) - 1n))
      await until('the stale keeper tried', () => events.find((e) => e.event === 'cert-renew-refused'), 10_000, 50)
    } finally {
      await stale.close()
    }
    const refused = events.find((e) => e.event === 'cert-renew-refused')!
    assert.match(String(refused.details.error), /this leader no longer leads/)
    const now = (await store.getJson<StoredCertificate>(store.keys.issuedCert('old-token')))!.value
    assert.equal(now.serial, before.serial)
    assert.equal(writesOf('old-token').length, 1, 'no write after the first')
  })
})
