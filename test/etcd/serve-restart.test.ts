/**
 * What a campaign does about the past, against a real etcd and real `xcluster serve` processes
 * whose guarded service is a real process (test/helpers/service-instance.mjs): a serve restarted
 * after a crash that its guardian did not survive, and a watch that etcd compacted away while
 * the daemon was cut off. Deaths are read from /proc and the InstanceMonitor, never from serve.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, afterEach, before, describe, it} from 'node:test'

import {processAlive} from '../../src/lib/election/instance.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, daemonRunDir, sleep, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {freeze, killPending} from '../helpers/freezer.js'
import {InstanceMonitor, instanceServiceYaml, monoMs} from '../helpers/instance-monitor.js'
import {TcpProxy} from '../helpers/tcp-proxy.js'
import {requireTool} from '../helpers/tools.js'

/** Long, so that a takeover well before it cannot be the dead lease running out, even on a busy host. */
const RESTART_TTL = 20
/** Long, so the campaign's poll (every TTL/4 = 15 s) cannot stand in for its watch. */
const COMPACT_TTL = 60
const POLL_MS = (COMPACT_TTL * 1000) / 4

let etcd: TestEtcd
let dir: string
let store: EtcdStore
let monitor: InstanceMonitor
let etcdctl: string
const daemons: Daemon[] = []
const proxies: TcpProxy[] = []
const orphans: number[] = []
const thaws: (() => void)[] = []

function start(node: string, service: string, endpoint = etcd.endpoint): Daemon {
  const daemon = new Daemon(node, [service], endpoint, join(dir, `${service}-${node}.err`)).start()
  daemons.push(daemon)
  return daemon
}

const event = (daemon: Daemon, name: string, token?: string) => daemon.events.find((e) => e.event === name && (token === undefined || e.token === token))

/** etcdctl against the test etcd: what it printed. */
const ctl = (...args: string[]): string => execFileSync(etcdctl, ['--endpoints', etcd.endpoint, ...args], {encoding: 'utf8'})

before(async () => {
  etcdctl = requireTool('etcdctl', 'etcd-client')
  dir = mkdtempSync(join(tmpdir(), 'xct-serve-restart-'))
  monitor = await new InstanceMonitor(dir).start()
  etcd = await startEtcd()
  store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), instanceServiceYaml('restart', RESTART_TTL, monitor) + instanceServiceYaml('compact', COMPACT_TTL, monitor))
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.endpoint}})
  assert.equal(applied.code, 0, applied.stderr)
})

after(async () => {
  await store?.close()
  await etcd?.stop()
  await monitor?.close()
  if (process.env.XCLUSTER_KEEP_LOGS) console.log(`# logs kept in ${dir}`)
  else rmSync(dir, {recursive: true, force: true})
  rmSync(daemonRunDir(), {recursive: true, force: true})
})

describe('serve after a crash its guardian did not survive, and after a compaction', {concurrency: false}, () => {
  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop('SIGKILL')))
    for (const thaw of thaws.splice(0)) thaw()
    for (const pid of orphans.splice(0)) if (processAlive(pid)) process.kill(pid, 'SIGKILL')
    await Promise.all(proxies.splice(0).map((p) => p.stop()))
  })

  it("a serve restarted after SIGKILL of it and its guardian kills the instance they left and revokes the dead one's lease: a leader again well before the TTL", async () => {
    const first = start('s1', 'restart')
    const old = await until('an instance of restart', () => monitor.only('restart'), 15_000)
    orphans.push(old.pid)
    const peer = start('s2', 'restart')
    await until("the peer's candidacy", () => event(peer, 'registered'), 15_000)
    const guardian = Number(event(first, 'instance-launched', old.token)?.guardian)
    assert.ok(processAlive(guardian), `the guardian ${guardian} runs`)
    // Frozen first, so it cannot see serve die and clean up after it: as if both died at once
    // (an OOM kill of the whole unit). The instance runs in a session of its own and survives.
    process.kill(guardian, 'SIGSTOP')
    const killedAt = monoMs()
    await first.stop('SIGKILL')
    process.kill(guardian, 'SIGKILL')
    await until('the guardian to be gone', () => !processAlive(guardian))
    await sleep(1000)
    assert.ok(processAlive(old.pid), 'the instance outlived its serve and its guardian')
    assert.equal(monitor.lives.filter((l) => l.service === 'restart').length, 1, 'the dead lease still holds the seat')

    // Frozen in the kernel (a cgroup v1 freezer) for a while after the restarted serve SIGKILLs
    // it: a kill is only queued, and a process on a busy host dies when it next runs. Until it
    // is dead it holds what the service holds, so the lease must not be revoked before.
    const frozen = freeze(old.pid, `xct-serve-restart-${process.pid}`)
    thaws.push(frozen.thaw)
    const restartedAt = monoMs()
    const again = start('s1', 'restart')
    await until('the restarted serve to SIGKILL the orphan', () => killPending(old.pid), 15_000, 5)
    await sleep(1500)
    assert.equal(monitor.startedAfter('restart', restartedAt), undefined, 'a new instance started while the orphan, killed but not yet dead, was alive')
    frozen.thaw()
    let oldDiedAt: number | undefined
    const next = await until(
      'a new instance',
      () => {
        if (oldDiedAt === undefined && !processAlive(old.pid)) oldDiedAt = monoMs()
        return monitor.startedAfter('restart', restartedAt)
      },
      RESTART_TTL * 1000 + 5000,
      5,
    )
    console.log(
      `# restart: the orphan died ${((oldDiedAt ?? NaN) - restartedAt).toFixed(0)} ms and ${next.node}'s instance started ${(next.start - restartedAt).toFixed(0)} ms after the restart, ${(next.start - killedAt).toFixed(0)} ms after the kill (TTL ${RESTART_TTL} s)`,
    )
    assert.ok(oldDiedAt !== undefined && oldDiedAt <= next.start, `the orphan (pid ${old.pid}) was still alive when ${next.node}'s instance started`)
    assert.equal(next.exclusive, true, "the new instance found the orphan's lock still held")
    assert.ok(BigInt(next.token) > BigInt(old.token), 'tokens grow')
    // Revoked, not expired: the dead lease had a quarter of its TTL left at least. (Measured from the
    // kill, not the restart: on a busy host serve alone may take seconds to start.)
    assert.ok(next.start - killedAt < RESTART_TTL * 750, `a leader ${(next.start - killedAt).toFixed(0)} ms after the kill: the lease ran out`)
    const cleaned = event(again, 'predecessor-cleaned')
    assert.equal(cleaned?.lease, event(first, 'registered')?.lease, "the lease it revoked is the dead serve's")
    assert.equal(cleaned?.revoked, true)
  })

  it("the campaign's watch resumes after etcd compacted past it: a follower cut off while the seat came free takes it once back, before its poll", async () => {
    const leader = start('s1', 'compact')
    const first = await until('an instance of compact', () => monitor.only('compact'), 15_000)
    const proxy = await new TcpProxy('127.0.0.1', etcd.clientPort).start()
    proxies.push(proxy)
    const follower = start('s2', 'compact', proxy.endpoint)
    await until("the follower's candidacy", () => event(follower, 'registered'), 15_000)
    await sleep(500)
    // A change under the service's keys wakes every campaign: the follower's last step is now,
    // and its next poll 15 s away. Only its watch can bring it back before then.
    await store.put(`${store.keys.electionPrefix('compact')}probe/wake`, Date.now())
    const wokenAt = monoMs()
    await sleep(200)

    proxy.cut()
    // Its guardian kills the instance and revokes the lease: the seat is free.
    leader.signal('SIGKILL')
    await until('the seat to be free', async () => (await store.getJson(store.keys.electionLeader('compact'))) === undefined, 5000, 20)
    // One revision more, so etcd compacts past any revision the follower's watch resumes from.
    const revision = JSON.parse(ctl('put', `${store.keys.electionPrefix('compact')}probe/wake`, 'again', '-w', 'json')).header.revision as number
    assert.match(ctl('compact', String(revision), '--physical'), /compacted revision/)
    proxy.heal()
    const healedAt = monoMs()

    const next = await until('the follower to take over', () => monitor.startedAfter('compact', healedAt), POLL_MS + 5000)
    console.log(
      `# compaction: the follower took over ${(next.start - healedAt).toFixed(0)} ms after the link came back (${(healedAt - wokenAt).toFixed(0)} ms after its last step; it polls every ${POLL_MS} ms)`,
    )
    assert.equal(next.node, 's2')
    assert.ok(first.end !== undefined && first.end <= next.start, "the dead leader's instance died first")
    assert.ok(next.start - wokenAt < POLL_MS / 2, `the follower took over ${(next.start - wokenAt).toFixed(0)} ms after its last step: its poll, not its watch`)
    assert.ok(follower.alive, 'the follower still runs')
    const stray = readFileSync(join(dir, 'compact-s2.err'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('{'))
    assert.deepEqual(stray, [], 'the follower wrote something other than events (a stack trace?)')
  })
})
