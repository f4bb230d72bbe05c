/**
 * The Rathole clients' configs of the elected `certs` leader, against a real etcd with TLS and
 * real `serve --certs` processes, each with a directory of its own (XCLUSTER_RATHOLE_CLIENT_DIR):
 * the leader's directory holds one `rathole-client-<frontend>.toml` per ready frontend (0600),
 * each exactly what renderRatholeClient makes of etcd's state, and the follower's none; a frontend
 * becoming ready adds its file without rewriting the other; exposing and unexposing an endpoint
 * rewrite them; a frontend no longer ready loses its file; a leader stopped with SIGTERM removes
 * its files and its successor writes them. No daemon logs a token.
 */
import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parse} from 'smol-toml'

import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {saveCa} from '../../src/lib/certs/store.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {FrontendRecord} from '../../src/lib/frontend/endpoint.js'
import {exposeFrontend, planUnexpose, readFrontendState} from '../../src/lib/frontend/registry.js'
import {defaultLayout, ratholeClientFileName, renderRatholeClient} from '../../src/lib/frontend/render.js'
import type {NodeRecord, NodeState} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {Daemon, electionLeader, until} from '../helpers/election-harness.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {createTestPki, type TestPki} from '../helpers/pki.js'

const SERVICE = settings.certs.keeperService
const TTL = 2
const F1 = '10.72.0.71'
const F2 = '10.72.0.72'
const WEB_VIP = '10.72.0.253'

interface ClientToml {
  client: {remote_addr: string; services: Record<string, {type: string; local_addr: string; token: string}>}
}

describe('serve --certs: the certs leader keeps the Rathole clients, one per ready frontend, on its own node', {concurrency: false}, () => {
  let dir: string
  let pki: TestPki
  let etcd: TestEtcd
  let store: EtcdStore
  const daemons = new Map<string, Daemon>()
  const clientDir = (node: string) => join(dir, 'clients', node)
  const filesIn = (node: string) => (existsSync(clientDir(node)) ? readdirSync(clientDir(node)).sort() : [])

  const leader = () => electionLeader(store, SERVICE)
  const setState = async (node: string, state: NodeState) => {
    const record = (await store.getJson<NodeRecord>(store.keys.node(node)))!.value
    await store.put(store.keys.node(node), {...record, state})
  }
  /** Each client file the leader should hold now, by name: rendered from etcd as it is. */
  const expected = async (): Promise<Record<string, string>> => {
    const state = await readFrontendState(store)
    const ready = state.nodes.filter((n) => n.type === 'frontend' && n.state === 'ready')
    return Object.fromEntries(ready.map((f) => [ratholeClientFileName(f.name), renderRatholeClient(f, state, defaultLayout(), {redact: false})]))
  }
  /**
   * What NODE's directory holds. A file gone between the listing and its read was a write's
   * temporary file, renamed meanwhile (CI caught one): it is left out, and the next round sees
   * the file it became.
   */
  const contents = (node: string): Record<string, string> =>
    Object.fromEntries(
      filesIn(node).flatMap((f) => {
        try {
          return [[f, readFileSync(join(clientDir(node), f), 'utf8')]]
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
          throw error
        }
      }),
    )
  /** Waits until NODE's directory holds exactly what etcd's state renders to. */
  const holdsRendered = async (node: string, what: string): Promise<Record<string, string>> => {
    let want: Record<string, string> = {}
    await until(
      what,
      async () => {
        want = await expected()
        return JSON.stringify(contents(node)) === JSON.stringify(want)
      },
      15_000,
      100,
    )
    return want
  }
  /** Every token an endpoint had during the test: none may appear in a daemon's log. */
  const seenTokens = new Set<string>()
  const tokens = async (): Promise<Record<string, string>> => {
    const records = (await store.listJson<FrontendRecord>(store.keys.frontendsPrefix())).map((r) => r.value)
    for (const r of records) seenTokens.add(r.token)
    return Object.fromEntries(records.map((r) => [r.name, r.token]))
  }

  const startServe = async (node: string) => {
    const files = await pki.client(`xcluster-serve-${node}`)
    const env = {XCLUSTER_ETCD_CA: pki.caFile, XCLUSTER_ETCD_CERT: files.certFile, XCLUSTER_ETCD_KEY: files.keyFile, XCLUSTER_RATHOLE_CLIENT_DIR: clientDir(node)}
    daemons.set(node, new Daemon(node, [], etcd.endpoint, undefined, [], env, ['--certs', '--secret-file', join(dir, 'cluster.secret')]).start())
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-rathole-clients-'))
    pki = await createTestPki(join(dir, 'pki'))
    etcd = await startEtcd({tls: pki})
    const admin = await pki.client('xcluster-admin')
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster', ca: pki.caFile, cert: admin.certFile, key: admin.keyFile})
    const secret = ClusterSecret.generate()
    writeClusterSecret(join(dir, 'cluster.secret'), secret)
    await saveCa(store, pki.ca, secret)
    const spec = testSpecYaml(72).replace('{name: f1, mac: "02:58:43:00:03:01"}', `{name: f1, mac: "02:58:43:00:03:01", ip: ${F1}}\n  - {name: f2, mac: "02:58:43:00:03:02", ip: ${F2}}`)
    const services = `services:\n  - {name: ${SERVICE}, ttl: ${TTL}}\n  - {name: web, start: 'true', stop: 'true', nodes: [s1, s2], vip: ${WEB_VIP}}\n`
    await applyPlan(store, await planApply(store, parseSpec(`${spec}${services}`, 'test.yaml')))
    await setState('f1', 'ready')
    await exposeFrontend(store, {name: 'shop', to: 'web:8080', port: 8443})
    for (const node of ['s1', 's2']) await startServe(node)
  })

  after(async () => {
    await Daemon.killAll()
    await store?.close()
    await etcd?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it("the leader's directory holds one client per ready frontend (0600), as renderRatholeClient renders it; the follower's none", async () => {
    const held = await until('a certs leader', leader, 15_000, 100)
    await holdsRendered(held.node, "the leader's client for f1")
    assert.deepEqual(filesIn(held.node), ['rathole-client-f1.toml'], 'f2 is not ready: no client for it')
    const path = join(clientDir(held.node), 'rathole-client-f1.toml')
    assert.equal(statSync(path).mode & 0o777, 0o600)
    const toml = parse(readFileSync(path, 'utf8')) as unknown as ClientToml
    assert.equal(toml.client.remote_addr, `${F1}:${settings.frontend.ratholePort}`)
    assert.deepEqual(Object.keys(toml.client.services), ['shop'])
    assert.deepEqual({...toml.client.services.shop}, {type: 'tcp', local_addr: `${WEB_VIP}:8080`, token: (await tokens()).shop})
    const follower = [...daemons.keys()].find((n) => n !== held.node)!
    assert.deepEqual(filesIn(follower), [])
  })

  it('a frontend becoming ready gets its client (the other file untouched); expose and unexpose rewrite both; a frontend no longer ready loses its file', async () => {
    const held = (await leader())!
    const f1Path = join(clientDir(held.node), 'rathole-client-f1.toml')
    const f1Inode = statSync(f1Path).ino
    await setState('f2', 'ready')
    await holdsRendered(held.node, "f2's client")
    assert.deepEqual(filesIn(held.node), ['rathole-client-f1.toml', 'rathole-client-f2.toml'])
    assert.equal(statSync(f1Path).ino, f1Inode, "f1's file, whose content did not change, was not rewritten")

    await exposeFrontend(store, {name: 'api', to: '10.72.0.51:9000', port: 9080})
    await holdsRendered(held.node, 'both clients with api')
    assert.notEqual(statSync(f1Path).ino, f1Inode, "f1's file replaced whole (renamed over)")
    const withApi = parse(readFileSync(join(clientDir(held.node), 'rathole-client-f2.toml'), 'utf8')) as unknown as ClientToml
    assert.equal(withApi.client.remote_addr, `${F2}:${settings.frontend.ratholePort}`)
    assert.deepEqual(Object.keys(withApi.client.services).sort(), ['api', 'shop'])
    assert.equal(withApi.client.services.api?.local_addr, '10.72.0.51:9000')
    assert.equal(withApi.client.services.api?.token, (await tokens()).api)

    await (await planUnexpose(store, 'api')).commit()
    await holdsRendered(held.node, 'both clients without api')
    for (const file of filesIn(held.node)) {
      const toml = parse(readFileSync(join(clientDir(held.node), file), 'utf8')) as unknown as ClientToml
      assert.deepEqual(Object.keys(toml.client.services), ['shop'], file)
    }

    await setState('f2', 'draining')
    await holdsRendered(held.node, "f2's client removed")
    assert.deepEqual(filesIn(held.node), ['rathole-client-f1.toml'])
    for (const file of filesIn(held.node)) assert.equal(statSync(join(clientDir(held.node), file)).mode & 0o777, 0o600, file)
  })

  it('a leader stopped with SIGTERM removes its clients; its successor writes them', async () => {
    const first = (await leader())!
    assert.deepEqual(filesIn(first.node), ['rathole-client-f1.toml'])
    await daemons.get(first.node)!.stop('SIGTERM')
    assert.deepEqual(filesIn(first.node), [], 'no client left on the node that no longer leads')
    const next = await until(
      'a new certs leader',
      async () => {
        const now = await leader()
        return now && now.node !== first.node ? now : undefined
      },
      15_000,
      100,
    )
    const written = await holdsRendered(next.node, "the successor's clients")
    assert.deepEqual(Object.keys(written), ['rathole-client-f1.toml'])
    assert.deepEqual(filesIn(first.node), [])
  })

  it('no daemon logged a token', async () => {
    await tokens()
    assert.equal(seenTokens.size, 2, 'shop and api')
    const logged = [...daemons.values()].map((d) => JSON.stringify(d.events)).join('\n')
    assert.match(logged, /rathole-clients-written/)
    assert.match(logged, /rathole-clients-removed/)
    for (const token of seenTokens) assert.ok(!logged.includes(token), 'a token was logged')
  })
})
