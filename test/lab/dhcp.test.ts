/**
 * The cluster's DHCP in the lab, as bootstrap deployed it: `xcluster serve --dhcp` runs on every
 * core node under systemd and only the elected, fenced dhcp leader answers. Real clients (busybox
 * udhcpc, ISC dhclient) in the unaddressed nodes' namespaces get their MAC-typed addresses; when
 * the leader's serve dies (SIGKILL, not restarted), another core node takes over and hands out
 * the same addresses, since the leases live in etcd.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {Lease} from '../../src/lib/dhcp/lease.js'
import {findHost} from '../../src/lib/lab/state.js'
import {admin, clusterStore, inNode, lab, ok, waitUntil} from '../helpers/lab.js'
import {requireTool} from '../helpers/tools.js'

const state = lab()
const CORE_IPS: Record<string, string> = {s1: '10.0.0.2', s2: '10.0.0.3', s3: '10.0.0.4'}
/** A runtime drop-in that keeps systemd from restarting serve after the test kills it: a crash that stays down. */
const NO_RESTART = '/run/systemd/system/xcluster-serve.service.d/xct-no-restart.conf'

describe("the cluster's DHCP: serve on every core node, one fenced leader, real clients", () => {
  const store = clusterStore(state)
  let dir: string
  let killed: string | undefined
  const busybox = requireTool('busybox', 'busybox')
  const dhclient = requireTool('dhclient', 'isc-dhcp-client')

  const dhcpLeader = async () =>
    ok(await admin(['election', 'list', '--json']), 'election list')
      .json<{service: string; leader: string | null}[]>()
      .find((e) => e.service === 'dhcp')?.leader ?? null

  async function run(argv: string[], until?: RegExp): Promise<string> {
    return new Promise((resolve) => {
      const child = spawn(argv[0] as string, argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']})
      let out = ''
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const onData = (d: Buffer): void => {
        out += d
        if (until?.test(out)) child.kill('SIGKILL')
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      child.on('close', () => {
        clearTimeout(timer)
        resolve(out)
      })
    })
  }

  /** busybox udhcpc in a node's namespace, its MAC on the wire; the node's own eth0 is left as it is. Returns the address. */
  async function udhcpc(node: string): Promise<string | undefined> {
    return (await udhcpcFrom(node))?.ip
  }

  /** The same, with the server that answered (its server identifier). */
  async function udhcpcFrom(node: string): Promise<{ip: string; server: string} | undefined> {
    const out = join(dir, `${node}.ip`)
    rmSync(out, {force: true})
    const script = join(dir, 'udhcpc.sh')
    writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && echo $ip $serverid > ${out}\nexit 0\n`)
    chmodSync(script, 0o755)
    await run(['ip', 'netns', 'exec', findHost(state, node).netns, busybox, 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script])
    try {
      const [ip = '', server = ''] = readFileSync(out, 'utf8').trim().split(' ')
      return {ip, server}
    } catch {
      return undefined
    }
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xct-dhcp-lab-'))
  })

  after(async () => {
    if (killed) inNode(killed, `rm -f ${NO_RESTART}; systemctl daemon-reload; systemctl reset-failed xcluster-serve; systemctl start xcluster-serve`)
    await store.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('c1 (udhcpc) and s4 (dhclient) get their typed addresses from the leading core node', async () => {
    const leader = await dhcpLeader()
    assert.ok(leader && CORE_IPS[leader], `dhcp leader: ${leader}`)
    // The answer on the wire names its server. (The lease's grantedBy may name an earlier leader:
    // a renewal of an unchanged lease is not rewritten.)
    const c1 = await udhcpcFrom('c1')
    assert.match(c1?.ip ?? '', /^10\.0\.0\.(5[1-9]|6\d|70)$/)
    assert.equal(c1?.server, CORE_IPS[leader], `c1 was answered by ${c1?.server}, the leader is ${leader}`)
    const out = await run(
      ['ip', 'netns', 'exec', findHost(state, 's4').netns, dhclient, '-1', '-v', '-d', '-sf', '/bin/true', '-lf', join(dir, 's4.leases'), '-pf', join(dir, 's4.pid'), 'eth0'],
      /bound to \S+/,
    )
    assert.match(out, /bound to 10\.0\.0\.(1[1-9]|2\d|30)\b/)
    const lease = await store.getJson<Lease>(store.keys.lease(c1!.ip))
    assert.equal(lease?.value.node, 'c1')
  })

  it("after the leader's serve is SIGKILLed, another core node leads and gives the same addresses (leases live in etcd)", async () => {
    const leader = (await dhcpLeader()) as string
    const before = {c1: await udhcpc('c1'), f1: await udhcpc('f1')}
    inNode(leader, `mkdir -p $(dirname ${NO_RESTART}) && printf '[Service]\\nRestart=no\\n' > ${NO_RESTART} && systemctl daemon-reload && systemctl kill -s KILL xcluster-serve`)
    killed = leader
    let next: string | null = null
    await waitUntil(
      async () => {
        next = await dhcpLeader()
        return next !== null && next !== leader
      },
      15_000,
      () => `no new dhcp leader (still ${next})`,
    )
    for (const node of ['c1', 'f1'] as const) {
      const answer = await udhcpcFrom(node)
      assert.equal(answer?.ip, before[node], `${node} got another address`)
      assert.equal(answer?.server, CORE_IPS[next as unknown as string], `${node} was answered by ${answer?.server}, not the new leader ${next}`)
    }
  })
})
