import {writeFileSync} from 'node:fs'

import {startNativeServices} from '../admin-services/index.js'
import {packageSettings} from '../admin-services/packages.js'

import {BootstrapContext, type BootstrapRole} from '../bootstrap/context.js'
import {nodeClusterKeyPath} from '../bootstrap/cluster-key.js'
import {bootstrapPlan} from '../bootstrap/plan.js'
import {trustBundle} from '../certs/authority.js'
import {loadCa} from '../certs/store.js'
import {issueClientCertificate} from '../certs/cluster-pki.js'
import {identity} from '../certs/identities.js'
import {nodeTlsFiles} from '../certs/paths.js'
import {readClusterSecret, writePrivateFile} from '../certs/secret.js'
import {contextConnection, readOperatorContext} from '../etcd/operator-context.js'
import {EtcdStore} from '../etcd/store.js'
import {ExitStatus, XclusterError} from '../errors.js'
import type {NodeRecord} from '../nodes/record.js'
import {connectPhase} from '../phases/connect.js'
import {adminServicesPhase, packageCachePhase} from '../phases/bootstrap/admin-services.js'
import {clusterKeyPhase} from '../phases/bootstrap/cluster-key.js'
import {etcdJoinPhase, etcdSeedPhase} from '../phases/bootstrap/etcd-member.js'
import {handOverPhase, migrateStatePhase} from '../phases/bootstrap/hand-over.js'
import {coreHosts, corePart, provisionedHosts} from '../phases/bootstrap/hosts.js'
import {pkiPhase} from '../phases/bootstrap/pki.js'
import {RELEASE_INSTALL_PHASES} from './release-install.js'
import {buildRelease} from '../release/bundle.js'
import {ReleaseDeployment} from '../release/deployment.js'
import {dnsTftpPhase, keepalivedPhase, serveUnitPhase} from '../phases/bootstrap/services.js'
import type {NodeHost, NodeRunContext} from '../phases/context.js'
import {agentConfigPhase} from '../phases/agent-config.js'
import {identityPhase} from '../phases/identity.js'
import {servicesPhase} from '../phases/services.js'
import {markReadyPhase, markStatePhase} from '../phases/mark-state.js'
import {packageProxyPhase} from '../phases/package-proxy.js'
import {packagesPhase} from '../phases/packages.js'
import {preflightPhase} from '../phases/preflight.js'
import {timeSyncPhase} from '../phases/time-sync.js'
import {settings} from '../settings.js'
import {applyPlan, planApply} from '../spec/apply.js'
import {loadSpecFile} from '../spec/parse.js'
import {readStoredSpec} from '../spec/store.js'
import type {ClusterSpec} from '../spec/types.js'
import {HostPool} from '../ssh/index.js'
import {RunJournal} from '../tasks/journal.js'
import type {Phase} from '../tasks/phase.js'
import {runPhases, type ProgressMode, type RunSummary} from '../tasks/runner.js'
import {nodeHosts} from './node-run.js'

type BootstrapPhase = Phase<NodeHost, BootstrapContext>

/** A node-action phase, run on the hosts the bootstrap provisions at this point (the seed first). */
const provisioning = (phase: Phase<NodeHost, NodeRunContext>): BootstrapPhase => ({...phase, hosts: (ctx) => provisionedHosts(ctx)}) as BootstrapPhase
const onCore = (phase: Phase<NodeHost, NodeRunContext>): BootstrapPhase => ({...phase, hosts: (ctx) => coreHosts(ctx as BootstrapContext)}) as BootstrapPhase

/**
 * `xcluster bootstrap`, in order. The admin host runs it up to the hand-over (its services, every
 * core node checked and given the cluster key, the seed provisioned, etcd formed there and the
 * state moved in); the seed runs the rest (its peers provisioned and joined, the services). Each
 * step checks before it changes, so a re-run reports no changes.
 */
export const BOOTSTRAP_PHASES: BootstrapPhase[] = [
  onCore(connectPhase),
  onCore(
    preflightPhase('preflight', (ctx) => ({
      debian: settings.preflight.debian,
      freeMiB: settings.bootstrap.minFreeMiB,
      paths: ['/', '/var/lib'],
      ports: [settings.etcdMember.clientPort, settings.etcdMember.peerPort].map((port) => ({port, ownUnit: 'etcd-member.service'})),
      // The admin host's cache is started by this run, after the checks: only its route is checked.
      cacheNotYetStarted: (ctx as BootstrapContext).role === 'admin' && packageSettings(ctx.spec).adminCache,
    })),
  ),
  // Nothing changes anywhere (not even on the admin host) until every core node passed its checks.
  clusterKeyPhase,
  adminServicesPhase,
  provisioning(markStatePhase('mark-provisioning', 'Mark the core nodes provisioning', ['registered', 'discovered', 'failed', 'drained'], 'provisioning')),
  provisioning(identityPhase),
  provisioning(packageProxyPhase),
  provisioning(packagesPhase),
  provisioning(timeSyncPhase),
  provisioning(agentConfigPhase),
  provisioning(servicesPhase),
  // Node.js and xcluster itself, checksummed: the seed carries the run on with them.
  ...RELEASE_INSTALL_PHASES.map((phase) => ({...phase, hosts: (ctx: BootstrapContext) => provisionedHosts(ctx)}) as unknown as BootstrapPhase),
  pkiPhase,
  etcdSeedPhase,
  migrateStatePhase,
  handOverPhase,
  etcdJoinPhase,
  serveUnitPhase,
  keepalivedPhase,
  dnsTftpPhase,
  packageCachePhase,
  {...onCore(markReadyPhase), shouldRun: corePart},
]

export interface BootstrapRequest {
  /** The admin host's run: the spec file. */
  specFile?: string
  /** The seed's run: the admin host's run to carry on. */
  continueRun?: string
  resume?: string
  native: boolean
  dryRun: boolean
  acceptNewHostKey: boolean
  keyPath?: string
  concurrency: number
  progress: ProgressMode
  args: string[]
}

export interface BootstrapResult {
  cluster: string
  role: BootstrapRole
  /** The cluster's etcd endpoints (what every command uses from now on). */
  endpoints: string[]
  run: RunSummary
}

/**
 * The admin host's bootstrap from the spec file. `adminStore` is the etcd the state starts in
 * (the admin host's); a cluster this host bootstrapped before is checked instead (its state lives
 * in its own etcd now), so a re-run reports what differs from the spec, normally nothing.
 */
export async function bootstrapCluster(adminStore: EtcdStore, request: BootstrapRequest): Promise<BootstrapResult> {
  const spec = loadSpecFile(request.specFile ?? settings.specFile)
  const plan = bootstrapPlan(spec)
  const context = readOperatorContext(spec.cluster)
  let store = adminStore
  let clusterStore: EtcdStore | undefined
  if (context) {
    clusterStore = new EtcdStore(contextConnection(context))
    if (await clusterStore.getJson(clusterStore.keys.spec()).then(Boolean, () => false)) store = clusterStore
  }
  try {
    // The admin host's own checks (its programs, its ports) come before anything is written.
    if (request.native) await startNativeServices(spec, {dryRun: true})
    const pending = await applySpec(store, spec, request.dryRun)
    return await runBootstrap(store, spec, plan, 'admin', request, {keyPath: request.keyPath ?? spec.ssh.key, acceptNewHostKey: request.acceptNewHostKey}, pending)
  } finally {
    await clusterStore?.close()
  }
}

/**
 * The seed carrying the admin host's run on (`bootstrap --continue RUN`): it reads the spec from
 * the cluster's etcd with its serve identity, mints itself the operator's role from the CA it
 * holds, and reaches its peers with the cluster key. Leaves a summary for the admin host.
 */
export async function continueBootstrap(serveStore: EtcdStore, request: BootstrapRequest): Promise<BootstrapResult> {
  const spec = await readStoredSpec(serveStore)
  const plan = bootstrapPlan(spec)
  const ca = await loadCa(serveStore, readClusterSecret(nodeTlsFiles.secret))
  const admin = await issueClientCertificate(ca, identity.admin, settings.certs.rootClientDays)
  const dir = `${settings.election.runDir}/bootstrap-${process.pid}`
  const files = {ca: `${dir}/ca.crt`, cert: `${dir}/admin.crt`, key: `${dir}/admin.key`}
  writePrivateFile(files.ca, trustBundle(ca))
  writePrivateFile(files.cert, admin.certPem)
  writePrivateFile(files.key, admin.key.exportPem())
  const store = new EtcdStore({endpoints: plan.endpoints, cluster: plan.cluster, ...files})
  let result: BootstrapResult | undefined
  try {
    result = await runBootstrap(store, spec, plan, 'core', {...request, resume: request.continueRun}, {keyPath: nodeClusterKeyPath, acceptNewHostKey: false}, [])
    return result
  } finally {
    await store.close()
    const {rmSync} = await import('node:fs')
    rmSync(dir, {recursive: true, force: true})
    writeSummary(result?.run)
  }
}

function writeSummary(run: RunSummary | undefined): void {
  try {
    writeFileSync(settings.bootstrap.continuationSummary, JSON.stringify(run ?? {result: 'failed', hosts: [], plan: {}}))
  } catch {
    // The admin host then reports the unit's log instead.
  }
}

/** The spec into the starting etcd (bootstrap -f is config apply first); in a dry run, the nodes it would register. */
async function applySpec(store: EtcdStore, spec: ClusterSpec, dryRun: boolean): Promise<NodeRecord[]> {
  const plan = await planApply(store, spec)
  if (!plan.changed) return []
  if (!dryRun) {
    await applyPlan(store, plan)
    return []
  }
  const now = new Date().toISOString()
  return plan.add.map((a) => ({name: a.name, type: a.type, mac: a.mac, ...(a.ip ? {ip: a.ip} : {}), state: 'registered' as const, createdAt: now, updatedAt: now}))
}

async function runBootstrap(
  store: EtcdStore,
  spec: ClusterSpec,
  plan: ReturnType<typeof bootstrapPlan>,
  role: BootstrapRole,
  request: BootstrapRequest,
  access: {keyPath: string; acceptNewHostKey: boolean},
  pending: NodeRecord[],
): Promise<BootstrapResult> {
  const {hosts, cluster} = await nodeHosts(
    store,
    spec,
    plan.core.map((n) => n.name),
    {...access, lanInterface: settings.lanInterface},
    pending,
  )
  const pool = new HostPool()
  const ctx = new BootstrapContext(hosts, request.dryRun, store, spec, cluster, pool, plan, {role, native: request.native, specFile: request.specFile})
  // The admin host builds it from its installed package; the seed from the release it runs (the same one).
  ctx.release = new ReleaseDeployment(await buildRelease())
  const journal = new RunJournal(store)
  ctx.journal = journal
  try {
    const run = await runPhases(BOOTSTRAP_PHASES, ctx, {
      action: 'bootstrap',
      args: request.args,
      concurrency: request.concurrency,
      progress: request.progress,
      journal,
      resume: request.resume,
      onRecord: (id) => (ctx.runId = id),
    })
    return {cluster: spec.cluster, role, endpoints: plan.endpoints, run}
  } finally {
    await pool.closeAll()
    await ctx.close()
  }
}

/** A run of the seed that did not fully succeed, for the admin host's error. */
export const continuationFailed = (summary: RunSummary): XclusterError =>
  new XclusterError(`bootstrap on the seed ${summary.result}.`, {code: 'BOOTSTRAP_CONTINUATION_FAILED', exit: ExitStatus.partial, details: summary})
