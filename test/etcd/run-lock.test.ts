/**
 * `--resume` of a run that another process is still running is refused: two real CLI processes.
 * The first runs `node add` against a host whose sshd is frozen (it connects but hears nothing),
 * so its run stays in progress; the second's `--resume` of that run is refused and changes
 * nothing. Once the first is killed, its lock expires with its lease and a resume goes ahead.
 */
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import {settings} from '../../src/lib/settings.js'
import type {RunLock, RunRecord} from '../../src/lib/tasks/journal.js'
import {BIN, ROOT, xcluster} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSandboxHost, type SandboxHost} from '../helpers/sandbox-host.js'

let etcd: TestEtcd
let store: EtcdStore
let host: SandboxHost
let dir: string
const children: ChildProcess[] = []

const inSandboxNet = () => ['ip', 'netns', 'exec', host.ns]
const cli = (args: string[]) => xcluster([...args, '--etcd', etcd.unixEndpoint!], {wrap: inSandboxNet()})

/** A CLI process left running (the helper above waits for the end). */
function start(args: string[]): ChildProcess {
  const [cmd, ...rest] = [...inSandboxNet(), process.execPath, BIN, ...args, '--etcd', etcd.unixEndpoint!]
  const child = spawn(cmd, rest, {cwd: ROOT, env: {...process.env, NO_COLOR: '1'}, stdio: 'ignore'})
  children.push(child)
  return child
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 100))) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
}

const runs = async () => (await store.listJson<RunRecord>(store.keys.runsPrefix())).map((r) => r.value)
const lockOf = async (id: string) => (await store.getJson<RunLock>(store.keys.runLock(id)))?.value

describe('--resume of a run still running in another process', () => {
  before(async () => {
    etcd = await startEtcd({unixSocket: true, dir: mkdtempSync(join('/dev/shm', 'xct-run-lock-etcd-'))})
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    host = await startSandboxHost({tag: 'run-lock', addresses: ['10.0.0.2']})
    dir = mkdtempSync(join('/dev/shm', 'xct-run-lock-'))
    const spec = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8').replace('key: ~/.ssh/id_ed25519', `key: ${host.clientKeyPath}`)
    writeFileSync(join(dir, 'xcluster.yaml'), spec)
    const applied = await cli(['config', 'apply', '-f', join(dir, 'xcluster.yaml')])
    assert.equal(applied.code, 0, applied.stderr)
    await store.put(store.keys.hostKey('s1'), {fingerprints: [host.hostFingerprint], pinnedAt: new Date().toISOString(), source: 'registration'})
  })

  after(async () => {
    for (const c of children) c.kill('SIGKILL')
    await store?.close()
    await host?.stop()
    await etcd?.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  it('is refused while the run lives, and allowed once its process is gone', async () => {
    host.freezeSshd()
    const first = start(['node', 'add', 's1'])
    const run = await until('the first run to start', async () => (await runs()).find((r) => r.result === 'running'), 15_000)
    const lock = await lockOf(run.id)
    assert.ok(lock, 'a running run holds its lock')

    const before = await store.snapshot()
    for (const extra of [[], ['--dry-run']]) {
      const refused = await cli(['node', 'add', 's1', '--resume', run.id, ...extra])
      assert.equal(refused.code, 3, refused.stderr)
      assert.match(refused.stderr, new RegExp(`Error \\[RUN_IN_PROGRESS\\]: Run ${run.id} is still running: pid ${lock.pid} on `))
      assert.match(refused.stderr, new RegExp(`Try this: .*xcluster runs show ${run.id}`))
    }
    assert.deepEqual(await store.snapshot(), before, 'a refused resume changes nothing')
    assert.equal(first.exitCode, null, 'the first run is still going')

    // The first process dies without finishing: its lease, and with it the lock, runs out.
    const killedAt = Date.now()
    first.kill('SIGKILL')
    await until("the dead run's lock to expire", async () => ((await lockOf(run.id)) ? undefined : true), (settings.runLockTtlSeconds + 5) * 1000)
    const freedAfter = Date.now() - killedAt
    assert.ok(freedAfter <= (settings.runLockTtlSeconds + 3) * 1000, `lock freed ${freedAfter} ms after the kill`)

    const second = start(['node', 'add', 's1', '--resume', run.id])
    const resumed = await until(
      'the resume to take the run',
      async () => {
        const record = (await store.getJson<RunRecord>(store.keys.run(run.id)))?.value
        const held = await lockOf(run.id)
        return record?.resumes === 1 && held ? held : undefined
      },
      15_000,
    )
    assert.notEqual(resumed.pid, lock.pid, "the lock is the second process's now")
    second.kill('SIGKILL')
    host.thawSshd()
  })
})
