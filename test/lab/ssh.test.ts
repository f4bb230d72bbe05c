/**
 * The SSH library against REAL lab nodes (systemd-nspawn containers with their own sshd and
 * host key). Runs inside the admin namespace, which can reach the nodes:
 *   ip netns exec xc-admin node --import tsx --test test/lab/ssh.test.ts
 * Needs a lab that is up (`xcluster lab up`); a missing lab state fails loudly.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {readLabState} from '../../src/lib/lab/state.js'
import {fingerprintOfPublicKey, HostPool, SshHost, type SshTarget} from '../../src/lib/ssh/index.js'

const NODES = ['s1', 's2', 's3']
const WRONG = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'

const state = readLabState()
const targets: SshTarget[] = NODES.map((name) => {
  const host = state.hosts.find((h) => h.name === name && h.kind === 'node')
  if (!host?.ip || !host.hostKeyFingerprint) throw new Error(`lab state has no address or host key fingerprint for ${name}`)
  return {name, address: host.ip, user: state.sshUser, privateKeyPath: state.sshKey, hostKey: {pinned: [host.hostKeyFingerprint]}}
})
const labHost = (name: string) => state.hosts.find((h) => h.name === name)!
const isError = (code: string, check?: (e: XclusterError) => void) => (e: unknown) => {
  assert.ok(e instanceof XclusterError, `expected ${code}, got ${String(e)}`)
  assert.equal(e.code, code, e.message)
  check?.(e)
  return true
}

const pool = new HostPool()
after(() => pool.closeAll())

describe('lab nodes over SSH with pinned host keys', () => {
  before(() => assert.ok(existsSync('/run/netns/xc-admin'), 'the lab admin namespace xc-admin must exist'))

  it("the pinned fingerprints in the lab state match the nodes' public keys", () => {
    for (const t of targets) {
      const host = labHost(t.name)
      if (host.hostPublicKey) assert.equal(fingerprintOfPublicKey(host.hostPublicKey), host.hostKeyFingerprint)
    }
  })

  it('connects to every node with its pin and runs hostname (pooled, concurrently)', async () => {
    const hosts = await Promise.all(targets.map((t) => pool.get(t)))
    for (const [i, host] of hosts.entries()) {
      assert.deepEqual(host.hostKey, {fingerprint: labHost(targets[i].name).hostKeyFingerprint, decision: 'pinned'})
      assert.equal((await host.run('hostname')).stdout.trim(), targets[i].name)
      assert.equal(await pool.get(targets[i]), host, 'the pool hands out the same connection')
    }
  })

  it('systemctl: ssh is active; a transient unit starts and stops', async () => {
    for (const t of targets) {
      const host = await pool.get(t)
      assert.equal((await host.systemctl('is-active', 'ssh')).stdout.trim(), 'active')
      // Leftovers from an earlier interrupted run would make systemd-run refuse the name.
      await host.systemctl('stop', 'xc-test')
      await host.systemctl('reset-failed', 'xc-test')
      await host.run('systemd-run --unit xc-test sleep 60', {sudo: true})
      assert.equal((await host.systemctl('is-active', 'xc-test')).stdout.trim(), 'active')
      assert.equal((await host.systemctl('stop', 'xc-test')).code, 0)
      const after = await host.systemctl('is-active', 'xc-test')
      assert.notEqual(after.code, 0)
      assert.match(after.stdout.trim(), /inactive|unknown|failed/)
    }
  })

  it('uploads a file with mode and owner, then reads it back', async () => {
    for (const t of targets) {
      const host = await pool.get(t)
      const path = `/etc/xcluster-ssh-test-${t.name}.conf`
      const content = `node = ${t.name}\nnonce = ${randomBytes(8).toString('hex')}\n`
      await host.upload(content, path, {mode: 0o640, owner: 'root', group: 'nogroup'})
      assert.equal((await host.run(`stat -c '%a %U %G' ${path}`)).stdout, '640 root nogroup\n')
      assert.equal((await host.download(path)).toString(), content)
      await host.upload('replaced\n', path, {mode: 0o600})
      assert.equal((await host.run(`cat ${path}; stat -c %a ${path}; ls -a /etc | grep -c '\\.xc-' || true`)).stdout, 'replaced\n600\n0\n')
      await host.run(`rm -f ${path}`)
    }
  })

  it('times out a hung command and keeps the connection usable', async () => {
    const host = await pool.get(targets[0])
    await assert.rejects(
      host.exec('sleep 30', {timeoutMs: 500}),
      isError('SSH_COMMAND_TIMEOUT', (e) => assert.match(e.message, /sleep 30.*s1/)),
    )
    assert.equal((await host.run('echo ok')).stdout, 'ok\n')
    await new Promise((r) => setTimeout(r, 1500))
    assert.equal(
      (await host.exec(`for p in /proc/[0-9]*; do tr '\\0' ' ' 2>/dev/null < $p/cmdline; echo; done | grep -c '^sleep 30 $' || true`)).stdout.trim(),
      '0',
      'the timed-out command was killed on the node',
    )
  })

  it('refuses a wrong pin with HOST_KEY_CHANGED before authenticating; nothing runs', async () => {
    const marker = `/tmp/xc-wrong-pin-${randomBytes(4).toString('hex')}`
    for (const t of targets) {
      const wrongPool = new HostPool({retries: 0})
      await assert.rejects(
        wrongPool.get({...t, hostKey: {pinned: [WRONG]}}).then((h) => h.exec(`touch ${marker}`)),
        isError('HOST_KEY_CHANGED', (e) => {
          assert.equal(e.exit, 3)
          assert.ok(e.message.includes(WRONG) && e.message.includes(labHost(t.name).hostKeyFingerprint!))
          assert.ok(e.suggestion?.includes(`xcluster node repin ${t.name} --fingerprint`))
        }),
      )
      await wrongPool.closeAll()
      const host = await pool.get(t)
      assert.equal((await host.exec(`test -e ${marker}`)).code, 1, `${marker} must not exist on ${t.name}`)
    }
  })

  it('refuses an unpinned node unless acceptNewHostKey, which returns the presented fingerprint', async () => {
    const t = targets[1]
    await assert.rejects(SshHost.connect({...t, hostKey: {}}, {retries: 0}), isError('HOST_KEY_UNKNOWN'))
    const host = await SshHost.connect({...t, hostKey: {acceptNewHostKey: true}}, {retries: 0})
    assert.deepEqual(host.hostKey, {fingerprint: labHost(t.name).hostKeyFingerprint, decision: 'accepted-new'})
    await host.close()
  })
})
