import assert from 'node:assert/strict'
import {readFileSync, readdirSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {SshHost} from '../../src/lib/ssh/index.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'

let sshd: TestSshd
let host: SshHost
let dir: string
before(async () => {
  sshd = await startSshd()
  host = await SshHost.connect({name: 'local', address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}})
  dir = join(sshd.dir, 'files')
  await host.run(`mkdir -p ${dir}`)
})
after(async () => {
  await host.close()
  await sshd.stop()
})

const isError = (code: string) => (e: unknown) => e instanceof XclusterError && e.code === code

describe('upload and download', () => {
  it('writes content with mode, owner and group (checked with stat over exec)', async () => {
    const path = join(dir, 'app.conf')
    await host.upload('key = value\n', path, {mode: 0o640, owner: 'nobody', group: 'nogroup'})
    assert.equal((await host.run(`stat -c '%a %U %G %s' ${path}`)).stdout, '640 nobody nogroup 12\n')
    assert.equal((await host.download(path)).toString(), 'key = value\n')
  })

  it('applies the mode exactly, regardless of umask, and defaults to 0644', async () => {
    await host.upload(Buffer.from([0, 1, 2, 255]), join(dir, 'bin'), {mode: 0o4755})
    assert.equal((await host.run(`stat -c %a ${join(dir, 'bin')}`)).stdout, '4755\n')
    assert.deepEqual([...(await host.download(join(dir, 'bin')))], [0, 1, 2, 255])
    await host.upload('x', join(dir, 'default'))
    assert.equal((await host.run(`stat -c '%a %U' ${join(dir, 'default')}`)).stdout, '644 root\n')
  })

  it('replaces atomically: a new inode, no partial content ever visible, no temp files left', async () => {
    const path = join(dir, 'big')
    const size = 2 * 1024 * 1024
    const versions = ['a', 'b', 'c', 'd'].map((c) => Buffer.alloc(size, c))
    await host.upload(versions[0], path)
    const inodeBefore = statSync(path).ino
    let reads = 0
    let writing = true
    // Reads the file (this sshd is local) between SFTP write chunks while uploads run.
    const reader = (async () => {
      while (writing) {
        const content = readFileSync(path)
        assert.equal(content.length, size, 'never a truncated or partial file')
        assert.ok(
          content.every((b) => b === content[0]),
          'never a mix of two versions',
        )
        reads++
        await new Promise((r) => setImmediate(r))
      }
    })()
    for (const version of [...versions.slice(1), versions[0], ...versions.slice(1)]) await host.upload(version, path)
    writing = false
    await reader
    assert.ok(reads > 5, `reader ran ${reads} times`)
    assert.equal(readFileSync(path, 'latin1')[0], 'd')
    assert.notEqual(statSync(path).ino, inodeBefore)
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.xc-')),
      [],
    )
  })

  it('fails clearly into a missing directory and leaves nothing behind', async () => {
    await assert.rejects(host.upload('x', join(dir, 'missing', 'file')), isError('SSH_UPLOAD_FAILED'))
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.xc-')),
      [],
    )
  })

  it('fails on an unknown owner and keeps the old file', async () => {
    const path = join(dir, 'keep')
    await host.upload('old', path)
    await assert.rejects(host.upload('new', path, {owner: 'no-such-user-xc'}), isError('SSH_COMMAND_FAILED'))
    assert.equal(readFileSync(path, 'utf8'), 'old')
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.xc-')),
      [],
    )
  })

  it('refuses bad arguments before touching the host', async () => {
    await assert.rejects(host.upload('x', 'relative/path'), isError('USAGE'))
    await assert.rejects(host.upload('x', join(dir, 'm'), {mode: 0o10000}), isError('USAGE'))
    await assert.rejects(host.upload('x', join(dir, 'o'), {owner: 'root; rm -rf /'}), isError('USAGE'))
    assert.deepEqual(
      readdirSync(dir).filter((f) => f === 'm' || f === 'o'),
      [],
    )
  })

  it('download of a missing file is SSH_DOWNLOAD_FAILED', async () => {
    await assert.rejects(host.download(join(dir, 'nope')), isError('SSH_DOWNLOAD_FAILED'))
  })
})
