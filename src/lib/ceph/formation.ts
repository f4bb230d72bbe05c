/**
 * `ceph bootstrap` and `ceph join NODE`: forming the cluster's Ceph over SSH, as task lists
 * journaled like every node action. Everything is checked before it is changed (a re-run of a
 * finished bootstrap or join changes nothing), and every change goes through the wet gate, so
 * --dry-run prints the lines a real run executes. Keyrings and MicroCeph's join token pass from
 * node to node through the admin host's SSH connections, in memory only: never printed, logged
 * or stored in etcd.
 */
import {randomUUID} from 'node:crypto'

import {runOnNodes, type NodeActionOptions} from '../actions/node-run.js'
import type {EtcdStore} from '../etcd/store.js'
import {ExitStatus, preconditionError, usageError, XclusterError} from '../errors.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRegistry} from '../nodes/registry.js'
import {commandLine} from '../output/command-line.js'
import {connectPhase} from '../phases/connect.js'
import type {NodeHost, NodeRunContext} from '../phases/context.js'
import {ensureFile} from '../phases/ensure-file.js'
import {installPackages} from '../phases/packages.js'
import {settings} from '../settings.js'
import {readStoredSpec} from '../spec/store.js'
import type {SshHost} from '../ssh/index.js'
import {shellQuote} from '../ssh/shell.js'
import type {Phase} from '../tasks/phase.js'
import {assertRunSucceeded, type RunSummary} from '../tasks/runner.js'
import {adminCandidates} from './admin-node.js'
import {DEFAULT_CEPH_BACKEND, type CephBackend} from './cli.js'
import {
  ADMIN_KEYRING,
  adminKeyringLines,
  BOOTSTRAP_OSD_KEYRING,
  bootstrapOsdKeyringLines,
  CEPH_CONF,
  CEPH_PACKAGES,
  confFsid,
  enableLine,
  firstMonLines,
  formed,
  joiningMonLines,
  mgrKeyring,
  mgrLines,
  mgrUnit,
  microceph,
  monKeyring,
  monUnit,
  parseQuorum,
  renderCephConf,
  type CephMon,
  type CephQuorum,
  type CephQuorumJson,
} from './deploy.js'
import {readCephCluster, recordBootstrap, recordMon, type CephClusterRecord} from './membership.js'

export interface CephBootstrapOptions extends NodeActionOptions {
  /** The node to bootstrap on; default: the first ready core node (then storage node). */
  node?: string
}

/** The `--json` of `ceph bootstrap` and `ceph join`. */
export interface CephFormResult {
  node: string
  backend: CephBackend
  /** The cluster's fsid (absent in a dry run that would draw it, or before MicroCeph told it). */
  fsid?: string
  /** The monitor nodes once the run is done (or would be). */
  mons: string[]
  /** What `ceph -s` said at the end (absent in a dry run). */
  quorum?: CephQuorum
  run: RunSummary
}

/** `ceph bootstrap`: Ceph's first monitor and manager on one core or storage node. */
export async function bootstrapCeph(store: EtcdStore, options: CephBootstrapOptions): Promise<CephFormResult> {
  const {backend, nodes, record} = await readState(store)
  const name = options.node ?? record?.mons[0] ?? adminCandidates(nodes)[0]?.name
  if (name === undefined) throw preconditionError('CEPH_NO_NODE', 'No ready core or storage node to bootstrap Ceph on.', `See the nodes and their states: ${commandLine(['node', 'list'])}`)
  checkCephNode(nodes, name, '--node')
  if (record) {
    checkBackend(record, backend)
    if (record.mons[0] !== name) {
      throw new XclusterError(`Ceph is already bootstrapped (fsid ${record.fsid}, monitors ${record.mons.join(', ')}): a second bootstrap on ${name} would make a second cluster.`, {
        code: 'CEPH_ALREADY_BOOTSTRAPPED',
        exit: ExitStatus.precondition,
        suggestion: record.mons.includes(name)
          ? `${name} is a member already; see the cluster: ${commandLine(['ceph', 'status'])}`
          : `Add ${name} to the cluster instead: ${commandLine(['ceph', 'join', name])}`,
        details: {fsid: record.fsid, mons: record.mons},
      })
    }
  }
  const mons = record?.mons ?? [name]
  const plan: FormPlan = {backend, node: name, mons, record, fsid: record?.fsid}
  const phases = [connectPhase, packagesPhase(plan), identityPhase(plan), monPhase(plan), mgrPhase(plan), quorumPhase(plan), recordPhase(plan)]
  const {summary} = await runOnNodes(store, 'ceph bootstrap', [name], phases, options)
  assertRunSucceeded(summary)
  return result(plan, summary)
}

/** `ceph join NODE`: a monitor and a manager on one more core or storage node. */
export async function joinCeph(store: EtcdStore, name: string, options: NodeActionOptions): Promise<CephFormResult> {
  const {backend, nodes, record} = await readState(store)
  checkCephNode(nodes, name, 'NODE')
  if (!record) {
    throw preconditionError('CEPH_NOT_BOOTSTRAPPED', `There is no Ceph cluster to join ${name} to: Ceph was not bootstrapped.`, `Bootstrap it first: ${commandLine(['ceph', 'bootstrap'])}`)
  }
  checkBackend(record, backend)
  // The node that bootstrapped is checked by bootstrap; a joined node's join runs again as a check.
  if (record.mons[0] === name) {
    throw preconditionError(
      'CEPH_ALREADY_MEMBER',
      `${name} bootstrapped the Ceph cluster: it is a member already, with nothing to join.`,
      `Check it again with ${commandLine(['ceph', 'bootstrap'])}, or join another core or storage node: ${commandLine(['ceph', 'join', 'NODE'])}`,
      {fsid: record.fsid, mons: record.mons},
    )
  }
  const members = record.mons.filter((m) => m !== name)
  // The record's order, the node last when new: a re-run must render the same mon_host.
  const mons = record.mons.includes(name) ? record.mons : [...record.mons, name]
  const plan: FormPlan = {backend, node: name, mons, record, fsid: record.fsid, source: members[0]}
  const phases = [connectPhase, packagesPhase(plan), identityPhase(plan), monPhase(plan), mgrPhase(plan), monHostPhase(plan), quorumPhase(plan), recordPhase(plan)]
  const {summary} = await runOnNodes(store, 'ceph join', [name, ...members], phases, options)
  assertRunSucceeded(summary)
  return result(plan, summary)
}

/** What a run decided before it started, and what its phases learn (the fsid, the quorum). */
interface FormPlan {
  backend: CephBackend
  /** The node bootstrapped or joined. */
  node: string
  /** Every monitor node once done, the node included. */
  mons: string[]
  record?: CephClusterRecord
  fsid?: string
  /** join: the member the node's config and keyrings are copied from (MicroCeph: where its token is made). */
  source?: string
  quorum?: CephQuorum
}

const result = (plan: FormPlan, run: RunSummary): CephFormResult => ({
  node: plan.node,
  backend: plan.backend,
  ...(plan.fsid ? {fsid: plan.fsid} : {}),
  mons: plan.mons,
  ...(plan.quorum ? {quorum: plan.quorum} : {}),
  run,
})

export async function readState(store: EtcdStore): Promise<{backend: CephBackend; nodes: NodeRecord[]; record?: CephClusterRecord}> {
  const spec = await readStoredSpec(store)
  const record = await readCephCluster(store)
  return {backend: spec.ceph?.backend ?? DEFAULT_CEPH_BACKEND, nodes: await new NodeRegistry(store).list(), ...(record ? {record} : {})}
}

/** Ceph's monitors run on core and storage nodes that are ready; anything else is refused before any change. */
function checkCephNode(nodes: readonly NodeRecord[], name: string, what: string): void {
  const node = nodes.find((n) => n.name === name)
  if (!node) {
    throw usageError(`Unknown node ${JSON.stringify(name)} for ${what}.`, `Name one of the cluster's core or storage nodes; the nodes: ${commandLine(['node', 'list'])}`, {node: name})
  }
  if (node.type !== 'core' && node.type !== 'storage') {
    throw preconditionError(
      'CEPH_NODE_TYPE',
      `${name} is a ${node.type} node: Ceph's monitors and managers run on core and storage nodes only.`,
      `Name a core or storage node; the nodes and their types: ${commandLine(['node', 'list'])}`,
      {node: name, type: node.type},
    )
  }
  if (node.state !== 'ready') {
    throw preconditionError('NODE_NOT_READY', `${name} is ${node.state}, not ready: Ceph is formed on provisioned nodes only.`, `Provision it first: ${commandLine(['node', 'add', name])}`, {
      node: name,
      state: node.state,
    })
  }
}

export function checkBackend(record: CephClusterRecord, backend: CephBackend): void {
  if (record.backend === backend) return
  throw preconditionError(
    'CEPH_BACKEND_CHANGED',
    `The Ceph cluster was formed with ${record.backend}, but the spec's ceph.backend is now ${backend}.`,
    `Set ceph.backend back to ${record.backend} in the spec and apply it: ${commandLine(['config', 'apply'])}`,
    {recorded: record.backend, spec: backend},
  )
}

const onlyNode = (plan: FormPlan) => (ctx: NodeRunContext) => ctx.hosts.filter((h) => h.name === plan.node)

/** Monitors with their addresses on the cluster LAN (fixed or leased). */
export function monsOf(ctx: NodeRunContext, names: readonly string[]): CephMon[] {
  return names.map((name) => {
    const ip = ctx.cluster.find((n) => n.name === name)?.ip
    if (!ip) throw preconditionError('NODE_NO_ADDRESS', `${name} has no IPv4 address (fixed or leased): a Ceph monitor needs one.`, `See its record: ${commandLine(['node', 'show', name])}`)
    return {name, ip}
  })
}

const exists = async (ssh: SshHost, path: string): Promise<boolean> => (await ssh.exec(`test -s ${shellQuote(path)}`, {sudo: true})).code === 0

/** Runs each line through the wet gate, as root, bounded like a Ceph call that may wait for the monitors. */
export async function runLines(ctx: NodeRunContext, host: NodeHost, ssh: SshHost, lines: readonly string[]): Promise<void> {
  for (const line of lines) await ctx.wet(host, line, () => ssh.run(line, {sudo: true, timeoutMs: settings.ceph.formTimeoutMs}))
}

/** Enables and starts a unit unless it already is both. */
async function ensureUnit(ctx: NodeRunContext, host: NodeHost, ssh: SshHost, unit: string): Promise<void> {
  const u = shellQuote(unit)
  if ((await ssh.exec(`systemctl is-enabled --quiet ${u} && systemctl is-active --quiet ${u}`, {sudo: true})).code === 0) return
  await runLines(ctx, host, ssh, [enableLine(unit)])
}

function packagesPhase(plan: FormPlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-packages',
    title: plan.backend === 'ceph' ? `Install ${CEPH_PACKAGES.join(', ')}` : 'Install the MicroCeph snap',
    hosts: onlyNode(plan),
    async run(ctx, host) {
      if (plan.backend === 'ceph') return installPackages(ctx, host, CEPH_PACKAGES)
      const ssh = await ctx.ssh(host)
      if ((await ssh.exec('snap list microceph', {sudo: true})).code !== 0) await runLines(ctx, host, ssh, microceph.install)
    },
  }
}

/**
 * The cluster's identity on the node. Debian's Ceph: /etc/ceph/ceph.conf, and the keyrings, made
 * here on bootstrap, copied from a member on join. MicroCeph: `cluster bootstrap`, or the token
 * made on a member and `cluster join` with it.
 */
function identityPhase(plan: FormPlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-identity',
    title: plan.source ? `Join the cluster (config and keys from ${plan.source})` : 'Make the cluster: its fsid, config and keys',
    hosts: onlyNode(plan),
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const [mon] = monsOf(ctx, [plan.node])
      if (plan.backend === 'microceph') {
        if ((await ssh.exec(microceph.member, {sudo: true})).code === 0) return
        if (!plan.source) return void (await runLines(ctx, host, ssh, [microceph.bootstrap(mon!, ctx.spec.network.subnet)]))
        const sourceHost = ctx.hosts.find((h) => h.name === plan.source)!
        const sourceSsh = await ctx.ssh(sourceHost)
        // The token is a secret: it goes from the member's stdout to the node's command line, nowhere else.
        const token = await ctx.wet(sourceHost, microceph.add(plan.node), async () => (await sourceSsh.run(microceph.add(plan.node), {sudo: true})).stdout.trim())
        await ctx.wet(host, microceph.joinShown, () => ssh.run(microceph.join(token!), {sudo: true, timeoutMs: settings.ceph.formTimeoutMs}))
        return
      }
      // A bootstrap cut short keeps the fsid its ceph.conf names.
      const existing = await ssh.exec(`cat ${CEPH_CONF}`, {sudo: true})
      plan.fsid ??= (existing.code === 0 ? confFsid(existing.stdout) : undefined) ?? randomUUID()
      await ensureFile(ctx, host, ssh, {path: CEPH_CONF, content: renderCephConf(plan.fsid, monsOf(ctx, plan.mons), ctx.spec.network.subnet)})
      if (plan.source) {
        const sourceSsh = await ctx.ssh(ctx.hosts.find((h) => h.name === plan.source)!)
        for (const path of [ADMIN_KEYRING, BOOTSTRAP_OSD_KEYRING]) {
          const read = await sourceSsh.exec(`cat ${path}`, {sudo: true})
          if (read.code !== 0) {
            throw preconditionError(
              'CEPH_MEMBER_INCOMPLETE',
              `${plan.source} has no ${path}: it cannot hand the cluster's keys to ${plan.node}.`,
              `Check it with ${commandLine(['ceph', 'bootstrap'])}`,
            )
          }
          await ensureFile(ctx, host, ssh, {path, content: read.stdout, mode: 0o600})
        }
        return
      }
      if (!(await exists(ssh, ADMIN_KEYRING))) await runLines(ctx, host, ssh, adminKeyringLines())
      if (!(await exists(ssh, BOOTSTRAP_OSD_KEYRING))) await runLines(ctx, host, ssh, bootstrapOsdKeyringLines())
    },
  }
}

function monPhase(plan: FormPlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-mon',
    title: `Start the monitor mon.${plan.node}`,
    hosts: onlyNode(plan),
    // MicroCeph runs its own monitor (cluster bootstrap / join did it).
    shouldRun: () => plan.backend === 'ceph',
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      if (!(await exists(ssh, monKeyring(plan.node)))) {
        // On --resume the identity phase may have run in the attempt before: its ceph.conf names the fsid.
        plan.fsid ??= confFsid((await ssh.run(`cat ${CEPH_CONF}`, {sudo: true})).stdout)
        await runLines(ctx, host, ssh, plan.source ? joiningMonLines(plan.node) : firstMonLines(monsOf(ctx, [plan.node])[0]!, plan.fsid!))
      }
      await ensureUnit(ctx, host, ssh, monUnit(plan.node))
    },
  }
}

function mgrPhase(plan: FormPlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-mgr',
    title: `Start the manager mgr.${plan.node}`,
    hosts: onlyNode(plan),
    shouldRun: () => plan.backend === 'ceph',
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      if (!(await exists(ssh, mgrKeyring(plan.node)))) await runLines(ctx, host, ssh, mgrLines(plan.node))
      await ensureUnit(ctx, host, ssh, mgrUnit(plan.node))
    },
  }
}

/** join: every member's ceph.conf names every monitor, the new one included. */
function monHostPhase(plan: FormPlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-mon-host',
    title: "Name every monitor in each member's ceph.conf",
    hosts: (ctx) => ctx.hosts.filter((h) => h.name !== plan.node),
    shouldRun: () => plan.backend === 'ceph',
    async run(ctx, host) {
      await ensureFile(ctx, host, await ctx.ssh(host), {path: CEPH_CONF, content: renderCephConf(plan.fsid!, monsOf(ctx, plan.mons), ctx.spec.network.subnet)})
    },
  }
}

/** Waits until `ceph -s` on the node shows every monitor in quorum and an active manager. */
function quorumPhase(plan: FormPlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-quorum',
    title: `Wait for monitors ${plan.mons.join(', ')} in quorum, and their managers`,
    hosts: onlyNode(plan),
    readOnly: true,
    async run(ctx, host) {
      // A dry run installed nothing: there is no Ceph to ask yet.
      if (ctx.dryRun) return
      const quorum = await waitForQuorum(ctx, host, plan.mons, `See the monitors' logs there (journalctl -u ${monUnit(plan.node)}), then run the same command again: what is done stays done.`)
      plan.quorum = quorum
      plan.fsid ??= quorum.fsid
    },
  }
}

/**
 * Asks `ceph -s` on the host until exactly these monitors are in quorum with a manager active
 * and one standing by beside each other monitor (`formed`), up to settings.ceph.formTimeoutMs;
 * then fails with CEPH_NOT_FORMED and `suggestion`. Shared by bootstrap, join and leave.
 */
export async function waitForQuorum(ctx: NodeRunContext, host: NodeHost, mons: readonly string[], suggestion: string): Promise<CephQuorum> {
  const cli = await ctx.ceph(host)
  const deadline = Date.now() + settings.ceph.formTimeoutMs
  let last = 'no answer yet'
  for (;;) {
    const res = await cli.exec({tool: 'ceph', args: ['-s', '--format', 'json']})
    if (res.code === 0) {
      const quorum = parseQuorum(JSON.parse(res.stdout) as CephQuorumJson)
      if (formed(quorum, mons)) return quorum
      last = `in quorum: ${quorum.quorum.join(', ') || 'none'} of ${quorum.mons} monitor(s); manager ${quorum.mgrAvailable ? 'active' : 'not active'}`
    } else {
      last = (res.stderr || res.stdout).trim().split('\n').pop() ?? `exit ${res.code}`
    }
    ctx.note(host, last)
    if (Date.now() > deadline) {
      throw new XclusterError(`Ceph's monitors ${mons.join(', ')} did not form a quorum with their managers within ${settings.ceph.formTimeoutMs / 1000} s (asked on ${host.name}): ${last}.`, {
        code: 'CEPH_NOT_FORMED',
        exit: ExitStatus.failure,
        suggestion,
      })
    }
    await new Promise((r) => setTimeout(r, settings.ceph.formPollMs))
  }
}

/** The cluster in etcd: created by the bootstrap (create-only), a monitor added by each join. */
function recordPhase(plan: FormPlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-record',
    title: 'Record the Ceph cluster in etcd',
    hosts: onlyNode(plan),
    async run(ctx, host) {
      if (plan.record?.mons.includes(plan.node)) return
      if (plan.source) {
        await ctx.wet(host, `record ${plan.node} as a Ceph monitor in etcd`, () => recordMon(ctx.store, plan.node))
        return
      }
      await ctx.wet(host, `record the Ceph cluster in etcd (${plan.backend}, its fsid, monitor ${plan.node})`, async () => {
        if (!(await recordBootstrap(ctx.store, plan.backend, plan.fsid!, plan.node))) {
          throw preconditionError('CEPH_ALREADY_BOOTSTRAPPED', 'Another bootstrap recorded a Ceph cluster while this one ran.', `See which: ${commandLine(['ceph', 'status'])}`)
        }
      })
    },
  }
}

/** The end of a bootstrap's or join's report: the cluster as ceph -s saw it. */
export function describeFormed(result: CephFormResult): string[] {
  if (!result.quorum) return []
  const q = result.quorum
  return [`Ceph ${result.fsid ?? q.fsid}: monitors ${q.quorum.join(', ')} in quorum; manager ${q.mgrAvailable ? 'active' : 'not active'}, ${q.mgrStandbys} standby.`]
}
