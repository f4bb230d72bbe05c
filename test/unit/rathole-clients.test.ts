/**
 * RatholeClientConfigs on a real directory, without etcd: one 0600 file per serving frontend,
 * rewritten only when its content differs (the inode shows a rename), a wrong mode put right,
 * stale clients and a killed write's temporary file removed, other files left alone, and a state
 * that cannot be rendered leaving the files as they were. The keeper's use of it, under a real
 * election, is in test/etcd/rathole-clients.test.ts.
 */
import assert from 'node:assert/strict'
import {chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {newToken, type FrontendRecord} from '../../src/lib/frontend/endpoint.js'
import {RatholeClientConfigs} from '../../src/lib/frontend/rathole-clients.js'
import {defaultLayout, renderRatholeClient, type FrontendNode, type FrontendState} from '../../src/lib/frontend/render.js'

const shop: FrontendRecord = {name: 'shop', target: {kind: 'service', service: 'web', port: 8080}, port: 443, tunnelPort: 20_000, token: newToken(), createdAt: '2026-01-01T00:00:00.000Z'}
const f1: FrontendNode = {name: 'f1', type: 'frontend', state: 'ready', ip: '10.0.0.71'}
const f2: FrontendNode = {name: 'f2', type: 'frontend', state: 'ready', ip: '10.0.0.72'}
const state = (nodes: FrontendNode[], endpoints: FrontendRecord[] = [shop]): FrontendState => ({
  endpoints,
  nodes: [{name: 's1', type: 'core', state: 'ready', ip: '10.0.0.2'}, ...nodes],
  certSans: {},
  serviceVips: {web: '10.0.0.253'},
})

describe('RatholeClientConfigs: the Rathole clients a core node keeps while it leads', () => {
  const root = mkdtempSync(join(tmpdir(), 'xct-rathole-clients-unit-'))
  after(() => rmSync(root, {recursive: true, force: true}))

  it('writes one 0600 client per serving frontend, rewrites only what differs, removes stale clients and temporary files, keeps other files', () => {
    const dir = join(root, 'a', 'clients')
    const clients = new RatholeClientConfigs(dir)
    assert.deepEqual(clients.update(state([f1, {...f2, state: 'registered'}])), {written: ['rathole-client-f1.toml'], removed: []})
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'the directory it created is its own')
    const f1Path = join(dir, 'rathole-client-f1.toml')
    const s = state([f1])
    assert.equal(readFileSync(f1Path, 'utf8'), renderRatholeClient(f1, s, defaultLayout(), {redact: false}))
    assert.equal(statSync(f1Path).mode & 0o777, 0o600)
    const inode = statSync(f1Path).ino

    chmodSync(f1Path, 0o644)
    writeFileSync(join(dir, 'rathole-client-f1.toml.tmp-4242'), 'half a file')
    writeFileSync(join(dir, 'rathole-client-gone.toml'), 'a frontend no longer served')
    writeFileSync(join(dir, 'README'), 'not ours')
    assert.deepEqual(clients.update(state([f1, f2])), {written: ['rathole-client-f2.toml'], removed: ['rathole-client-f1.toml.tmp-4242', 'rathole-client-gone.toml']})
    assert.equal(statSync(f1Path).ino, inode, 'the same content: not rewritten')
    assert.equal(statSync(f1Path).mode & 0o777, 0o600, 'its mode put right')
    assert.deepEqual(readdirSync(dir).sort(), ['README', 'rathole-client-f1.toml', 'rathole-client-f2.toml'])

    assert.deepEqual(clients.update(state([f1, f2], [])), {written: ['rathole-client-f1.toml', 'rathole-client-f2.toml'], removed: []}, 'no endpoint left: empty clients')
    assert.notEqual(statSync(f1Path).ino, inode, 'replaced whole, by a rename')
    assert.deepEqual(clients.update(state([f2], [])), {written: [], removed: ['rathole-client-f1.toml']})
    assert.deepEqual(clients.removeAll(), ['rathole-client-f2.toml'])
    assert.deepEqual(readdirSync(dir), ['README'])
  })

  it('a state that cannot be rendered (a service without its VIP) throws and leaves the files as they were; a missing directory has nothing to remove', () => {
    const dir = join(root, 'b')
    const clients = new RatholeClientConfigs(dir)
    assert.deepEqual(clients.removeAll(), [])
    clients.update(state([f1]))
    const before = readFileSync(join(dir, 'rathole-client-f1.toml'), 'utf8')
    assert.throws(() => clients.update({...state([f1, f2]), serviceVips: {}}), /FRONTEND_TARGET_UNRESOLVED|no longer gives a VIP/)
    assert.deepEqual(readdirSync(dir), ['rathole-client-f1.toml'])
    assert.equal(readFileSync(join(dir, 'rathole-client-f1.toml'), 'utf8'), before)
  })
})
