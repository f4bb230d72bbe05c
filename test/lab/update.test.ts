/**
 * `xcluster update` on the lab's bootstrapped cluster (test/lab/bootstrap.test.ts runs first), as
 * the operator runs it on the admin host: a rolling update of the three core nodes with the
 * shipped playbook (templates/ansible/update.yml: apt through the cluster's package cache, a
 * reboot only when a package asks for one) while a client keeps asking the admin VIP and the
 * elected dhcp service's leader; no request fails for longer than one failover, etcd keeps
 * quorum, and every node ends ready and campaigning. Then a playbook that fails on the second
 * node stops the run there: that node stays drained with the reason, the first is ready again,
 * the third untouched.
 *
 * Named after the command: node's test runner runs files in path order, after bootstrap.test.ts
 * and node-lifecycle.test.ts (which leaves s1-s3 ready).
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {get as httpsGet} from 'node:https'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {UpdateResult} from '../../src/lib/actions/update.js'
import {nodeTlsFiles} from '../../src/lib/certs/paths.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import type {RunShown} from '../../src/lib/tasks/journal.js'
import type {CliResult} from '../helpers/cli.js'
import {admin, bootstrapped, clusterStore, lab, ok, onNode, waitUntil} from '../helpers/lab.js'

const CORE = ['s1', 's2', 's3']
const state = lab()
const ipOf = (name: string): string => state.hosts.find((h) => h.name === name)!.ip!
const ADMIN_VIP = '10.0.0.254'
/**
 * One failover, the longest a client may go unanswered: the admin VIP moves by VRRP (a stopped
 * keepalived gives it up at once, a lost one after 3 adverts), an elected service by its lease's
 * TTL at worst (a handover takes well under a second); plus the probes' own timeout.
 */
const FAILOVER_MS = Math.max(3 * settings.keepalived.advertIntSeconds, settings.election.defaultTtlSeconds) * 1000 + 2000
const PROBE_TIMEOUT_MS = 1500

let dir: string
let ca: string
const store = clusterStore(state)

/** One HTTPS GET trusting the cluster CA only; any answer resolves with its status, no answer with 0. */
function probe(url: string, anyName = false): Promise<number> {
  return new Promise((resolve) => {
    // The admin VIP's holder changes: the chain is checked against the cluster CA, the name is not.
    const req = httpsGet(url, {ca, timeout: PROBE_TIMEOUT_MS, ...(anyName ? {checkServerIdentity: () => undefined} : {})}, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve(0))
  })
}

interface Sample {
  at: number
  vip: boolean
  leader: boolean
  etcd: boolean
}

/** A client that keeps asking, every 200 ms, until stopped: the admin VIP, the dhcp leader (any core node answering 200 on /leader/dhcp), and etcd (a read that needs quorum). */
function startClient(): {stop: () => Promise<Sample[]>} {
  const samples: Sample[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const at = Date.now()
      const [vip, leaders, etcd] = await Promise.all([
        probe(`https://${ADMIN_VIP}:${settings.serveUnit.httpPort}/health`, true),
        Promise.all(CORE.map((n) => probe(`https://${ipOf(n)}:${settings.serveUnit.httpPort}/leader/dhcp`))),
        store.getJson(store.keys.spec()).then(
          () => true,
          () => false,
        ),
      ])
      samples.push({at, vip: vip !== 0, leader: leaders.includes(200), etcd})
      await new Promise((r) => setTimeout(r, 200))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return samples
    },
  }
}

/** The longest stretch (ms) from a failed sample to the next good one. */
function longestOutage(samples: Sample[], key: keyof Omit<Sample, 'at'>): number {
  let longest = 0
  let since: number | undefined
  for (const s of samples) {
    if (!s[key]) since ??= s.at
    else if (since !== undefined) {
      longest = Math.max(longest, s.at - since)
      since = undefined
    }
  }
  if (since !== undefined) longest = Math.max(longest, (samples.at(-1)?.at ?? since) - since + PROBE_TIMEOUT_MS)
  return longest
}

const record = async (name: string) => (await store.getJson<NodeRecord>(store.keys.node(name)))!.value
const dhcp = async () => (await admin(['election', 'list', '--json'])).json<{service: string; leader: string | null; candidates: string[]}[]>().find((e) => e.service === 'dhcp')

/** Every core node ready, campaigning for dhcp, and a leader elected. */
async function coreSettled(): Promise<void> {
  await waitUntil(
    async () => {
      const e = await dhcp()
      return Boolean(e?.leader) && e!.candidates.length === 3 && (await Promise.all(CORE.map(record))).every((n) => n.state === 'ready')
    },
    60_000,
    () => 'the core nodes did not settle: ready, three dhcp candidates, a leader',
  )
}

before(async () => {
  assert.ok(bootstrapped(state), "the lab's cluster is not bootstrapped: test/lab/bootstrap.test.ts runs first")
  dir = mkdtempSync(join(tmpdir(), 'xct-update-'))
  ca = (await onNode('s1', `cat ${nodeTlsFiles.ca}`)).stdout
  assert.match(ca, /BEGIN CERTIFICATE/)
  await coreSettled()
})
after(async () => {
  rmSync(dir, {recursive: true, force: true})
  await store.close()
})

describe('rolling update of the lab cluster', {concurrency: false}, () => {
  it('--dry-run changes nothing: the core nodes one at a time, the etcd leader last', async () => {
    // The cluster's etcd is never still (leases, views): the nodes and the runs are what a dry run could touch.
    const nodesBefore = await Promise.all(CORE.map(record))
    const runsBefore = await store.listJson(store.keys.runsPrefix())
    const r = ok(await admin(['update', '--nodes', 'type=core', '--dry-run', '--json']), 'update --dry-run')
    const result = r.json<UpdateResult>()
    const {members} = ok(await admin(['etcd', 'members', '--json']), 'etcd members').json<{members: {name: string; isLeader: boolean}[]}>()
    assert.equal(result.plan.order.at(-1), members.find((m) => m.isLeader)?.name, 'the etcd leader goes last')
    assert.deepEqual([...result.plan.order].sort(), CORE)
    assert.deepEqual(await Promise.all(CORE.map(record)), nodesBefore)
    assert.deepEqual(await store.listJson(store.keys.runsPrefix()), runsBefore)
  })

  it(
    'the shipped playbook on s1-s3, one at a time, while a client asks the admin VIP and the dhcp leader: no outage longer than one failover, etcd keeps quorum, every node ends ready',
    {timeout: 30 * 60_000},
    async () => {
      const client = startClient()
      let r: CliResult | undefined
      let samples: Sample[] = []
      try {
        r = await admin(['update', '--nodes', 'type=core', '--yes', '--json'])
      } finally {
        samples = await client.stop()
      }
      ok(r, 'update')
      const result = r.json<UpdateResult>()
      assert.deepEqual(
        result.batches.map((b) => b.outcome),
        ['updated', 'updated', 'updated'],
      )
      assert.ok(samples.length > 50, `the client asked only ${samples.length} times`)
      const outages = {vip: longestOutage(samples, 'vip'), leader: longestOutage(samples, 'leader'), etcd: longestOutage(samples, 'etcd')}
      console.log(`# ${samples.length} samples; longest outage: admin VIP ${outages.vip} ms, dhcp leader ${outages.leader} ms, etcd ${outages.etcd} ms (one failover: ${FAILOVER_MS} ms)`)
      assert.ok(outages.vip <= FAILOVER_MS, `the admin VIP went unanswered for ${outages.vip} ms`)
      assert.ok(outages.leader <= FAILOVER_MS, `no dhcp leader answered for ${outages.leader} ms`)
      assert.ok(outages.etcd <= FAILOVER_MS, `etcd lost quorum for ${outages.etcd} ms`)
      ok(await admin(['etcd', 'health']), 'etcd health')
      await coreSettled()
      const shown = ok(await admin(['runs', 'show', result.run.runId!, '--json']), 'runs show').json<RunShown>()
      assert.equal(shown.record.result, 'succeeded')
      for (const n of CORE) {
        assert.ok(shown.checkpoints.includes(`playbook/${n}`) && shown.checkpoints.includes(`mark-ready/${n}`), `${n}: ${shown.checkpoints.join(' ')}`)
        assert.deepEqual(
          (await record(n)).history!.slice(-3).map((h) => h.to),
          ['draining', 'drained', 'ready'],
        )
      }
    },
  )

  it('a playbook failing on the second node stops the run there: that node drained with the reason, the first ready, the third untouched', {timeout: 15 * 60_000}, async () => {
    const order = ok(await admin(['update', '--nodes', 'type=core', '--dry-run', '--json']), 'dry run').json<UpdateResult>().plan.order
    const [first, second, third] = order as [string, string, string]
    const playbook = join(dir, 'fails-on-second.yml')
    writeFileSync(
      playbook,
      `---\n- name: Fail on ${second}\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Break\n      ansible.builtin.fail:\n        msg: broken on purpose\n      when: inventory_hostname == '${second}'\n`,
    )
    const thirdBefore = await record(third)
    const r = await admin(['update', '--nodes', 'type=core', '--playbook', playbook, '--yes'])
    assert.equal(r.code, 4, `${r.stderr}${r.stdout}`)
    assert.match(r.stderr, new RegExp(`${second} \\(phase playbook\\): the playbook failed on ${second}: failed: broken on purpose`))
    assert.match(r.stderr, /Try this: Fix the cause, then continue with: xcluster update .*--resume \S+/)
    assert.equal((await record(first)).state, 'ready')
    const failed = await record(second)
    assert.equal(failed.state, 'drained')
    assert.match(failed.reason ?? '', /update failed in playbook: .*broken on purpose/)
    assert.deepEqual(await record(third), thirdBefore, `${third} untouched`)
    ok(await admin(['etcd', 'health']), 'etcd keeps quorum')
    // Back as it was for the tests after this one.
    ok(await admin(['node', 'undrain', second]), `undrain ${second}`)
    await coreSettled()
  })

  it('a node whose packages asked for a reboot is rebooted by the shipped playbook and comes back ready, its services running', {timeout: 15 * 60_000}, async () => {
    // Not the etcd leader (it would go last anyway): one core node, as a package's postinst leaves it.
    const node = ok(await admin(['update', '--nodes', 'type=core', '--dry-run', '--json']), 'dry run').json<UpdateResult>().plan.order[0] as string
    const bootId = async () => (await onNode(node, 'cat /proc/sys/kernel/random/boot_id')).stdout.trim()
    const before = await bootId()
    assert.match(before, /^[0-9a-f-]{36}$/)
    await onNode(node, 'echo "*** System restart required ***" > /var/run/reboot-required')
    const r = ok(await admin(['update', '--nodes', node, '--yes', '--json']), `update ${node}`)
    assert.deepEqual(
      r.json<UpdateResult>().batches.map((b) => b.outcome),
      ['updated'],
    )
    // Rebooted: a new boot (systemd-nspawn gives each boot its own id), and the flag, on a tmpfs, gone with it.
    assert.notEqual(await bootId(), before, `${node} was not rebooted`)
    assert.equal((await onNode(node, 'test -e /var/run/reboot-required && echo present || echo gone')).stdout.trim(), 'gone')
    // What the node runs came back by itself after the boot: its units are enabled, not restarted by hand.
    const active = (await onNode(node, 'systemctl is-active etcd-member xcluster-serve keepalived xcluster-dns squid')).stdout.trim().split('\n')
    assert.deepEqual(active, ['active', 'active', 'active', 'active', 'active'])
    assert.deepEqual(
      (await record(node)).history!.slice(-3).map((h) => h.to),
      ['draining', 'drained', 'ready'],
    )
    ok(await admin(['etcd', 'health']), 'etcd health: every member back')
    await coreSettled()
  })
})
