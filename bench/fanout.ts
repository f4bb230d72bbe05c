/**
 * The same 5-step task list (write a file, read it back, check a package, run a command, remove
 * the file) on 20 lab hosts, by xcluster's task engine and by an Ansible playbook with forks: 20,
 * in the same run against the same hosts, with host keys pinned on both sides.
 *
 *   sudo npx tsx bench/fanout.ts [rounds]      (brings up `lab --nodes 20` if the lab is smaller)
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {readLabState, type LabState} from '../src/lib/lab/state.js'
import {HostPool, type SshTarget} from '../src/lib/ssh/index.js'
import {RunContext} from '../src/lib/tasks/context.js'
import type {Phase, TaskHost} from '../src/lib/tasks/phase.js'
import {runPhases} from '../src/lib/tasks/runner.js'

const HOSTS = 20
const rounds = Number(process.argv[2] ?? 3)
const root = join(import.meta.dirname, '..')
const inAdmin = process.env.XCLUSTER_BENCH_IN_ADMIN === '1'

function labWithHosts(): LabState {
  let state: LabState | undefined
  try {
    state = readLabState()
  } catch {
    // no lab yet
  }
  if (!state || state.hosts.filter((h) => h.kind === 'node' && h.ip).length < HOSTS) {
    console.error(`bringing up a lab with ${HOSTS} extra compute nodes...`)
    execFileSync(process.execPath, [join(root, 'bin', 'run.js'), 'lab', 'up', '--nodes', String(HOSTS)], {stdio: 'inherit'})
    state = readLabState()
  }
  return state
}

if (!inAdmin) {
  // Nodes are reachable only from the admin namespace: re-run this script there.
  labWithHosts()
  const r = spawnSync('ip', ['netns', 'exec', 'xc-admin', process.execPath, '--import', 'tsx', import.meta.filename, String(rounds)], {
    stdio: 'inherit',
    env: {...process.env, XCLUSTER_BENCH_IN_ADMIN: '1'},
  })
  process.exit(r.status ?? 1)
}

const state = readLabState()
const nodes = state.hosts.filter((h) => h.kind === 'node' && h.ip && h.hostKeyFingerprint).slice(0, HOSTS)
type BenchHost = TaskHost & {target: SshTarget}
const hosts: BenchHost[] = nodes.map((n) => ({
  name: n.name,
  target: {name: n.name, address: n.ip!, user: 'root', privateKeyPath: state.sshKey, hostKey: {pinned: [n.hostKeyFingerprint!]}},
}))

async function xclusterRun(): Promise<number> {
  const pool = new HostPool()
  const step = (id: string, fn: (h: BenchHost) => Promise<unknown>): Phase<BenchHost> => ({id, title: id, run: async (_c, h) => void (await fn(h))})
  const ssh = (h: BenchHost) => pool.get(h.target)
  const phases = [
    step('write', async (h) => (await ssh(h)).upload('xcluster fanout bench\n', '/tmp/xc-fanout', {mode: 0o644})),
    step('read', async (h) => (await ssh(h)).run('cat /tmp/xc-fanout')),
    step('package', async (h) => (await ssh(h)).run('dpkg-query -W openssh-server')),
    step('command', async (h) => (await ssh(h)).run('uname -r')),
    step('remove', async (h) => (await ssh(h)).run('rm -f /tmp/xc-fanout')),
  ]
  const t0 = performance.now()
  const summary = await runPhases(phases, new RunContext(hosts, false), {action: 'bench', args: [], progress: 'silent', concurrency: HOSTS})
  const ms = performance.now() - t0
  await pool.closeAll()
  if (summary.result !== 'succeeded') throw new Error(`xcluster run failed: ${JSON.stringify(summary.hosts.filter((h) => h.failure))}`)
  return ms
}

const work = mkdtempSync(join(tmpdir(), 'xc-fanout-'))
const inventory = join(work, 'hosts.ini')
writeFileSync(
  inventory,
  [
    '[all]',
    ...nodes.map((n) => `${n.name} ansible_host=${n.ip}`),
    '[all:vars]',
    'ansible_user=root',
    `ansible_ssh_private_key_file=${state.sshKey}`,
    `ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile=${join(state.dir, 'known_hosts')} -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=60s -o ControlPath=${work}/cm-%h'`,
    '',
  ].join('\n'),
)

function ansibleRun(): number {
  const t0 = performance.now()
  const r = spawnSync('ansible-playbook', ['-i', inventory, join(root, 'bench', 'fanout', 'playbook.yml')], {
    encoding: 'utf8',
    env: {...process.env, ANSIBLE_CONFIG: join(root, 'bench', 'fanout', 'ansible.cfg')},
  })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`ansible-playbook failed:\n${r.stdout}\n${r.stderr}`)
  return ms
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const xc: number[] = []
const an: number[] = []
await xclusterRun() // warm-up: first connections, page cache
ansibleRun()
for (let i = 0; i < rounds; i++) {
  xc.push(await xclusterRun())
  an.push(ansibleRun())
}
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0).padStart(6)} ms  (${xs.map((x) => x.toFixed(0)).join(', ')})`
console.log(`5-step task list on ${hosts.length} lab hosts, ${rounds} rounds each, alternating`)
console.log(`xcluster (task engine, pooled SSH)   ${fmt(xc)}`)
console.log(`ansible-playbook (forks 20, pipelining, ControlPersist)   ${fmt(an)}`)
const ratio = median(an) / median(xc)
console.log(`ratio ansible/xcluster: ${ratio.toFixed(1)}x   goal >= 5x -> ${ratio >= 5 ? 'met' : 'NOT met'}`)
