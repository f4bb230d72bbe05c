/**
 * The leader's mapping of its image (issue 10), through each of its block drivers, as the spec's
 * default `rbdMap: auto` picks them: the kernel's rbd driver (krbd) on machines whose kernel has
 * it, and rbd-nbd (a librbd daemon behind the kernel's nbd driver) on machines whose kernel has
 * nbd but no rbd driver. Two machines with Linux kernels of their own (User-mode Linux,
 * test/helpers/uml.ts; this machine's kernel has neither driver), each running a real
 * `xcluster serve --elect pg`, against a real Ceph (mon, mgr, a memstore OSD) and a real etcd on
 * the machines' bridge. The service is a writer of numbered records to the device serve mapped
 * (XCLUSTER_RBD_DEVICE, O_DIRECT). For each driver:
 * - The leader maps the image `--exclusive`: the mapping's client holds the lock.
 * - A leader machine paused whole (kernel, serve, guardian, writer: a cgroup freeze) past the TTL:
 *   the successor blocklists the paused mapping's client and maps the image itself. Once the old
 *   machine runs again, none of its writes reaches the image, and it maps anew when it leads again
 *   (its stale mapping unmapped first).
 * - A clean stop unmaps, so the lock is gone with the service: the next leader has nothing to fence.
 * The 50-trial proof of the fence itself is test/etcd/election-rbd-fence.test.ts (a librbd writer).
 *
 * Part of `npm test` (alone: `npm run test:uml`); it needs Debian's user-mode-linux, kmod and
 * rbd-nbd (test/packages.ts). A frozen UML machine can stay FREEZING rather than FROZEN (its kernel
 * ptrace-stops its processes); UmlMachine.freeze counts it paused once no thread of it runs.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {MapDeviceType} from '../../src/lib/ceph/rbd-map.js'
import type {CheckResult} from '../../src/lib/election/split-brain.js'
import {startCeph, type TestCeph} from '../helpers/ceph.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {readRecords, writeDeviceWriterScripts, writerLines} from '../helpers/rbd-writer.js'
import {BRIDGE_ADDRESS, removeStaleUmlCgroups, UmlMachine, UmlNetwork} from '../helpers/uml.js'

const IMAGE = 'rbd/pg'
const MACHINES = {s1: '10.99.0.11', s2: '10.99.0.12'} as const
type Node = keyof typeof MACHINES
/**
 * The drivers: the kernel modules the machines have, the one `rbdMap: auto` must pick then, and
 * the takeovers of the paused-leader test. They alternate between the two machines, so from the
 * second on, the successor leads again with its stale mapping; after the last one the clean
 * stop's successor does. Each takeover costs ~50 s in these machines.
 */
const ALL_DRIVERS: {type: MapDeviceType; kernel: string; modules: string[]; device: RegExp; takeovers: number}[] = [
  {type: 'krbd', kernel: 'a kernel with the rbd driver', modules: ['rbd', 'nbd'], device: /^\/dev\/rbd\d+$/, takeovers: Number(process.env.XCT_MAP_TAKEOVERS ?? 2)},
  {type: 'nbd', kernel: 'a kernel with nbd and no rbd driver', modules: ['nbd'], device: /^\/dev\/nbd\d+$/, takeovers: Number(process.env.XCT_MAP_TAKEOVERS ?? 1)},
]
/** Both, unless XCT_UML_DRIVERS names one (to look at one driver alone while debugging). */
const DRIVERS = ALL_DRIVERS.filter((d) => (process.env.XCT_UML_DRIVERS ?? 'krbd,nbd').split(',').includes(d.type))
/**
 * A takeover: the TTL, the fence's ceph calls and a map, on machines that run their kernel as
 * processes. Each call there is slow (UML traps every system call): the Python `ceph` CLI takes
 * ~7 s on an idle host, past 10 s beside the suite's lab. So serve's bound on a Ceph call is
 * raised (CEPH_CALL_TIMEOUT_MS), and a takeover gets three minutes: one may wait out that bound
 * on a stale mapping stuck in the kernel.
 */
const TAKEOVER_TIMEOUT_MS = 180_000
const CEPH_CALL_TIMEOUT_MS = 60_000

interface Writer {
  node: Node
  token: string
  device: string
  wrote: number
}

for (const driver of DRIVERS)
  describe(`a leader's mapping of its image through ${driver.type}, on ${driver.kernel}`, {concurrency: false}, () => {
    let net: UmlNetwork
    let ceph: TestCeph
    let etcd: TestEtcd
    let dir: string
    const machines = new Map<Node, UmlMachine>()
    const daemons = new Map<Node, Daemon>()
    let writerLog: (node: string) => string
    const linesOf = (node: Node) => writerLines(writerLog(node))
    /** What a user on the machines' network sees, with the cluster's own CLIs. */
    const onNet = (cmd: string, args: string[]) => execFileSync('ip', ['netns', 'exec', net.netns, cmd, ...args], {encoding: 'utf8'})
    const rbdJson = <T>(args: string[]) => JSON.parse(onNet('rbd', ['-c', ceph.conf, ...args, '--format', 'json'])) as T
    const addressOf = (clientAddress: string) => clientAddress.split(':')[0]
    const records = () => readRecords(ceph.conf, IMAGE, net.wrap)

    /** The writer that opened the device last (the newest token), once it wrote. */
    const latestWriter = (): Writer | undefined => {
      const opened = (Object.keys(MACHINES) as Node[])
        .flatMap((n) => linesOf(n).filter((l) => l.startsWith('opened ')))
        .map((l) => l.split(' ') as [string, Node, string, string])
        .sort((a, b) => (BigInt(a[2]) < BigInt(b[2]) ? -1 : 1))
        .at(-1)
      if (!opened) return undefined
      const [, node, token, device] = opened
      return {node, token, device, wrote: linesOf(node).filter((l) => l.startsWith(`wrote ${node} ${token} `)).length}
    }
    const writing = async (accept: (w: Writer) => boolean = () => true) => {
      try {
        return await until(
          'a writer through the leader mapping',
          () => {
            const w = latestWriter()
            return w && w.wrote >= 3 && accept(w) ? w : undefined
          },
          TAKEOVER_TIMEOUT_MS,
          100,
        )
      } catch (error) {
        // What each machine did last, for the failure's message: its serve's events, its writer's lines.
        const last = (Object.keys(MACHINES) as Node[]).map((n) => `${n}: ${JSON.stringify(daemons.get(n)?.events.slice(-8))}\n${n} writer: ${linesOf(n).slice(-3).join(' | ')}`)
        throw new Error(`${(error as Error).message}; latest writer ${JSON.stringify(latestWriter())}\n${last.join('\n')}`)
      }
    }
    const event = (node: Node, name: string, token: string) => daemons.get(node)?.events.find((e) => e.event === name && e.token === token)
    /**
     * A machine that led before and was deposed without a clean stop unmapped its stale mapping
     * before it mapped anew: as its service starts, the machine's kernel has the one device
     * serve gave it. Only one with I/O stuck in its kernel may keep it: the earlier instance
     * outlived its SIGKILL there (a write its blocklisted client can never finish), and the
     * unmap, stuck behind that write, got no answer. The new mapping is a device of its own.
     */
    const staleUnmapped = (leader: Writer, when: string) => {
      const events = daemons.get(leader.node)?.events ?? []
      const stuckInstance = events.some((e) => e.event === 'demoted' && /still alive 5 s after SIGKILL/.test(String(e.stop)))
      const unmaps = events.filter((e) => e.event === 'rbd-stale-unmapped' && e.token === leader.token)
      assert.ok(unmaps.length > 0, `${when}: ${leader.node} led before, but did not unmap its stale mapping: ${JSON.stringify(events.slice(-8))}`)
      const stuck = unmaps.filter((stale) => stale.ok !== true)
      for (const stale of stuck)
        assert.ok(stuckInstance && /no answer within|stuck in the kernel/.test(String(stale.output)), `${when}: ${leader.node} could not unmap its stale mapping: ${JSON.stringify(stale)}`)
      const devices = linesOf(leader.node)
        .map((l) => l.split(' '))
        .find(([what, node, token]) => what === 'devices' && node === leader.node && token === leader.token)
        ?.slice(3)
      assert.deepEqual(
        devices?.filter((d) => d !== leader.device),
        stuck.map((stale) => stale.device),
        `${when}: ${leader.node}'s kernel had other devices mapped than ${leader.device} as its service started`,
      )
    }

    before(async () => {
      removeStaleUmlCgroups()
      dir = mkdtempSync(join(tmpdir(), 'xct-rbd-map-'))
      net = new UmlNetwork(driver.type)
      ceph = await startCeph({osdHosts: ['s4'], netns: net.netns, address: BRIDGE_ADDRESS})
      ceph.ceph(['osd', 'pool', 'create', 'rbd', '8', '8'])
      ceph.ceph(['osd', 'pool', 'application', 'enable', 'rbd', 'rbd'])
      onNet('rbd', ['-c', ceph.conf, 'create', '--size', '64M', IMAGE])
      etcd = await startEtcd({netns: net.netns, host: BRIDGE_ADDRESS})
      const {start, stop, log} = writeDeviceWriterScripts(dir)
      writerLog = log
      const file = join(dir, 'spec.yaml')
      writeSpec(file, specBase(ROOT), `  - {name: pg, ttl: 3, nodes: [s1, s2], rbdImage: ${IMAGE}, start: 'sh ${start}', stop: 'sh ${stop}'}\n`)
      const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.unixEndpoint as string}})
      assert.equal(applied.code, 0, applied.stderr)
      for (const [node, address] of Object.entries(MACHINES) as [Node, string][]) {
        const machine = new UmlMachine(net, node, address, dir, driver.modules)
        machines.set(node, machine)
        // Inside the machine: the test cluster's conf, and a run dir the test can read (instance logs).
        const env = {CEPH_CONF: ceph.conf, XCLUSTER_RUN_DIR: join(machine.dir, 'run'), XCLUSTER_CEPH_TIMEOUT_MS: String(CEPH_CALL_TIMEOUT_MS)}
        daemons.set(node, new Daemon(node, ['pg'], etcd.endpoint, join(dir, `${node}.console`), machine.wrap, env).start())
      }
    })

    after(async () => {
      await Daemon.killAll()
      for (const machine of machines.values()) machine.destroy()
      await etcd?.stop()
      await ceph?.stop()
      net?.close()
      if (process.env.XCT_KEEP) console.log(`kept ${dir}`)
      else rmSync(dir, {recursive: true, force: true})
    })

    it('the leader maps the image --exclusive: the mapping holds the lock, and check names it', async () => {
      const leader = await writing()
      const mapped = event(leader.node, 'rbd-mapped', leader.token)
      assert.equal(mapped?.ok, true, JSON.stringify(mapped))
      assert.equal(mapped?.type, driver.type)
      assert.equal(mapped?.device, leader.device)
      assert.match(leader.device, driver.device)
      // The one client of the image is the leader machine's mapping (its kernel, or its rbd-nbd), and it holds librbd's lock.
      const watchers = rbdJson<{watchers: {address: string}[]}>(['status', IMAGE]).watchers
      assert.deepEqual(
        watchers.map((w) => addressOf(w.address)),
        [MACHINES[leader.node]],
      )
      const locks = rbdJson<{id: string; address: string}[]>(['lock', 'ls', IMAGE])
      assert.deepEqual(
        locks.map((l) => [l.id.startsWith('auto '), addressOf(l.address)]),
        [[true, MACHINES[leader.node]]],
      )
      // The records on the image are the leader's.
      assert.ok(records().some((r) => r.node === leader.node && r.token === leader.token))
      // The holder is recorded once the start command returned, which in UML takes seconds more.
      let lastCheck = ''
      const checked = await until(
        'election check to name the holder',
        async () => {
          const res = await xcluster(['election', 'check', '--json', '--no-vips'], {env: {XCLUSTER_ETCD: etcd.endpoint, CEPH_CONF: ceph.conf}, wrap: net.wrap})
          lastCheck = `exit ${res.code}: ${res.stdout.slice(-600)} ${res.stderr.slice(-300)}`
          return res.code === 0 ? res.json<CheckResult>() : undefined
        },
        TAKEOVER_TIMEOUT_MS,
        500,
      ).catch((error: Error) => {
        throw new Error(`${error.message}; last check: ${lastCheck}; ${leader.node}: ${JSON.stringify(daemons.get(leader.node)?.events.slice(-4))}`)
      })
      const pg = checked.services.find((s) => s.service === 'pg')
      assert.deepEqual(
        pg?.rbdHolders?.map((h) => [h.node, h.token, addressOf(h.address)]),
        [[leader.node, leader.token, MACHINES[leader.node]]],
      )
    })

    it('a leader machine paused past the TTL: the successor blocklists its mapping; when it runs again none of its writes reaches the image', async () => {
      for (let takeover = 1; takeover <= driver.takeovers; takeover++) {
        const old = await writing()
        const machine = machines.get(old.node) as UmlMachine
        await machine.freeze()
        let successor: Writer
        // From this moment the old machine may run again: a write it issues later must not succeed.
        let runsAgainNs = 0n
        try {
          successor = await writing((w) => w.node !== old.node && BigInt(w.token) > BigInt(old.token))
        } finally {
          runsAgainNs = BigInt(Date.now()) * 1_000_000n
          await machine.thaw()
        }
        const fenced = event(successor.node, 'rbd-fenced', successor.token)
        assert.ok(
          (fenced?.blocklisted as string[] | undefined)?.some((a) => addressOf(a) === MACHINES[old.node]),
          `takeover ${takeover}: ${successor.node} blocklisted ${JSON.stringify(fenced?.blocklisted)}, not ${old.node}'s mapping`,
        )
        if (takeover > 1) staleUnmapped(successor, `takeover ${takeover}`)
        assert.equal(event(successor.node, 'rbd-mapped', successor.token)?.ok, true)
        // The old machine runs again for a while: its guardian, its serve, its writer, all late.
        await new Promise((r) => setTimeout(r, 5000))
        const image = records()
        const firstNew = Math.min(...image.filter((r) => r.token === successor.token).map((r) => r.slot))
        const stale = image.filter((r) => r.token === old.token && r.slot >= firstNew)
        assert.deepEqual(stale, [], `takeover ${takeover}: records of ${old.node} (token ${old.token}) after ${successor.node}'s first`)
        const newer = image.filter((r) => r.token === successor.token).sort((a, b) => a.slot - b.slot)
        assert.deepEqual(
          newer.map((r) => r.seq),
          newer.map((_, i) => i + 1),
          `takeover ${takeover}: ${successor.node}'s records were overwritten`,
        )
        // A write issued before the pause may return after it (its line then comes late); one
        // issued after the machine ran again must fail. The line's time is its last write's issue.
        const lateWrites = linesOf(old.node).filter((l) => l.startsWith(`wrote ${old.node} ${old.token} `) && BigInt(l.split(' ')[5] as string) > runsAgainNs)
        assert.deepEqual(lateWrites, [], `takeover ${takeover}: a write the old writer issued after its machine ran again succeeded`)
      }
    })

    it("a clean stop unmaps the image: the lock goes with the service, and the next leader's fence finds nothing", async () => {
      const old = await writing()
      const machine = machines.get(old.node) as UmlMachine
      machine.requestStop()
      const successor = await writing((w) => w.node !== old.node && BigInt(w.token) > BigInt(old.token))
      const oldLines = linesOf(old.node)
      const wrote = oldLines.filter((l) => l.startsWith(`wrote ${old.node} ${old.token} `)).length
      assert.ok(oldLines.includes(`stopped ${old.node} ${old.token} ${wrote}`), 'the old writer stopped cleanly')
      const unmapped = event(old.node, 'rbd-unmapped', old.token)
      assert.equal(unmapped?.ok, true, JSON.stringify(unmapped))
      // The successor is the machine paused in the last takeover: it leads again, its stale mapping gone first.
      staleUnmapped(successor, 'after the clean stop')
      // Nothing of the stopped leader's to fence: no lock to break, no client of its machine to blocklist.
      const fenced = event(successor.node, 'rbd-fenced', successor.token)
      assert.deepEqual(fenced?.brokenLocks, [], JSON.stringify(fenced))
      assert.deepEqual(
        (fenced?.blocklisted as string[] | undefined)?.filter((a) => addressOf(a) === MACHINES[old.node]),
        [],
        JSON.stringify(fenced),
      )
    })
  })
