import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {createReadStream, existsSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {SshHost} from '../../src/lib/ssh/index.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'

let sshd: TestSshd
let host: SshHost
before(async () => {
  sshd = await startSshd()
  host = await SshHost.connect({name: 'local', address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}})
})
after(async () => {
  await host.close()
  await sshd.stop()
})

const isError = (code: string) => (e: unknown) => e instanceof XclusterError && e.code === code
const MiB = 1024 * 1024

/** `total` bytes of a repeating pattern, made chunk by chunk as they are read; `made` counts them. */
function lazySource(total: number, chunk = 64 * 1024): {stream: Readable; made: () => number; sha256: string} {
  const block = Buffer.alloc(chunk)
  for (let i = 0; i < chunk; i++) block[i] = (i * 7) % 251
  const hash = createHash('sha256')
  for (let sent = 0; sent < total; sent += chunk) hash.update(block.subarray(0, Math.min(chunk, total - sent)))
  let made = 0
  const stream = new Readable({
    read() {
      if (made >= total) return void this.push(null)
      const size = Math.min(chunk, total - made)
      made += size
      this.push(block.subarray(0, size))
    },
  })
  return {stream, made: () => made, sha256: hash.digest('hex')}
}

describe('exec with a stream on stdin', () => {
  it('delivers every byte of a large stream, in order', async () => {
    const source = lazySource(48 * MiB)
    const result = await host.run('sha256sum | cut -c1-64; echo done', {input: source.stream})
    assert.equal(result.stdout, `${source.sha256}\ndone\n`)
  })

  it('reads the stream only as fast as the command consumes it (backpressure, not buffering)', async () => {
    const source = lazySource(64 * MiB)
    // The command takes 1 MiB, then stops reading for a while before draining the rest.
    const running = host.run('head -c 1048576 > /dev/null; sleep 1.5; cat > /dev/null', {input: source.stream})
    await new Promise((r) => setTimeout(r, 1000))
    const whilePaused = source.made()
    assert.ok(whilePaused < 16 * MiB, `${whilePaused} bytes were read from the source while the command read 1 MiB`)
    await running
    assert.equal(source.made(), 64 * MiB)
  })

  it('streams a file (the way an archive is uploaded)', async () => {
    const path = join(sshd.dir, 'payload')
    const content = Buffer.alloc(3 * MiB + 17, 'x')
    writeFileSync(path, content)
    const result = await host.run('wc -c', {input: createReadStream(path)})
    assert.equal(result.stdout.trim(), String(content.length))
  })

  it('fails with SSH_INPUT_FAILED when the stream fails midway, and the connection stays usable', async () => {
    let sent = 0
    const failing = new Readable({
      read() {
        sent += 1
        if (sent > 20) this.destroy(new Error('disk read error'))
        else this.push(Buffer.alloc(64 * 1024))
      },
    })
    await assert.rejects(host.exec('cat > /dev/null', {input: failing}), (e) => isError('SSH_INPUT_FAILED')(e) && /disk read error/.test((e as Error).message))
    assert.equal((await host.run('echo still here')).stdout, 'still here\n')
  })

  it('fails with SSH_INPUT_FAILED for a file that cannot be opened, without starting the command', async () => {
    const marker = join(sshd.dir, 'ran-with-missing-input')
    await assert.rejects(host.exec(`cat > /dev/null && touch ${marker}`, {input: createReadStream(join(sshd.dir, 'no-such-file'))}), isError('SSH_INPUT_FAILED'))
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(existsSync(marker), false)
  })

  it('returns the exit status of a command that stops reading early, and stops reading the stream', async () => {
    const source = lazySource(256 * MiB)
    const result = await host.exec('head -c 10 > /dev/null; exit 3', {input: source.stream})
    assert.equal(result.code, 3)
    assert.ok(source.made() < 64 * MiB, `${source.made()} bytes read for a command that took 10`)
    assert.equal(source.stream.destroyed, true)
  })
})
