/**
 * Wall time from `lab up` to a ready six-node cluster, with the time of each phase, beside
 * ansible-playbook doing the steps that have a plain Ansible form (hostname and /etc/hosts, the
 * apt proxy, the core role's packages, chrony, Node.js and the release) on the same kind of fresh
 * nodes, with the same files and archives, measured in the same run.
 *
 *   sudo npx tsx bench/bootstrap.ts          (replaces a running lab; installs ansible-core if missing)
 *
 * 1. xcluster: `lab up`, `bootstrap --native` of s1-s3, the DHCP leases of s4, c1 and f1, their
 *    `node add`. Phase times come from the run's own journal (`runs show ID --json`).
 * 2. Ansible: a fresh `lab up` (bare nodes again), then bench/bootstrap/playbook.yml on s1-s3,
 *    timed per task by bench/bootstrap/callback_plugins/task_timing.py.
 * Both fetch packages through the lab's warm Squid (xcluster through the admin host's cache in
 * front of it); the lab is left up, bootstrapped by nobody, for the next run.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {RELEASE_INSTALL_PHASES} from '../src/lib/actions/release-install.js'
import {ensureHostPackages} from '../src/lib/lab/packages.js'
import {labPaths} from '../src/lib/lab/paths.js'
import {readLabState, type LabState} from '../src/lib/lab/state.js'
import {ROLES} from '../src/lib/nodes/roles.js'
import {buildRelease} from '../src/lib/release/bundle.js'
import {renderTemplate} from '../src/lib/render/template.js'
import {settings} from '../src/lib/settings.js'
import {phaseTimings, type PhaseTiming, type RunShown} from '../src/lib/tasks/journal.js'

const root = join(import.meta.dirname, '..')
const CORE = ['s1', 's2', 's3']
const UNADDRESSED = ['s4', 'c1', 'f1']

const cli = (args: string[], options: {quiet?: boolean} = {}): string =>
  execFileSync(process.execPath, [join(root, 'bin', 'run.js'), ...args], {encoding: 'utf8', stdio: ['ignore', 'pipe', options.quiet ? 'pipe' : 'inherit'], maxBuffer: 64 * 1024 * 1024})
/** An xcluster command on the lab's admin host (its environment: the lab's etcd, then the operator context). */
const onAdmin = (args: string[]): string => cli(['lab', 'exec', 'admin', '--', 'sh', '-c', `xcluster ${args.join(' ')}`])
const timed = <T>(fn: () => T): {value: T; ms: number} => {
  const t0 = performance.now()
  const value = fn()
  return {value, ms: performance.now() - t0}
}
const seconds = (ms: number | undefined): string => (ms === undefined ? '—' : (ms / 1000).toFixed(1))

function freshLab(): {state: LabState; ms: number} {
  cli(['lab', 'down', '--yes'], {quiet: true})
  const up = timed(() => cli(['lab', 'up'], {quiet: true}))
  return {state: readLabState(), ms: up.ms}
}

function runTimings(runId: string): PhaseTiming[] {
  const shown = JSON.parse(onAdmin(['runs', 'show', runId, '--json'])) as RunShown
  return phaseTimings(shown.record, shown.steps)
}

await ensureHostPackages(['ansible-core'])
execFileSync('npm', ['run', 'build'], {cwd: root, stdio: 'ignore'})

// 1. xcluster, from lab up to six ready nodes.
console.error('xcluster: lab up, bootstrap, node add...')
const labA = freshLab()
const bootstrap = timed(() => JSON.parse(onAdmin(['bootstrap', '-f', '"$XCLUSTER_LAB_DIR/xcluster.yaml"', '--native', '--accept-new-host-key', '--json'])) as {run: {runId: string}})
const leases = timed(() => {
  for (let i = 0; i < 60; i++) {
    const held = JSON.parse(onAdmin(['dhcp', 'leases', '--json'])) as {node?: string; expired?: boolean}[]
    if (UNADDRESSED.every((n) => held.some((l) => l.node === n && !l.expired))) return
    // systemd-networkd backs off while nobody answered (before bootstrap): ask again now.
    for (const n of UNADDRESSED) cli(['lab', 'exec', n, '--', 'systemctl', 'restart', 'systemd-networkd'], {quiet: true})
    execFileSync('sleep', ['2'])
  }
  throw new Error(`no cluster DHCP leases for ${UNADDRESSED.join(' ')}`)
})
const nodeAdd = timed(() => JSON.parse(onAdmin(['node', 'add', ...UNADDRESSED, '--accept-new-host-key', '--json'])) as {run: {runId: string}})
const nodes = JSON.parse(onAdmin(['node', 'list', '--json'])) as {name: string; state: string}[]
const ready = nodes.filter((n) => n.state === 'ready').map((n) => n.name)
if (ready.length !== 6) throw new Error(`not six ready nodes: ${JSON.stringify(nodes)}`)
const bootstrapPhases = runTimings(bootstrap.value.run.runId)
const nodeAddPhases = runTimings(nodeAdd.value.run.runId)
const release = await buildRelease({packageRoot: root})

// 2. Ansible on fresh bare nodes: the steps that have a plain Ansible form.
console.error('ansible-playbook: lab up, playbook on s1-s3...')
const labB = freshLab()
const work = mkdtempSync(join(tmpdir(), 'xc-bench-bootstrap-'))
const spec = {domain: 'cluster.lan', adminVip: '10.0.0.254'}
const core = labB.state.hosts.filter((h) => CORE.includes(h.name))
const peers = labB.state.hosts.filter((h) => h.kind === 'node' && h.ip).map((h) => ({name: h.name, ip: h.ip}))
const hostVars = Object.fromEntries(
  core.map((h) => {
    const vars = {name: h.name, domain: spec.domain, adminVip: spec.adminVip, peers}
    return [
      h.name,
      {
        ansible_host: h.ip,
        xc_hostname_file: renderTemplate('node/hostname', vars),
        xc_hosts_file: renderTemplate('node/hosts', vars),
        xc_apt_proxy: renderTemplate('node/apt-proxy.conf', {proxyUrl: `http://${labB.state.adminIp}:${settings.lab.upstreamProxyPort}`}),
        xc_chrony_conf: renderTemplate('node/chrony.conf', {servers: [...core.filter((c) => c.name !== h.name).map((c) => c.ip), labB.state.adminIp], subnet: '10.0.0.0/24'}),
      },
    ]
  }),
)
const inventory = join(work, 'inventory.yml')
writeFileSync(
  inventory,
  JSON.stringify({
    core: {
      hosts: hostVars,
      vars: {
        ansible_user: 'root',
        ansible_ssh_private_key_file: labB.state.sshKey,
        ansible_ssh_common_args: `-F /dev/null -o UserKnownHostsFile=${labPaths(labB.state.dir).knownHosts} -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=120s -o ControlPath=${work}/cm-%h`,
        xc_packages: ROLES.core.packages,
        xc_runtime_gz: release.runtime.archive.path,
        xc_release_tgz: release.archive.path,
      },
    },
  }),
)
const playbook = timed(() =>
  spawnSync('ip', ['netns', 'exec', 'xc-admin', 'ansible-playbook', '-i', inventory, join(root, 'bench', 'bootstrap', 'playbook.yml')], {
    encoding: 'utf8',
    cwd: join(root, 'bench', 'bootstrap'),
    env: {...process.env, ANSIBLE_CONFIG: join(root, 'bench', 'bootstrap', 'ansible.cfg'), ANSIBLE_LOCAL_TEMP: join(work, 'tmp')},
  }),
)
const lines = playbook.value.stdout
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as {task?: string; ms?: number; failed?: unknown})
const failed = lines.filter((l) => l.failed)
if (playbook.value.status !== 0 || failed.length > 0) throw new Error(`ansible-playbook failed:\n${playbook.value.stdout}\n${playbook.value.stderr}`)
const ansibleByPhase = new Map<string, number>()
for (const l of lines) if (l.task) ansibleByPhase.set(l.task.split(':')[0], (ansibleByPhase.get(l.task.split(':')[0]) ?? 0) + (l.ms ?? 0))

// The report: xcluster's phases in order, with Ansible's time for the same step where it has one.
const releasePhases = new Set(RELEASE_INSTALL_PHASES.map((p) => p.id))
const rows: [string, string, string, string][] = [['lab up', seconds(labA.ms), '—', 'both: seven bare machines (Ansible gets its own fresh lab)']]
let releaseMs = 0
// Ansible ran each step on s1-s3 at once: its time stands beside the step's first row (s1).
const shown = new Set<string>()
const ansibleOnce = (step: string): string => {
  if (shown.has(step)) return 'above'
  shown.add(step)
  return seconds(ansibleByPhase.get(step))
}
for (const t of bootstrapPhases) {
  if (releasePhases.has(t.phase)) {
    releaseMs += t.tookMs
    if (t.phase !== 'release-prune') continue
    rows.push(['  release-install (5 phases)', seconds(releaseMs), ansibleOnce('release-install'), t.hosts.join(' ')])
    releaseMs = 0
    continue
  }
  rows.push([`  ${t.phase}`, seconds(t.tookMs), ansibleByPhase.has(t.phase) ? ansibleOnce(t.phase) : '—', t.hosts.join(' ')])
}
rows.push(['bootstrap (wall)', seconds(bootstrap.ms), seconds(playbook.ms), 'Ansible: only the steps above that have a value'])
rows.push(['DHCP leases of s4 c1 f1', seconds(leases.ms), '—', ''])
for (const t of nodeAddPhases) rows.push([`  node add: ${t.phase}`, seconds(t.tookMs), '—', t.hosts.join(' ')])
rows.push(['node add (wall)', seconds(nodeAdd.ms), '—', ''])
const total = labA.ms + bootstrap.ms + leases.ms + nodeAdd.ms
rows.push(['lab up → 6 ready nodes', seconds(total), '—', ready.join(' ')])

const ansibleSteps = [...ansibleByPhase.keys()]
const xclusterSame = bootstrapPhases.filter((t) => ansibleSteps.includes(t.phase) || releasePhases.has(t.phase)).reduce((sum, t) => sum + t.tookMs, 0)
const ansibleSame = [...ansibleByPhase.values()].reduce((a, b) => a + b, 0)

const width = Math.max(...rows.map((r) => r[0].length))
console.log(`${'step'.padEnd(width)}  ${'xcluster s'.padStart(10)}  ${'ansible s'.padStart(10)}  hosts / note`)
for (const [step, xc, an, note] of rows) console.log(`${step.padEnd(width)}  ${xc.padStart(10)}  ${an.padStart(10)}  ${note}`)
console.log(`\nthe same steps (${ansibleSteps.join(', ')}) on s1-s3: xcluster ${seconds(xclusterSame)} s (s1 first, then s2 and s3), ansible-playbook ${seconds(ansibleSame)} s (all three at once)`)
