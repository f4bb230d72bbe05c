/**
 * The instance guardian (libexec/xcluster-guardian), as serve drives it, with real processes:
 * what it starts must die when the deadline passes, when serve goes away, and after a stop,
 * including a process that left the instance's process group.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createInterface} from 'node:readline'
import {after, before, describe, it} from 'node:test'

import {uptimeCentiseconds} from '../../src/lib/clock.js'
import {GUARDIAN_BIN, Guardian, type GuardianOptions} from '../../src/lib/election/guardian.js'
import {processAlive} from '../../src/lib/election/instance.js'
import {sleep, until} from '../helpers/election-harness.js'
import {freeze, killPending} from '../helpers/freezer.js'

let dir: string
let n = 0

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xct-guardian-'))
})
after(() => rmSync(dir, {recursive: true, force: true}))

/**
 * A guardian whose instance is a real `sleep` that writes its pid; `extra` runs in the start
 * command too; PIDFILE in a `stop` given here names that pid's file.
 */
function launch(options: Partial<GuardianOptions> & {extra?: string; inSeconds?: number} = {}): {guardian: Guardian; pidFile: string; log: string} {
  const id = `g${++n}`
  const pidFile = join(dir, `${id}.pid`)
  const log = join(dir, `${id}.log`)
  const guardian = Guardian.launch({
    instance: `test@${process.pid}:node:${id}:1`,
    start: `sleep 600 & echo $! > ${pidFile}; ${options.extra ?? 'true'}`,
    stop: `kill $(cat ${pidFile}); echo stop ran`,
    deadlineCs: (uptimeCentiseconds() as number) + (options.inSeconds ?? 600) * 100,
    logFile: log,
    env: {},
    ...options,
    ...(options.stop ? {stop: options.stop.replaceAll('PIDFILE', pidFile)} : {}),
  })
  return {guardian, pidFile, log}
}

const pidOf = (file: string): number => Number(readFileSync(file, 'utf8').trim())
/** Closes the guardian's stdin as a dying serve's pipe closes. */
const serveDies = (guardian: Guardian): void => (guardian as unknown as {proc: {stdin: {end(): void}}}).proc.stdin.end()

describe('the instance guardian', () => {
  it('starts the instance, keeps it while deadlines move, and stops it with the stop command', async () => {
    const {guardian, pidFile, log} = launch({inSeconds: 1})
    assert.deepEqual(await guardian.next(), {kind: 'started', code: 0})
    const pid = pidOf(pidFile)
    for (let i = 0; i < 30; i++) {
      guardian.deadline((uptimeCentiseconds() as number) + 50)
      await sleep(50)
    }
    assert.ok(processAlive(pid), 'killed while the deadline kept moving (1.5 s past the first one)')
    assert.deepEqual(await guardian.stop(), {kind: 'stopped', code: 0})
    assert.equal(processAlive(pid), false)
    assert.match(readFileSync(log, 'utf8'), /stop ran/)
  })

  it("starts the instance with default signal dispositions, so the stop command's SIGTERM ends it", async () => {
    // The guardian ignores TERM, HUP, INT and PIPE itself; an ignored signal survives exec. (SIGINT
    // is left out: sh ignores it for any command it starts with `&`.)
    const gone = (pid: string) => `s=$(cut -d" " -f3 /proc/${pid}/stat 2>/dev/null); [ -z "$s" ] || [ "$s" = Z ]`
    const {guardian, pidFile, log} = launch({
      stop: `p=$(cat PIDFILE); kill $p; for i in $(seq 200); do if ${gone('$p')}; then echo ended by SIGTERM; break; fi; sleep 0.01; done`,
    })
    assert.deepEqual(await guardian.next(), {kind: 'started', code: 0})
    const pid = pidOf(pidFile)
    const ignored = BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]}`)
    for (const [name, signo] of Object.entries({SIGHUP: 1, SIGPIPE: 13, SIGTERM: 15})) {
      assert.equal((ignored >> BigInt(signo - 1)) & 1n, 0n, `the instance ignores ${name}`)
    }
    assert.deepEqual(await guardian.stop(), {kind: 'stopped', code: 0})
    assert.match(readFileSync(log, 'utf8'), /ended by SIGTERM/, 'the instance outlived the SIGTERM of its stop command')
  })

  it('a command that reaches it in pieces (the guardian descheduled mid-line on a busy host) is still read whole', async () => {
    const id = `g${++n}`
    const pidFile = join(dir, `${id}.pid`)
    const proc = spawn(GUARDIAN_BIN, [], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: {
        ...process.env,
        XCLUSTER_GUARD_INSTANCE: `test@${process.pid}:node:${id}:1`,
        XCLUSTER_GUARD_START: `sleep 600 & echo $! > ${pidFile}`,
        XCLUSTER_GUARD_STOP: `kill $(cat ${pidFile})`,
        XCLUSTER_GUARD_DEADLINE: String((uptimeCentiseconds() as number) + 300),
        XCLUSTER_GUARD_LOG: join(dir, `${id}.log`),
      },
    })
    const lines: string[] = []
    createInterface({input: proc.stdout}).on('line', (line) => lines.push(line))
    await until('started', () => lines.includes('started 0'), 5000)
    // Each piece outlasts the guardian's 20 ms read timeout: a deadline, then the stop.
    for (const piece of ['dead', `line ${(uptimeCentiseconds() as number) + 1000}\n`, 'st', 'op\n']) {
      proc.stdin.write(piece)
      await sleep(80)
    }
    await until('stopped', () => lines.some((l) => l !== 'started 0'), 5000)
    assert.deepEqual(lines, ['started 0', 'stopped 0'], 'a stop split across reads was lost (or a deadline was misread)')
    assert.equal(processAlive(pidOf(pidFile)), false)
  })

  it('reads every command whole on a busy host: no byte is lost to a read timeout', async () => {
    // A timed read whose timer fires as a byte arrives drops that byte (bash reads a pipe a byte
    // at a time): on busy cores, lines that come about one read timeout (20 ms) apart came out
    // cut (`stop` read as `top`) or glued together. Rare per line, so six guardians at once.
    const busy = Array.from({length: 4}, () => spawn('sh', ['-c', 'while :; do :; done'], {stdio: 'ignore'}))
    try {
      const guarded = Array.from({length: 6}, () => launch())
      await Promise.all(guarded.map(async ({guardian}) => assert.deepEqual(await guardian.next(), {kind: 'started', code: 0})))
      await Promise.all(
        guarded.map(async ({guardian}) => {
          const started = Date.now()
          while (Date.now() - started < 5000) {
            guardian.deadline((uptimeCentiseconds() as number) + 6000)
            await sleep(15 + Math.random() * 10)
          }
        }),
      )
      for (const {guardian, pidFile, log} of guarded) {
        assert.deepEqual(await guardian.stop(), {kind: 'stopped', code: 0})
        assert.equal(processAlive(pidOf(pidFile)), false)
        const complaints = readFileSync(log, 'utf8')
          .split('\n')
          .filter((line) => /guardian|integer expression/.test(line))
        assert.deepEqual(complaints, [], 'the guardian misread commands')
      }
    } finally {
      for (const proc of busy) proc.kill('SIGKILL')
    }
  })

  it('kills the instance when the deadline passes (serve frozen or cut off), within a few ticks', async () => {
    const {guardian, pidFile} = launch({inSeconds: 0.5})
    await guardian.next()
    const pid = pidOf(pidFile)
    const deadline = (uptimeCentiseconds() as number) + 30
    guardian.deadline(deadline)
    const report = await new Promise((resolve) => guardian.onEnd(resolve))
    const at = uptimeCentiseconds() as number
    assert.deepEqual(report, {kind: 'killed', reason: 'deadline'})
    assert.equal(processAlive(pid), false)
    // Well inside the kill budget of the default TTL (half the 500 ms safety margin).
    assert.ok(at - deadline < 25, `killed ${(at - deadline) * 10} ms after the deadline`)
  })

  it('kills the instance at once when serve dies (its pipe closes), and a process that left the group too', async () => {
    const escaped = join(dir, 'escaped.pid')
    const {guardian, pidFile} = launch({extra: `setsid sleep 600 & echo $! > ${escaped}`})
    await guardian.next()
    const pids = [pidOf(pidFile), pidOf(escaped)]
    assert.ok(pids.every(processAlive))
    const ended = new Promise((resolve) => guardian.onEnd(resolve))
    const started = Date.now()
    // What serve's death looks like from the guardian: its stdin reaches end of file.
    serveDies(guardian)
    assert.deepEqual(await ended, {kind: 'killed', reason: 'serve-died'})
    await until('both processes dead', () => pids.every((p) => !processAlive(p)), 2000)
    assert.ok(Date.now() - started < 1000)
  })

  it("reports the kill (after which serve's lease is revoked) only once the instance is gone", async () => {
    // A unit's processes are seen through the gone command; here it succeeds once a file exists.
    const flag = join(dir, 'gone.flag')
    const {guardian} = launch({gone: `test -e ${flag}`})
    await guardian.next()
    const ended = new Promise((resolve) => guardian.onEnd(resolve))
    let reported = false
    void ended.then(() => (reported = true))
    serveDies(guardian)
    await sleep(400)
    assert.equal(reported, false, 'reported killed while the instance was still there')
    writeFileSync(flag, '')
    assert.deepEqual(await ended, {kind: 'killed', reason: 'serve-died'})
  })

  it('reports the kill only once every process of the instance is dead, one in its group without the marker too', async () => {
    // Its environment lacks the marker (as a dying process's reads empty once its memory is
    // released), and it is frozen, so its SIGKILL stays pending: only the group tells it is there.
    const hidden = join(dir, 'hidden.pid')
    const {guardian} = launch({extra: `env -u XCLUSTER_INSTANCE sleep 600 & echo $! > ${hidden}`})
    await guardian.next()
    const pid = pidOf(hidden)
    const frozen = freeze(pid, `xct-guardian-${process.pid}`)
    try {
      const ended = new Promise((resolve) => guardian.onEnd(resolve))
      let reported = false
      void ended.then(() => (reported = true))
      serveDies(guardian)
      await until('the SIGKILL sent', () => killPending(pid), 2000)
      await sleep(400)
      assert.equal(reported, false, 'reported killed while a process of the instance was still alive')
      frozen.thaw()
      assert.deepEqual(await ended, {kind: 'killed', reason: 'serve-died'})
      assert.equal(processAlive(pid), false)
    } finally {
      frozen.thaw()
    }
  })

  it('gives up on an instance stuck in the kernel 5 s after its SIGKILL, counted on the clock, and says so', async () => {
    // A frozen process (as one in uninterruptible I/O on a fenced device) never dies of its SIGKILL.
    // Each round of the kill loop forks a grep and walks /proc: counted in rounds, 1000 of them took
    // far longer than 5 s (minutes in a UML machine), and serve's stop waited that long.
    const {guardian, pidFile, log} = launch()
    await guardian.next()
    const pid = pidOf(pidFile)
    const frozen = freeze(pid, `xct-guardian-stuck-${process.pid}`)
    try {
      const started = Date.now()
      const ended = new Promise((resolve) => guardian.onEnd(resolve))
      serveDies(guardian)
      assert.deepEqual(await ended, {kind: 'killed', reason: 'serve-died'})
      const took = Date.now() - started
      assert.ok(took >= 4900 && took < 8000, `reported after ${took} ms, not 5 s after the SIGKILL`)
      assert.ok(processAlive(pid) && killPending(pid), 'the stuck process is still there, its SIGKILL pending')
      assert.match(readFileSync(log, 'utf8'), /instance \S+ still alive 5 s after SIGKILL/)
    } finally {
      frozen.thaw()
    }
    await until('the instance dead once it runs', () => !processAlive(pid), 2000)
  })

  it('a failed start is aborted: the instance killed, the stop command run', async () => {
    const {guardian, pidFile, log} = launch({extra: 'exit 3'})
    assert.deepEqual(await guardian.next(), {kind: 'started', code: 3})
    const pid = pidOf(pidFile)
    assert.deepEqual(await guardian.abort(), {kind: 'stopped', code: 0})
    assert.equal(processAlive(pid), false)
    assert.match(readFileSync(log, 'utf8'), /stop ran/)
  })

  it('a stop command that hangs is cut short by a deadline of now', async () => {
    const {guardian, pidFile} = launch({stop: 'sleep 600'})
    await guardian.next()
    const pid = pidOf(pidFile)
    const stopping = guardian.stop()
    await sleep(200)
    guardian.deadline(0)
    assert.deepEqual(await stopping, {kind: 'killed', reason: 'deadline'})
    assert.equal(processAlive(pid), false)
  })

  it('a start that hangs past the deadline is killed, whole', async () => {
    const {guardian, pidFile} = launch({extra: 'sleep 600', inSeconds: 0.3})
    const report = await guardian.next()
    assert.deepEqual(report, {kind: 'killed', reason: 'deadline'})
    await until('the instance dead', () => !processAlive(pidOf(pidFile)), 2000)
  })
})
