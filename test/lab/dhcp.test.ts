import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {Lease} from '../../src/lib/dhcp/lease.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {findHost, readLabState, type LabState} from '../../src/lib/lab/state.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {BIN} from '../helpers/cli.js'
import {requireTool} from '../helpers/tools.js'

/** Its own cluster name in the lab's etcd, so nothing else in the lab sees these leases. */
const CLUSTER = 'xct-dhcp'

describe('DHCP in the lab: xcluster serve on core nodes, real clients on unaddressed nodes', () => {
  let lab: LabState
  let store: EtcdStore
  let dir: string
  const servers: ChildProcess[] = []
  const busybox = requireTool('busybox', 'busybox')
  const dhclient = requireTool('dhclient', 'isc-dhcp-client')

  /** `xcluster serve --dhcp` in a core node's network namespace, against the admin host's etcd. */
  async function serveOn(node: string): Promise<ChildProcess> {
    const child = spawn('ip', ['netns', 'exec', findHost(lab, node).netns, process.execPath, BIN, 'serve', '--dhcp', '--interface', 'eth0', '--node', node, '--cluster', CLUSTER, '--etcd', lab.etcdEndpoint], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    servers.push(child)
    let stderr = ''
    child.stderr?.on('data', (d) => (stderr += d))
    // It answers once it leads the dhcp election: at once, or after a dead leader's lease ran out.
    for (let i = 0; i < 200 && !/"source":"dhcp","event":"started"/.test(stderr); i++) await new Promise((r) => setTimeout(r, 50))
    assert.match(stderr, /serving DHCP on eth0/)
    assert.match(stderr, /"source":"dhcp","event":"started"/)
    return child
  }

  async function run(argv: string[], until?: RegExp): Promise<string> {
    return new Promise((resolve) => {
      const child = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']})
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

  async function udhcpc(node: string): Promise<string | undefined> {
    const out = join(dir, `${node}.ip`)
    rmSync(out, {force: true})
    const script = join(dir, 'udhcpc.sh')
    writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && echo $ip > ${out}\nexit 0\n`)
    chmodSync(script, 0o755)
    // -s: the node's eth0 is left as it is; the lab stays as it was.
    await run(['ip', 'netns', 'exec', findHost(lab, node).netns, busybox, 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script])
    try {
      return readFileSync(out, 'utf8').trim()
    } catch {
      return undefined
    }
  }

  before(async () => {
    lab = readLabState()
    dir = mkdtempSync(join(tmpdir(), 'xct-dhcp-lab-'))
    store = new EtcdStore({endpoints: [lab.etcdEndpoint], cluster: CLUSTER})
    await store.call('clear', (c) => c.delete().prefix(store.keys.prefix).exec())
    const spec = readFileSync(lab.specFile, 'utf8').replace(/^cluster: .*$/m, `cluster: ${CLUSTER}`)
    await applyPlan(store, await planApply(store, parseSpec(spec, lab.specFile)))
  })

  after(async () => {
    for (const s of servers) s.kill('SIGKILL')
    await store?.call('clear', (c) => c.delete().prefix(store.keys.prefix).exec())
    await store?.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('c1 (udhcpc) and s4 (dhclient) get typed addresses from a server on s1', async () => {
    await serveOn('s1')
    assert.equal(await udhcpc('c1'), '10.0.0.51')
    const out = await run(['ip', 'netns', 'exec', findHost(lab, 's4').netns, dhclient, '-1', '-v', '-d', '-sf', '/bin/true', '-lf', join(dir, 's4.leases'), '-pf', join(dir, 's4.pid'), 'eth0'], /bound to \S+/)
    assert.match(out, /bound to 10\.0\.0\.11\b/)
    const lease = await store.getJson<Lease>(store.keys.lease('10.0.0.51'))
    assert.equal(lease?.value.node, 'c1')
    assert.equal(lease?.value.grantedBy, '10.0.0.2')
  })

  it('after the s1 server is killed, a server on s2 gives the same addresses (leases live in etcd)', async () => {
    servers[0].kill('SIGKILL')
    await serveOn('s2')
    assert.equal(await udhcpc('c1'), '10.0.0.51')
    assert.equal(await udhcpc('f1'), '10.0.0.71')
    assert.equal((await store.getJson<Lease>(store.keys.lease('10.0.0.71')))?.value.grantedBy, '10.0.0.3')
  })
})
