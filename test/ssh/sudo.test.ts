import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {SshHost} from '../../src/lib/ssh/index.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'
import {requireTool} from '../helpers/tools.js'

// A real unprivileged login user with passwordless sudo, created for this file and removed after.
const USER = 'xc-ssh-test'
const SUDOERS = `/etc/sudoers.d/${USER}`
requireTool('sudo', 'sudo')
requireTool('useradd', 'passwd')

let sshd: TestSshd
let host: SshHost
let target: Parameters<typeof SshHost.connect>[0]
let dir: string
before(async () => {
  try {
    execFileSync('id', [USER], {stdio: 'ignore'})
  } catch {
    // '*' (not '!'): with UsePAM no, sshd refuses a locked account even for key logins.
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', '--password', '*', USER])
  }
  writeFileSync(SUDOERS, `${USER} ALL=(ALL) NOPASSWD: ALL\n`, {mode: 0o440})
  sshd = await startSshd({user: USER})
  target = {name: 'local', address: '127.0.0.1', port: sshd.port, user: USER, privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}}
  host = await SshHost.connect(target)
  dir = join(sshd.dir, 'rootonly')
  await host.run(`mkdir -m 700 ${dir}`, {sudo: true})
})
after(async () => {
  await host?.close()
  await sshd?.stop()
  rmSync(SUDOERS, {force: true})
  execFileSync('userdel', ['--remove', USER], {stdio: 'ignore'})
})

const isError = (code: string) => (e: unknown) => e instanceof XclusterError && e.code === code

describe('a non-root login user with sudo', () => {
  it('runs as the user without sudo and as root with it', async () => {
    assert.equal((await host.run('id -un')).stdout, `${USER}\n`)
    assert.equal((await host.run('id -un', {sudo: true})).stdout, 'root\n')
  })

  it('keeps env values and stdin through sudo', async () => {
    const result = await host.run('printf "%s:" "$XC_VALUE"; cat', {sudo: true, env: {XC_VALUE: "it's secret"}, input: 'from stdin'})
    assert.equal(result.stdout, "it's secret:from stdin")
  })

  it('uploads where only root may write, with mode and owner, and reads it back', async () => {
    const path = join(dir, 'root.conf')
    await host.upload('only root\n', path, {mode: 0o600, owner: 'root', group: 'root'})
    assert.equal((await host.run(`stat -c '%a %U %G' ${path}`, {sudo: true})).stdout, '600 root root\n')
    assert.equal(readFileSync(path, 'utf8'), 'only root\n')
    assert.equal((await host.download(path)).toString(), 'only root\n')
    await host.upload('replaced\n', path, {mode: 0o644, owner: USER})
    assert.equal((await host.run(`stat -c '%a %U' ${path}`, {sudo: true})).stdout, `644 ${USER}\n`)
    assert.equal((await host.run(`ls -a ${dir}`, {sudo: true})).stdout, '.\n..\nroot.conf\n')
    assert.equal((await host.run('ls -a /tmp | grep -c xc-upload || true')).stdout, '0\n')
  })

  it('without sudo the same upload is refused by the host', async () => {
    await assert.rejects(host.upload('x', join(dir, 'denied'), {sudo: false}), isError('SSH_UPLOAD_FAILED'))
    assert.equal(existsSync(join(dir, 'denied')), false)
  })

  it('times out a sudo command and kills it on the host', async () => {
    const marker = join(sshd.dir, 'sudo-timeout-marker')
    await assert.rejects(host.exec(`sleep 2; touch ${marker}`, {sudo: true, timeoutMs: 300}), isError('SSH_COMMAND_TIMEOUT'))
    await new Promise((r) => setTimeout(r, 2500))
    assert.equal(existsSync(marker), false)
  })

  it('sudo -n fails fast instead of prompting when sudo needs a password', async () => {
    rmSync(SUDOERS)
    try {
      const result = await host.exec('id -un', {sudo: true, timeoutMs: 5000})
      assert.notEqual(result.code, 0)
      assert.match(result.stderr, /password is required/)
    } finally {
      writeFileSync(SUDOERS, `${USER} ALL=(ALL) NOPASSWD: ALL\n`, {mode: 0o440})
    }
  })
})
