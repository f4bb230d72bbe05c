import {type ReleaseBundle} from '../release/bundle.js'
import {ReleaseDeployment, type ReleaseDeploymentOptions, type ReleaseRunContext} from '../release/deployment.js'
import {releaseActivatePhase} from '../phases/release-activate.js'
import {releaseInstallPhase} from '../phases/release-install.js'
import {releasePreflightPhase} from '../phases/release-preflight.js'
import {releasePrunePhase} from '../phases/release-prune.js'
import {runtimeInstallPhase} from '../phases/runtime-install.js'
import {HostPool, type SshHost, type SshTarget} from '../ssh/index.js'
import {RunContext} from '../tasks/context.js'
import type {TaskHost} from '../tasks/phase.js'
import {runPhases, type ProgressMode, type RunSummary} from '../tasks/runner.js'

/** What getting xcluster onto a node does, in order. Another action lists these among its own. */
export const RELEASE_INSTALL_PHASES = [releasePreflightPhase, runtimeInstallPhase, releaseInstallPhase, releaseActivatePhase, releasePrunePhase]

/** A host to install on: a name and how to reach it (its key pinned). */
export interface ReleaseTarget extends TaskHost {
  target: SshTarget
}

/** The context of a run of the release phases alone: pooled connections and the deployment. */
export class ReleaseInstallContext extends RunContext<ReleaseTarget> implements ReleaseRunContext<ReleaseTarget> {
  constructor(
    hosts: ReleaseTarget[],
    dryRun: boolean,
    readonly pool: HostPool,
    readonly release: ReleaseDeployment,
  ) {
    super(hosts, dryRun)
  }

  ssh(host: ReleaseTarget): Promise<SshHost> {
    return this.pool.get(host.target)
  }
}

export interface ReleaseInstallRequest extends ReleaseDeploymentOptions {
  hosts: ReleaseTarget[]
  /** Built once for the run (buildRelease) and shared by every host. */
  bundle: ReleaseBundle
  dryRun?: boolean
  progress?: ProgressMode
  concurrency?: number
  /** Connections to reuse (the caller closes them); otherwise a pool is opened and closed here. */
  pool?: HostPool
}

/**
 * Installs one release on hosts over SSH, in parallel: runtime, release, `current`, wrapper,
 * pruning. Hosts that fail are reported in the summary (assertRunSucceeded turns that into the
 * operator's error); the others go on.
 */
export async function installRelease(request: ReleaseInstallRequest): Promise<{summary: RunSummary; context: ReleaseInstallContext}> {
  const pool = request.pool ?? new HostPool()
  const deployment = new ReleaseDeployment(request.bundle, {root: request.root, keep: request.keep})
  const context = new ReleaseInstallContext(request.hosts, request.dryRun ?? false, pool, deployment)
  try {
    const summary = await runPhases(RELEASE_INSTALL_PHASES, context, {
      action: 'release install',
      args: request.hosts.map((h) => h.name),
      progress: request.progress ?? 'silent',
      ...(request.concurrency ? {concurrency: request.concurrency} : {}),
    })
    return {summary, context}
  } finally {
    if (!request.pool) await pool.closeAll()
  }
}
