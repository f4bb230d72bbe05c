/**
 * Enlistment against real etcd and a real HTTP exchange: the DHCP leader's receiver takes a
 * node's host keys only from the address leased to its MAC, only the first report, only while it
 * leads, and `node add` pins what was enlisted. Reports come from distinct loopback addresses
 * (127.0.0.2, ...), each standing for a node's leased address; the keys are real, from ssh-keygen.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {request} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, beforeEach, describe, it} from 'node:test'

import {EnlistmentReceiver} from '../../src/lib/dhcp/enlistment-receiver.js'
import type {Lease} from '../../src/lib/dhcp/lease.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {pinEnlistedHostKeys, readEnlistment, type EnlistmentRecord} from '../../src/lib/nodes/enlistment.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {HostKeyStore} from '../../src/lib/ssh/index.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

const C1 = '02:58:43:00:02:01'
const C2 = '02:58:43:00:02:02'
const LEASED = '127.0.0.2'
const EXPIRED = '127.0.0.4'
const UNLEASED = '127.0.0.3'

let etcd: TestEtcd
let store: EtcdStore
let receiver: EnlistmentReceiver
let dir: string
let leading = true
let token = ''
const events: {event: string; details: Record<string, unknown>}[] = []

/** A real host key pair per name, as sshd's key generation leaves them. */
function hostKeys(name: string): {pub: string; fingerprints: string[]} {
  const lines: string[] = []
  const fingerprints: string[] = []
  for (const type of ['ed25519', 'ecdsa']) {
    const path = join(dir, `${name}_ssh_host_${type}_key`)
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `root@${name}`, '-f', path])
    lines.push(readFileSync(`${path}.pub`, 'utf8').trim())
    fingerprints.push(execFileSync('ssh-keygen', ['-lf', `${path}.pub`], {encoding: 'utf8'}).split(' ')[1] as string)
  }
  return {pub: `${lines.join('\n')}\n`, fingerprints}
}

/** An HTTP request to the receiver from `from`, as a node at that address would send it. */
function send(from: string, body: string, options: {method?: string; path?: string} = {}): Promise<{status: number; text: string}> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port: receiver.port, localAddress: from, method: options.method ?? 'POST', path: options.path ?? settings.enlistment.path}, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, text}))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function putLease(ip: string, mac: string, expiresInMs: number): Promise<void> {
  const lease: Lease = {ip, mac, type: 'compute', state: 'bound', expiresAt: new Date(Date.now() + expiresInMs).toISOString(), grantedBy: '127.0.0.1'}
  await store.transaction().put(store.keys.lease(ip), lease).commit()
}

const enlisted = (mac: string): Promise<EnlistmentRecord | undefined> => readEnlistment(store, mac)

describe('enlistment: the DHCP leader takes host keys from leased addresses', {concurrency: false}, () => {
  let c1: {pub: string; fingerprints: string[]}

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-enlist-'))
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(testSpecYaml(70), 'test.yaml')))
    const leaderKey = store.keys.electionLeader('dhcp')
    const written = await store.transaction().put(leaderKey, {node: 's1'}).commitAt()
    token = written.revision
    receiver = new EnlistmentReceiver({
      store,
      address: '127.0.0.1',
      port: 0,
      canServe: async () => (leading ? {ok: true, token} : {ok: false}),
      fence: (txn, leaderToken) => void txn.ifCreatedAt(leaderKey, leaderToken ?? '-1'),
      log: (event, details) => events.push({event, details}),
    })
    await receiver.start()
    c1 = hostKeys('c1')
  })
  beforeEach(async () => {
    leading = true
    await store.call('clear', (c) => c.delete().prefix(store.keys.enlistedPrefix()).exec())
    await store.call('clear', (c) => c.delete().prefix(store.keys.hostKeysPrefix()).exec())
    await putLease(LEASED, C1, 3_600_000)
    await putLease(EXPIRED, C2, -1000)
  })
  after(async () => {
    await receiver.stop()
    await store.close()
    await etcd.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  it("stores the first report for the MAC leased the sender's address, with ssh-keygen's fingerprints", async () => {
    const r = await send(LEASED, c1.pub)
    assert.equal(r.status, 201, r.text)
    assert.match(r.text, new RegExp(`^enlisted ${C1}: `))
    const record = await enlisted(C1)
    assert.equal(record?.ip, LEASED)
    assert.deepEqual(
      record?.hostKeys.map((k) => k.fingerprint),
      c1.fingerprints,
    )
    assert.deepEqual(
      record?.hostKeys.map((k) => k.type),
      ['ssh-ed25519', 'ecdsa-sha2-nistp256'],
    )
  })

  it('a repeat of the same keys is answered 200; other keys for that MAC are refused (409) and the first report stands', async () => {
    assert.equal((await send(LEASED, c1.pub)).status, 201)
    const again = await send(LEASED, c1.pub)
    assert.equal(again.status, 200, again.text)
    const impostor = await send(LEASED, hostKeys('impostor').pub)
    assert.equal(impostor.status, 409, impostor.text)
    assert.match(impostor.text, /first report stands/)
    assert.deepEqual(
      (await enlisted(C1))?.hostKeys.map((k) => k.fingerprint),
      c1.fingerprints,
    )
  })

  it('refuses a sender without a live lease (none, or expired): 403, nothing written', async () => {
    const none = await send(UNLEASED, c1.pub)
    assert.equal(none.status, 403, none.text)
    assert.match(none.text, /127\.0\.0\.3 holds no DHCP lease/)
    const expired = await send(EXPIRED, c1.pub)
    assert.equal(expired.status, 403, expired.text)
    assert.equal(await enlisted(C2), undefined)
    assert.equal(await enlisted(C1), undefined)
  })

  it('refuses bad reports with what is wrong: no key, not a host key, a broken key, too big, wrong method or path', async () => {
    const cases: [string, Promise<{status: number; text: string}>, number, RegExp][] = [
      ['empty', send(LEASED, '\n# nothing\n'), 400, /names no host key/],
      ['user key type', send(LEASED, 'ssh-dss AAAAB3NzaC1kc3MAAACBAP== x\n'), 400, /not an SSH host key type/],
      ['broken key', send(LEASED, `${c1.pub.split('\n')[0]!.slice(0, 40)}\n`), 400, /not an OpenSSH public key line/],
      ['too big', send(LEASED, 'x'.repeat(settings.enlistment.maxReportBytes + 1)), 413, /larger than/],
      ['GET', send(LEASED, '', {method: 'GET'}), 405, /POST/],
      ['path', send(LEASED, c1.pub, {path: '/other'}), 404, /report to \/enlist/],
    ]
    for (const [what, answer, status, text] of cases) {
      const r = await answer
      assert.equal(r.status, status, `${what}: ${r.text}`)
      assert.match(r.text, text, what)
    }
    assert.equal(await enlisted(C1), undefined)
  })

  it('only the leader takes reports: a server that does not lead, or whose token is stale, answers 503 and writes nothing', async () => {
    leading = false
    const follower = await send(LEASED, c1.pub)
    assert.equal(follower.status, 503, follower.text)
    assert.match(follower.text, /not the DHCP leader/)
    leading = true
    const current = token
    token = '1' // a token etcd's leader key was not created at: a deposed leader's
    try {
      const stale = await send(LEASED, c1.pub)
      assert.equal(stale.status, 503, stale.text)
    } finally {
      token = current
    }
    assert.equal(await enlisted(C1), undefined)
  })

  it('node add pins the enlisted keys before its first connection, once; an existing pin is left alone', async () => {
    assert.equal((await send(LEASED, c1.pub)).status, 201)
    const node = (await store.getJson<NodeRecord>(store.keys.node('c1')))!.value
    assert.equal(node.mac, C1)
    assert.deepEqual(await pinEnlistedHostKeys(store, node, true), c1.fingerprints, 'dry run: what it would pin')
    assert.equal(await new HostKeyStore(store).get('c1'), undefined, 'the dry run pinned')
    assert.deepEqual(await pinEnlistedHostKeys(store, node, false), c1.fingerprints)
    const pin = await new HostKeyStore(store).get('c1')
    assert.deepEqual(pin?.fingerprints, c1.fingerprints)
    assert.equal(pin?.source, 'enlistment')
    assert.deepEqual(await pinEnlistedHostKeys(store, node, false), [], 'pinned already')
    const c2 = (await store.getJson<NodeRecord>(store.keys.node('c2')))!.value
    assert.deepEqual(await pinEnlistedHostKeys(store, c2, false), [], 'c2 never enlisted')
  })
})
