/**
 * Leadership on the cluster bootstrap deployed, under systemd, with real service processes: the
 * spec gains services, a bootstrap re-run reconfigures every core node's xcluster-serve unit to
 * campaign for them, and each service's instance is a real process on the leading node
 * (test/helpers/service-instance.mjs, run by the node's own Node.js) that reports its own start
 * and whose death the test sees when its TCP connection to the InstanceMonitor closes. Faults are
 * systemd's own: `systemctl kill -s KILL|STOP|CONT`, `systemctl stop`, and etcd members killed.
 * What is asserted is what a user of the service would see: no two instances alive at once, and
 * failover times measured from the fault to the next instance's first instant.
 */
import assert from 'node:assert/strict'
import {copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {labPaths} from '../../src/lib/lab/paths.js'
import {settings} from '../../src/lib/settings.js'
import {admin, inNode, lab, ok, onNode, waitUntil} from '../helpers/lab.js'
import {InstanceMonitor, instanceServiceYaml, monoMs, type InstanceLife} from '../helpers/instance-monitor.js'

/** The default TTL: sized to ride out an etcd leader election (the member test). */
const TTL = settings.election.defaultTtlSeconds
const CORE = ['s1', 's2', 's3']
const SERVICES = ['kill', 'pause', 'term', 'member', 'quorum']
const BOUND = 'bound'
const BOUND_UNIT = 'xct-bound.service'
const state = lab()
/** On each node: the instance program and the services' pid and output files. */
const NODE_DIR = '/opt/xct'
const NODE_JS = '/opt/xcluster/current/runtime/bin/node'
const noRestart = (unit: string) => `/run/systemd/system/${unit}.d/xct-no-restart.conf`
const ETCD_LEADER_KILLS = Number(process.env.XCLUSTER_LAB_ETCD_LEADER_KILLS ?? 5)

let dir: string
let monitor: InstanceMonitor

/**
 * A command on a node, awaited: never execFileSync here. The InstanceMonitor timestamps a death
 * when its event loop sees the connection close, so blocking this process (a `systemctl stop`
 * waits for the unit to stop) would date deaths late and show overlaps that never were.
 */
async function sh(node: string, script: string): Promise<string> {
  const res = await onNode(node, script)
  assert.equal(res.code, 0, `${node}: ${script}: ${res.stderr}${res.stdout}`)
  return res.stdout
}

const service = (name: string) => `eck-${name}`
const nodePath = (node: string, path: string) => join(labPaths(state.dir).node(node).root, path)

/**
 * `systemctl kill -s SIGNAL` of a unit systemd will not restart (a crash that stays down). A KILL
 * goes to the whole unit (as the OOM killer's cgroup kill or a crash that takes the unit down); a
 * STOP only to the main process: serve itself freezes, what it started does not.
 */
async function crash(node: string, unit: string, signal = 'KILL'): Promise<number> {
  await sh(node, `mkdir -p $(dirname ${noRestart(unit)}) && printf '[Service]\\nRestart=no\\n' > ${noRestart(unit)} && systemctl daemon-reload`)
  const at = monoMs()
  await sh(node, `systemctl kill -s ${signal} ${signal === 'STOP' ? '--kill-who=main ' : ''}${unit}`)
  return at
}

/** Undoes crash(): restart allowed again, and the unit started. */
async function recover(node: string, unit: string): Promise<void> {
  await sh(node, `rm -f ${noRestart(unit)} && systemctl daemon-reload && systemctl reset-failed ${unit}; systemctl start ${unit}`)
}

/**
 * The one live instance of a service, once it has been the only one for a second: a fault is
 * injected into a settled leadership, not one that is changing hands (on a loaded host a leader
 * may just be losing its lease).
 */
async function leaderOf(name: string) {
  let candidate: InstanceLife | undefined
  let since = 0
  await waitUntil(
    () => {
      const only = monitor.only(service(name))
      if (only !== candidate) [candidate, since] = [only, monoMs()]
      return candidate !== undefined && monoMs() - since >= 1000
    },
    30_000,
    () => `no single live instance of ${service(name)}: ${JSON.stringify(monitor.alive(service(name)))}`,
  )
  return candidate!
}

function assertNoOverlap(name: string): void {
  const overlaps = monitor.overlaps(service(name))
  const lives = monitor.lives
    .filter((l) => l.service === service(name))
    .map((l) => `${l.node} token ${l.token} pid ${l.pid}: ${l.start.toFixed(0)}..${l.end?.toFixed(0) ?? 'alive'}${l.graceful ? ' (stopped)' : ''}`)
  assert.deepEqual(
    overlaps.map((o) => `${o.a.node} (token ${o.a.token}) and ${o.b.node} (token ${o.b.token}) overlapped ${o.ms.toFixed(1)} ms`),
    [],
    `instances of ${service(name)}:\n${lives.join('\n')}`,
  )
}

/** etcdctl on a core node as its serve identity: which member leads raft. */
async function raftLeader(): Promise<string> {
  for (const node of CORE) {
    const ip = state.hosts.find((h) => h.name === node)?.ip
    const res = await onNode(
      node,
      `ETCDCTL_API=3 etcdctl --endpoints=https://${ip}:2379 --cacert=/etc/xcluster/pki/ca.crt --cert=/etc/xcluster/pki/serve.crt --key=/etc/xcluster/pki/serve.key endpoint status -w json 2>/dev/null`,
      10_000,
    )
    if (res.code !== 0) continue
    const [status] = JSON.parse(res.stdout) as {Status: {leader: string; header: {member_id: string}}}[]
    if (status && String(status.Status.leader) === String(status.Status.header.member_id)) return node
  }
  throw new Error('no etcd raft leader among the core nodes')
}

async function etcdHealthy(): Promise<void> {
  await waitUntil(
    async () =>
      (
        await onNode(
          's1',
          'ETCDCTL_API=3 etcdctl --endpoints=https://10.0.0.2:2379,https://10.0.0.3:2379,https://10.0.0.4:2379 --cacert=/etc/xcluster/pki/ca.crt --cert=/etc/xcluster/pki/serve.crt --key=/etc/xcluster/pki/serve.key endpoint health',
          15_000,
        )
      ).code === 0,
    30_000,
    () => 'etcd not healthy',
  )
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-election-lab-'))
  monitor = await new InstanceMonitor(dir, {host: state.adminIp}).start()
  const script = new URL('../helpers/service-instance.mjs', import.meta.url).pathname
  for (const node of CORE) {
    mkdirSync(nodePath(node, NODE_DIR), {recursive: true})
    copyFileSync(script, nodePath(node, `${NODE_DIR}/service-instance.mjs`))
    // A systemd service the election starts and stops with systemctl (a `unit:` service).
    writeFileSync(
      nodePath(node, `/etc/systemd/system/${BOUND_UNIT}`),
      `[Service]\nEnvironment=XCLUSTER_SERVICE=${service(BOUND)} XCLUSTER_NODE=${node} XCLUSTER_TOKEN=0\nExecStart=${NODE_JS} ${NODE_DIR}/service-instance.mjs ${monitor.address} /run/xct-bound.pid\n`,
    )
    inNode(node, 'systemctl daemon-reload')
  }
  const on = {node: NODE_JS, script: `${NODE_DIR}/service-instance.mjs`, dir: NODE_DIR}
  const services = SERVICES.map((s) => instanceServiceYaml(service(s), TTL, monitor, {on})).join('') + `  - {name: ${service(BOUND)}, ttl: ${TTL}, unit: ${BOUND_UNIT}}\n`
  const spec = join(dir, 'xcluster.yaml')
  writeFileSync(spec, `${readFileSync(state.specFile, 'utf8')}services:\n${services}`)
  // Declarative: the spec gains services; a bootstrap re-run makes every serve campaign for them.
  ok(await admin(['bootstrap', '-f', spec, '--native']), 'bootstrap with the services')
  for (const s of [...SERVICES, BOUND]) await leaderOf(s)
})

after(async () => {
  for (const node of CORE) {
    await onNode(
      node,
      `rm -f ${noRestart('xcluster-serve.service')} ${noRestart('etcd-member.service')}; systemctl daemon-reload; systemctl reset-failed xcluster-serve etcd-member 2>/dev/null; systemctl start etcd-member xcluster-serve; systemctl kill -s CONT xcluster-serve; true`,
    )
  }
  // Back to the lab's spec: serve stops campaigning for the test's services.
  const restored = await admin(['bootstrap', '-f', state.specFile, '--native'])
  for (const node of CORE) {
    await onNode(node, `systemctl stop ${BOUND_UNIT}; rm -rf ${NODE_DIR} /etc/systemd/system/${BOUND_UNIT}; systemctl daemon-reload`)
  }
  await monitor?.close()
  rmSync(dir, {recursive: true, force: true})
  assert.equal(restored.code, 0, restored.stderr)
})

describe('elections on the bootstrapped cluster, under systemd, with real service processes', {concurrency: false}, () => {
  it("SIGKILL of the leader's serve: systemd kills its instance with it, frees its lease, and a peer's instance starts well inside the TTL", async () => {
    const first = await leaderOf('kill')
    const others = monitor.alive(service(BOUND))
    const at = await crash(first.node, 'xcluster-serve.service')
    try {
      const next = await waitUntil(
        () => monitor.startedAfter(service('kill'), at) !== undefined,
        10_000,
        () => 'no new instance',
      ).then(() => monitor.startedAfter(service('kill'), at)!)
      console.log(`# lab crash failover: the instance died ${((first.end ?? NaN) - at).toFixed(0)} ms after the SIGKILL, the next started after ${(next.start - at).toFixed(0)} ms (TTL ${TTL} s)`)
      assert.notEqual(next.node, first.node)
      assert.ok(first.end !== undefined && first.end <= next.start)
      // Not the TTL running out: ExecStopPost revoked the dead serve's lease once its instances were gone.
      assert.ok(next.start - at < TTL * 1000, `the next instance started ${next.start - at} ms after the kill`)
      assertNoOverlap('kill')
      // The unit service that node led was bound to serve (BindsTo=): it stopped too.
      for (const bound of others.filter((b) => b.node === first.node)) assert.ok(bound.end !== undefined, `${BOUND_UNIT} still runs on ${first.node} after its serve died`)
    } finally {
      await recover(first.node, 'xcluster-serve.service')
    }
  })

  it('a unit: service is bound to serve: when its serve dies, systemd stops the unit before a peer starts it', async () => {
    const first = await leaderOf(BOUND)
    const at = await crash(first.node, 'xcluster-serve.service')
    try {
      await waitUntil(
        () => first.end !== undefined,
        10_000,
        () => `${BOUND_UNIT} on ${first.node} outlived its serve`,
      )
      const next = await waitUntil(
        () => monitor.startedAfter(service(BOUND), at) !== undefined,
        10_000,
        () => 'no new unit instance',
      ).then(() => monitor.startedAfter(service(BOUND), at)!)
      console.log(`# lab: ${BOUND_UNIT} stopped ${((first.end as number) - at).toFixed(0)} ms after its serve was killed; started on ${next.node} after ${(next.start - at).toFixed(0)} ms`)
      assert.ok((first.end as number) <= next.start)
      assert.match(await sh(first.node, `systemctl show -p BindsTo --value ${BOUND_UNIT}`), /xcluster-serve\.service/)
      assertNoOverlap(BOUND)
    } finally {
      await recover(first.node, 'xcluster-serve.service')
    }
  })

  it("SIGSTOP of the leader's serve past the TTL: its guardian kills the instance before a successor starts; woken, it never starts it again", async () => {
    const first = await leaderOf('pause')
    const at = await crash(first.node, 'xcluster-serve.service', 'STOP')
    try {
      const next = await waitUntil(
        () => monitor.startedAfter(service('pause'), at) !== undefined,
        10_000,
        () => 'no successor',
      ).then(() => monitor.startedAfter(service('pause'), at)!)
      assert.notEqual(next.node, first.node)
      assert.ok(first.end !== undefined && first.end <= next.start, "the frozen leader's instance outlived its lease")
      await new Promise((r) => setTimeout(r, TTL * 1000))
    } finally {
      await sh(first.node, 'systemctl kill -s CONT --kill-who=main xcluster-serve')
    }
    await new Promise((r) => setTimeout(r, 1500))
    assert.deepEqual(
      monitor.lives.filter((l) => l.service === service('pause') && l.node === first.node && l.start > at),
      [],
      'the woken leader started its instance again',
    )
    assertNoOverlap('pause')
    await recover(first.node, 'xcluster-serve.service')
  })

  it("systemctl stop of the leader's serve: the stop command ends the instance, then a peer takes over at once", async () => {
    const first = await leaderOf('term')
    const at = monoMs()
    const stopped = sh(first.node, 'systemctl stop xcluster-serve')
    try {
      const next = await waitUntil(
        () => monitor.startedAfter(service('term'), at) !== undefined,
        10_000,
        () => 'no successor',
      ).then(() => monitor.startedAfter(service('term'), at)!)
      console.log(`# lab graceful handover: ${(next.start - at).toFixed(0)} ms from systemctl stop to the next instance`)
      // When not: serve's own account of the stop, for the diagnosis.
      const journal = first.graceful
        ? ''
        : (
            await onNode(
              first.node,
              `journalctl -u xcluster-serve --since -30s -o cat --no-pager | tail -n 40; tail -n 5 ${settings.election.runDir}/${first.node}/${service('term')}.log ${NODE_DIR}/${service('term')}-${first.node}.out`,
            )
          ).stdout
      assert.equal(first.graceful, true, `the instance was killed, not stopped; serve on ${first.node} logged:\n${journal}`)
      assert.ok(next.start - at < TTL * 1000)
      await stopped
      assert.equal((await onNode(first.node, 'systemctl is-failed --quiet xcluster-serve')).code === 0, false, 'serve failed instead of stopping')
      assertNoOverlap('term')
    } finally {
      await stopped.catch(() => undefined)
      await sh(first.node, 'systemctl start xcluster-serve')
    }
  })

  it(`${ETCD_LEADER_KILLS} etcd raft leader crashes on the core nodes: the leading instance keeps running through every one`, {timeout: 600_000}, async () => {
    await etcdHealthy()
    const first = await leaderOf('member')
    const from = monoMs()
    for (let i = 0; i < ETCD_LEADER_KILLS; i++) {
      const victim = await raftLeader()
      await crash(victim, 'etcd-member.service')
      await new Promise((r) => setTimeout(r, 1500))
      await recover(victim, 'etcd-member.service')
      await etcdHealthy()
      await new Promise((r) => setTimeout(r, 500))
    }
    assert.deepEqual(
      monitor.lives.filter((l) => l.service === service('member') && l.start >= from).map((l) => `${l.node}/${l.pid}`),
      [],
      'the service was restarted',
    )
    assert.equal(first.end, undefined, 'the leading instance died')
  })

  it("loss of quorum: the leader's instance ends before its lease could expire; nobody leads until quorum returns", async () => {
    await etcdHealthy()
    const first = await leaderOf('quorum')
    const [a, b] = CORE.filter((n) => n !== first.node) as [string, string]
    const lostAt = Math.max(...(await Promise.all([crash(a, 'etcd-member.service'), crash(b, 'etcd-member.service')])))
    try {
      await waitUntil(
        () => first.end !== undefined,
        TTL * 1000 + 3000,
        () => "the leader's instance outlived the quorum",
      )
      // A surviving member that led raft renews leases until its quorum check deposes it (up to two
      // election timeouts); the instance must be gone by then plus the TTL.
      const bound = TTL * 1000 + 2 * settings.etcdMember.electionMs
      assert.ok((first.end as number) - lostAt < bound, `ended ${(first.end as number) - lostAt} ms after the quorum was lost (bound ${bound} ms)`)
      await new Promise((r) => setTimeout(r, TTL * 1000 * 2))
      assert.deepEqual(monitor.alive(service('quorum')), [], 'an instance runs without quorum')
    } finally {
      await Promise.all([recover(a, 'etcd-member.service'), recover(b, 'etcd-member.service')])
    }
    await etcdHealthy()
    const back = await leaderOf('quorum')
    assert.ok(back.start > lostAt)
    assertNoOverlap('quorum')
  })
})
