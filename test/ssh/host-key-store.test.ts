import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {HostKeyStore, SshHost} from '../../src/lib/ssh/index.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'

const FP_A = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const FP_B = 'SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'

let etcd: TestEtcd
let sshd: TestSshd
let store: EtcdStore
let pins: HostKeyStore
before(async () => {
  ;[etcd, sshd] = await Promise.all([startEtcd(), startSshd()])
  store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'test'})
  pins = new HostKeyStore(store)
})
after(async () => {
  await store.close()
  await Promise.all([etcd.stop(), sshd.stop()])
})

const isError = (code: string) => (e: unknown) => e instanceof XclusterError && e.code === code

describe('HostKeyStore', () => {
  it('pins create-only under KeySchema.hostKey(name)', async () => {
    assert.equal(await pins.get('s1'), undefined)
    const {created, record} = await pins.pin('s1', FP_A)
    assert.equal(created, true)
    assert.deepEqual(record.fingerprints, [FP_A])
    assert.equal(record.source, 'registration')
    assert.ok(!Number.isNaN(Date.parse(record.pinnedAt)))
    const raw = await store.getJson(store.keys.hostKey('s1'))
    assert.equal(raw?.key, '/xcluster/test/hostkeys/s1')
    assert.deepEqual(raw?.value, record)
  })

  it('pinning the same fingerprint again is a no-op', async () => {
    const before = await store.snapshot()
    const {created, record} = await pins.pin('s1', FP_A)
    assert.equal(created, false)
    assert.deepEqual(record.fingerprints, [FP_A])
    assert.deepEqual(await store.snapshot(), before)
  })

  it('refuses a different fingerprint and writes nothing', async () => {
    const before = await store.snapshot()
    await assert.rejects(pins.pin('s1', FP_B), (e: unknown) => {
      assert.ok(isError('HOST_KEY_ALREADY_PINNED')(e))
      const err = e as XclusterError
      assert.equal(err.exit, 3)
      assert.ok(err.message.includes(FP_A) && err.message.includes(FP_B))
      assert.match(err.suggestion ?? '', /xcluster node repin s1 --fingerprint SHA256:B/)
      return true
    })
    assert.deepEqual(await store.snapshot(), before)
  })

  it('only one of two concurrent first pins wins', async () => {
    const results = await Promise.allSettled([pins.pin('s2', FP_A), pins.pin('s2', FP_B)])
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    assert.equal((await pins.get('s2'))?.fingerprints.length, 1)
  })

  it('repin replaces the pin explicitly', async () => {
    const record = await pins.repin('s1', FP_B)
    assert.equal(record.source, 'repin')
    assert.deepEqual((await pins.get('s1'))?.fingerprints, [FP_B])
  })

  it('refuses malformed fingerprints and node names, writing nothing', async () => {
    const before = await store.snapshot()
    await assert.rejects(pins.pin('s3', 'SHA256:short'), isError('USAGE'))
    await assert.rejects(pins.repin('s1', 'md5:aa'), isError('USAGE'))
    await assert.rejects(pins.pin('../etc', FP_A), /Invalid node name/)
    assert.deepEqual(await store.snapshot(), before)
  })

  it('accept-new then pin: the next connection is checked against the stored pin', async () => {
    const target = {name: 'local', address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath}
    const first = await SshHost.connect({...target, hostKey: await pins.policy('local', {acceptNewHostKey: true})})
    assert.equal(first.hostKey.decision, 'accepted-new')
    await pins.remember(first)
    await first.close()
    const record = await pins.get('local')
    assert.deepEqual(record, {...record, fingerprints: [sshd.hostFingerprint], source: 'accept-new'})
    const second = await SshHost.connect({...target, hostKey: await pins.policy('local', {acceptNewHostKey: true})})
    await pins.remember(second)
    assert.equal(second.hostKey.decision, 'pinned')
    await second.close()
    // A pin that no longer matches stays a refusal even with acceptNewHostKey.
    await pins.repin('local', FP_A)
    await assert.rejects(SshHost.connect({...target, hostKey: await pins.policy('local', {acceptNewHostKey: true})}), isError('HOST_KEY_CHANGED'))
    assert.deepEqual(await pins.policy('nobody'), {pinned: [], acceptNewHostKey: false})
  })
})
