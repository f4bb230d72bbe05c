import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {HostPool, SshHost, type SshTarget} from '../../src/lib/ssh/index.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'

let sshd: TestSshd
let target: SshTarget
before(async () => {
  sshd = await startSshd()
  target = {name: 'local', address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}}
})
after(() => sshd.stop())

const WRONG = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const isError = (code: string, check?: (e: XclusterError) => void) => (e: unknown) => {
  assert.ok(e instanceof XclusterError, `expected XclusterError ${code}, got ${String(e)}`)
  assert.equal(e.code, code, e.message)
  check?.(e)
  return true
}
const acceptedLogins = () =>
  sshd
    .log()
    .split('\n')
    .filter((l) => /Accepted publickey|Failed publickey|userauth/i.test(l)).length

describe('SshHost exec', () => {
  let host: SshHost
  before(async () => (host = await SshHost.connect(target)))
  after(() => host.close())

  it('reports the pinned key it verified', () => {
    assert.deepEqual(host.hostKey, {fingerprint: sshd.hostFingerprint, decision: 'pinned'})
  })

  it('returns exit code, stdout and stderr without throwing on failure', async () => {
    const result = await host.exec('echo out; echo err >&2; exit 3')
    assert.deepEqual(result, {code: 3, stdout: 'out\n', stderr: 'err\n'})
    assert.deepEqual(await host.exec('true'), {code: 0, stdout: '', stderr: ''})
  })

  it('reports a command killed by a signal', async () => {
    const result = await host.exec('kill -KILL $$')
    assert.equal(result.code, null)
    assert.equal(result.signal, 'SIGKILL')
  })

  it('feeds stdin and always closes it', async () => {
    assert.equal((await host.exec('cat', {input: 'line 1\nline 2\n'})).stdout, 'line 1\nline 2\n')
    assert.equal((await host.exec('cat', {input: Buffer.from([0x61, 0x00, 0x62])})).stdout, 'a\0b')
    // no input: cat sees EOF instead of hanging
    assert.equal((await host.exec('cat', {timeoutMs: 5000})).code, 0)
  })

  it('exports env values for the command', async () => {
    const result = await host.exec('printf "%s" "$XC_SECRET"', {env: {XC_SECRET: "s3cr3t 'quoted' $x"}})
    assert.equal(result.stdout, "s3cr3t 'quoted' $x")
  })

  it('throws SSH_COMMAND_TIMEOUT naming the command and host (never env values), and stops the command', async () => {
    const marker = join(sshd.dir, 'timeout-marker')
    const started = Date.now()
    await assert.rejects(
      host.exec(`sleep 3 && touch ${marker}`, {timeoutMs: 300, env: {XC_TOKEN: 'hunter2'}}),
      isError('SSH_COMMAND_TIMEOUT', (e) => {
        assert.match(e.message, /sleep 3 && touch/)
        assert.match(e.message, /local/)
        assert.match(e.message, /300 ms/)
        assert.doesNotMatch(JSON.stringify({m: e.message, d: e.details, s: e.suggestion}), /hunter2/)
      }),
    )
    assert.ok(Date.now() - started < 2000)
    // The connection stays usable, and the stopped command never reached its second half.
    assert.equal((await host.exec('echo still here')).stdout, 'still here\n')
    await new Promise((r) => setTimeout(r, 3500))
    assert.equal(existsSync(marker), false)
  })

  it('run() turns a non-zero exit into SSH_COMMAND_FAILED with stderr', async () => {
    await assert.rejects(
      host.run('echo boom >&2; exit 7'),
      isError('SSH_COMMAND_FAILED', (e) => assert.match(e.message, /exited with 7:\nboom/)),
    )
    assert.equal((await host.run('echo ok')).stdout, 'ok\n')
  })

  it('runs several commands concurrently on one connection', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => host.exec(`sleep 0.2; echo ${i}`)))
    assert.deepEqual(
      results.map((r) => r.stdout),
      ['1\n', '2\n', '3\n', '4\n', '5\n'],
    )
  })

  it('validates systemctl arguments before running anything', async () => {
    await assert.rejects(host.systemctl('start', 'x; touch /tmp/pwned'), isError('USAGE'))
    await assert.rejects(host.systemctl('explode' as 'start', 'ssh'), isError('USAGE'))
  })
})

describe('host key pinning', () => {
  it('refuses a wrong pin with HOST_KEY_CHANGED before authenticating; nothing runs', async () => {
    const marker = join(sshd.dir, 'wrong-pin-marker')
    const authBefore = acceptedLogins()
    const pool = new HostPool()
    await assert.rejects(
      pool.get({...target, hostKey: {pinned: [WRONG]}}).then((h) => h.exec(`touch ${marker}`)),
      isError('HOST_KEY_CHANGED', (e) => {
        assert.equal(e.exit, 3)
        assert.ok(e.message.includes(WRONG), 'shows the expected fingerprint')
        assert.ok(e.message.includes(sshd.hostFingerprint), 'shows the presented fingerprint')
        assert.ok(e.suggestion?.includes(`xcluster node repin local --fingerprint ${sshd.hostFingerprint}`), e.suggestion)
      }),
    )
    await pool.closeAll()
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(existsSync(marker), false)
    assert.equal(acceptedLogins(), authBefore, 'sshd saw no authentication attempt')
  })

  it('acceptNewHostKey does not override a pin', async () => {
    await assert.rejects(SshHost.connect({...target, hostKey: {pinned: [WRONG], acceptNewHostKey: true}}), isError('HOST_KEY_CHANGED'))
  })

  it('accepts any of several pinned fingerprints', async () => {
    const host = await SshHost.connect({...target, hostKey: {pinned: [WRONG, sshd.hostFingerprint]}})
    assert.equal(host.hostKey.decision, 'pinned')
    await host.close()
  })

  it('refuses an unknown host with HOST_KEY_UNKNOWN unless acceptNewHostKey', async () => {
    const authBefore = acceptedLogins()
    for (const hostKey of [{}, {pinned: []}, {acceptNewHostKey: false}]) {
      await assert.rejects(
        SshHost.connect({...target, hostKey}),
        isError('HOST_KEY_UNKNOWN', (e) => {
          assert.equal(e.exit, 3)
          assert.ok(e.message.includes(sshd.hostFingerprint))
        }),
      )
    }
    assert.equal(acceptedLogins(), authBefore)
  })

  it('acceptNewHostKey connects and returns the presented fingerprint to store', async () => {
    const host = await SshHost.connect({...target, hostKey: {acceptNewHostKey: true}})
    assert.deepEqual(host.hostKey, {fingerprint: sshd.hostFingerprint, decision: 'accepted-new'})
    assert.equal((await host.exec('echo hi')).stdout, 'hi\n')
    await host.close()
  })

  it('refuses a malformed pin as a usage error', async () => {
    await assert.rejects(SshHost.connect({...target, hostKey: {pinned: ['SHA256:nope']}}), isError('USAGE'))
  })
})

describe('connection failures', () => {
  it('retries an unreachable host with back-off, then SSH_UNREACHABLE', async () => {
    const started = Date.now()
    await assert.rejects(
      SshHost.connect({...target, port: 1}, {retries: 2, timeoutMs: 1000}),
      isError('SSH_UNREACHABLE', (e) => {
        assert.equal(e.exit, 3)
        assert.match(e.message, /127\.0\.0\.1:1 after 3 attempt/)
      }),
    )
    // back-off 250 ms + 500 ms between the three attempts
    assert.ok(Date.now() - started >= 700, `took ${Date.now() - started} ms`)
  })

  it('refuses a key the host does not accept with SSH_AUTH_FAILED, without retrying', async () => {
    const otherKey = join(sshd.dir, 'other_key')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey])
    const started = Date.now()
    await assert.rejects(SshHost.connect({...target, privateKeyPath: otherKey}), isError('SSH_AUTH_FAILED'))
    assert.ok(Date.now() - started < 2000)
  })

  it('reports a missing private key without touching the network', async () => {
    await assert.rejects(SshHost.connect({...target, privateKeyPath: '/nonexistent/key'}), isError('SSH_KEY_UNREADABLE'))
    await assert.rejects(
      SshHost.connect({...target, privateKeyPath: `${sshd.clientKeyPath}.pub`}),
      isError('SSH_KEY_INVALID', (e) => assert.doesNotMatch(JSON.stringify(e.toJSON()), /AAAA/)),
    )
  })
})

describe('HostPool', () => {
  it('returns the same live connection across calls, also when asked concurrently', async () => {
    const pool = new HostPool()
    const [a, b, c] = await Promise.all([pool.get(target), pool.get(target), pool.get(target)])
    assert.equal(a, b)
    assert.equal(b, c)
    assert.equal(await pool.get(target), a)
    await pool.closeAll()
    assert.equal(a.alive, false)
  })

  it('reconnects after the server dropped the connection', async () => {
    const pool = new HostPool()
    const first = await pool.get(target)
    assert.equal((await first.exec('echo one')).stdout, 'one\n')
    sshd.dropConnections()
    const deadline = Date.now() + 5000
    while (first.alive && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.equal(first.alive, false)
    await assert.rejects(first.exec('true'), isError('SSH_DISCONNECTED'))
    const second = await pool.get(target)
    assert.notEqual(second, first)
    assert.equal((await second.exec('echo two')).stdout, 'two\n')
    assert.equal(await pool.get(target), second)
    await pool.closeAll()
  })

  it('does not keep a failed connection', async () => {
    const pool = new HostPool({retries: 0})
    await assert.rejects(pool.get({...target, hostKey: {pinned: [WRONG]}}), isError('HOST_KEY_CHANGED'))
    assert.equal(pool.size, 0)
  })
})
