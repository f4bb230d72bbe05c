/**
 * Losing a core node after bootstrap: s1's machine dies at once (its container SIGKILLed and its
 * NIC down, as at a power cut). What the cluster promises keeps working on s2 and s3: etcd with
 * two of three members, the admin VIP on exactly one of them, the DHCP leadership and its
 * answers, the operator's commands. Then s1 boots again and rejoins by itself: its units were
 * enabled by bootstrap, nothing is run by hand.
 */
import assert from 'node:assert/strict'
import {execFile, execFileSync} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {labPaths} from '../../src/lib/lab/paths.js'
import {containerInitPid, findHost, livePid} from '../../src/lib/lab/state.js'
import {admin, lab, ok, onNode, rootNamespaceAncestor, waitUntil} from '../helpers/lab.js'
import {requireTool} from '../helpers/tools.js'

const state = lab()
const VIP = '10.0.0.254'
const SURVIVORS = ['s2', 's3']
const CORE_IPS: Record<string, string> = {s1: '10.0.0.2', s2: '10.0.0.3', s3: '10.0.0.4'}
let dir: string
let s1Down = false

const vipHolders = (nodes: string[]): string[] => nodes.filter((n) => execFileSync('ip', ['-n', `xc-${n}`, '-4', '-o', 'addr', 'show', 'eth0'], {encoding: 'utf8'}).includes(` ${VIP}/`))
const dhcpLeader = async () =>
  ok(await admin(['election', 'list', '--json']), 'election list')
    .json<{service: string; leader: string | null}[]>()
    .find((e) => e.service === 'dhcp')?.leader ?? null

/** etcdctl from the admin host as the operator, against some members only. */
function etcdctl(endpoints: string[], args: string[]): Promise<{code: number; out: string}> {
  const pki = join(labPaths(state.dir).adminPki, state.cluster)
  return new Promise((resolve) =>
    execFile(
      'etcdctl',
      [
        `--endpoints=${endpoints.join(',')}`,
        `--cacert=${join(pki, 'ca.crt')}`,
        `--cert=${join(pki, 'xcluster-admin.crt')}`,
        `--key=${join(pki, 'xcluster-admin.key')}`,
        '--dial-timeout=2s',
        '--command-timeout=4s',
        ...args,
      ],
      {env: {...process.env, ETCDCTL_API: '3'}},
      (err, stdout, stderr) => resolve({code: err ? 1 : 0, out: `${stdout}${stderr}`}),
    ),
  )
}

/** Powers s1 on again: its NIC up, its container booted from the root namespaces (as `lab up` does). */
async function bootS1(): Promise<void> {
  execFileSync('ip', ['-n', 'xc-s1', 'link', 'set', 'eth0', 'up'])
  await new Promise<void>((resolve, reject) =>
    execFile(
      'nsenter',
      [
        '-t',
        String(rootNamespaceAncestor()),
        '-m',
        '-n',
        `--wd=${join(import.meta.dirname, '..', '..')}`,
        '--',
        process.execPath,
        '--import',
        'tsx',
        join(import.meta.dirname, '..', 'helpers', 'boot-node.ts'),
        's1',
      ],
      {cwd: join(import.meta.dirname, '..', '..'), timeout: 120_000},
      (err, _out, stderr) => (err ? reject(new Error(`booting s1 failed: ${stderr || err.message}`)) : resolve()),
    ),
  )
  s1Down = false
}

after(async () => {
  if (s1Down) await bootS1()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('losing core node s1 after bootstrap', {concurrency: false}, () => {
  it('s1 dies (container killed, NIC down): etcd, the admin VIP, DHCP and the CLI carry on on s2 and s3', {timeout: 120_000}, async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-core-loss-'))
    // SIGKILL to the container's init ends every process in it at once (killing nspawn alone
    // would orphan them); the NIC goes down with the machine.
    const init = containerInitPid(state.dir, 's1')
    assert.ok(init, 's1 is not running')
    execFileSync('ip', ['-n', 'xc-s1', 'link', 'set', 'eth0', 'down'])
    process.kill(init, 'SIGKILL')
    await waitUntil(
      () => livePid(labPaths(state.dir).pidFile('nspawn-s1')) === undefined,
      15_000,
      () => "s1's container did not die",
    )
    s1Down = true
    const lostAt = Date.now()

    // etcd: a quorum of two, reads and writes through s2 and s3.
    const survivors = SURVIVORS.map((n) => `https://${CORE_IPS[n]}:2379`)
    await waitUntil(
      async () => (await etcdctl(survivors, ['put', `/xcluster/${state.cluster}/probe`, 'after-s1'])).code === 0,
      15_000,
      () => 'etcd does not take writes on s2 and s3',
    )
    const read = await etcdctl(survivors, ['get', '--print-value-only', `/xcluster/${state.cluster}/probe`])
    assert.equal(read.out.trim(), 'after-s1')

    // The admin VIP: on exactly one survivor.
    await waitUntil(
      () => vipHolders(SURVIVORS).length === 1,
      15_000,
      () => `VIP holders among s2, s3: ${vipHolders(SURVIVORS).join(', ') || 'none'}`,
    )
    console.log(`# s1 lost: the admin VIP on ${vipHolders(SURVIVORS)[0]} after ${Date.now() - lostAt} ms`)

    // DHCP: a survivor leads and answers a real client.
    await waitUntil(
      async () => SURVIVORS.includes((await dhcpLeader()) ?? ''),
      20_000,
      () => 'no surviving DHCP leader',
    )
    const leader = (await dhcpLeader()) as string
    const busybox = requireTool('busybox', 'busybox')
    const out = join(dir, 'c1.ip')
    const script = join(dir, 'udhcpc.sh')
    writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && echo $ip $serverid > ${out}\nexit 0\n`)
    chmodSync(script, 0o755)
    execFileSync('ip', ['netns', 'exec', findHost(state, 'c1').netns, busybox, 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script], {stdio: 'ignore'})
    const [ip, server] = readFileSync(out, 'utf8').trim().split(' ')
    assert.match(ip ?? '', /^10\.0\.0\.(5[1-9]|6\d|70)$/)
    assert.equal(server, CORE_IPS[leader], `answered by ${server}, the leader is ${leader}`)

    // The operator's commands work without s1, and do not wait on its dead machine (the etcd
    // client sends calls to members whose connection is up: test/etcd/member-gate.test.ts).
    let started = Date.now()
    const nodes = ok(await admin(['node', 'list', '--json']), 'node list').json<{name: string; state: string}[]>()
    assert.ok(nodes.some((n) => n.name === 's2' && n.state === 'ready'))
    const nodeListMs = Date.now() - started
    started = Date.now()
    ok(await admin(['status', '--json']), 'status')
    console.log(`# s1 lost: node list ${nodeListMs} ms, status ${Date.now() - started} ms (status waits out s1's ${1500} ms member probe)`)
  })

  it('s1 boots again and rejoins by itself: a healthy three-member etcd, serve campaigning, the VIP on one core node', {timeout: 180_000}, async () => {
    await bootS1()
    const all = Object.values(CORE_IPS).map((ip) => `https://${ip}:2379`)
    await waitUntil(
      async () => {
        const health = await etcdctl(all, ['endpoint', 'health'])
        return health.code === 0 && (health.out.match(/is healthy/g) ?? []).length === 3
      },
      60_000,
      () => 'etcd did not become healthy with s1 back',
    )
    await waitUntil(
      async () => (await onNode('s1', 'systemctl is-active --quiet etcd-member xcluster-serve keepalived')).code === 0,
      60_000,
      () => "s1's units are not active",
    )
    await waitUntil(
      async () => {
        const elections = (await admin(['election', 'list', '--json'])).json<{service: string; candidates: string[]}[]>()
        return elections.find((e) => e.service === 'dhcp')?.candidates.includes('s1') ?? false
      },
      30_000,
      () => 's1 does not campaign for dhcp again',
    )
    await waitUntil(
      () => vipHolders(['s1', 's2', 's3']).length === 1,
      15_000,
      () => `VIP holders: ${vipHolders(['s1', 's2', 's3']).join(', ') || 'none'}`,
    )
  })
})
