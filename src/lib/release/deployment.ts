import {usageError} from '../errors.js'
import {settings} from '../settings.js'
import type {SshHost} from '../ssh/index.js'
import type {RunContext} from '../tasks/context.js'
import type {Phase, TaskHost} from '../tasks/phase.js'
import type {ReleaseBundle} from './bundle.js'
import {installLayout, type InstallLayout} from './layout.js'
import type {NodeListing} from './remote.js'

/** What the preflight found on a host; the install phases decide from it and update it as they change things. */
export interface HostReleaseState {
  machine: string
  libc: string
  freeBytes: number
  /** `damaged`: there, but its checksum (or, for a release, its marker or a file) is not the bundle's. */
  runtime: 'installed' | 'absent' | 'damaged'
  release: 'installed' | 'absent' | 'damaged'
  /** The release `current` points at (its id), if any. */
  current?: string
  /** Where `libexec` points, if it is a link. */
  libexec?: string
}

export interface ReleaseDeploymentOptions {
  /** Install root on the nodes: / (default) on a real node, a directory for tests. */
  root?: string
  /** Releases kept per node, `current` included (default settings.release.keep). */
  keep?: number
}

/**
 * One release going to a set of hosts in one run: the bundle (built once, see buildRelease), where
 * it goes, and what each host has. A run's context carries one (ReleaseRunContext.release).
 */
export class ReleaseDeployment {
  readonly layout: InstallLayout
  readonly keep: number
  private readonly states = new Map<string, HostReleaseState>()

  constructor(
    readonly bundle: ReleaseBundle,
    options: ReleaseDeploymentOptions = {},
  ) {
    this.layout = installLayout(options.root ?? '/')
    this.keep = options.keep ?? settings.release.keep
    if (!Number.isInteger(this.keep) || this.keep < 1) throw usageError(`Invalid number of releases to keep: ${this.keep}.`, 'Keep at least 1 (the current release).')
  }

  setState(host: TaskHost, state: HostReleaseState): void {
    this.states.set(host.name, state)
  }

  stateOf(host: TaskHost): HostReleaseState {
    const state = this.states.get(host.name)
    if (!state) throw new Error(`no release state for ${host.name}: the release-preflight phase must run first`)
    return state
  }
}

/**
 * What the release phases need from an action's context: a connection per host and the
 * deployment. NodeRunContext (src/lib/phases/context.ts) has `ssh()`; an action adds `release`.
 */
export interface ReleaseRunContext<H extends TaskHost = TaskHost> extends RunContext<H> {
  ssh(host: H): Promise<SshHost>
  readonly release: ReleaseDeployment
}

/**
 * A release phase runs on every host of its action, whatever the action's host type: it has no
 * `hosts()` filter (which would tie it to one host type), so it fits any action's phase list
 * whose context is a ReleaseRunContext.
 */
export type ReleasePhase = Omit<Phase<TaskHost, ReleaseRunContext>, 'hosts'>

export interface PrunePlan {
  releases: string[]
  runtimes: string[]
  stale: string[]
}

/**
 * Which releases and runtimes to remove: the newest `keep` releases stay (by the time each was
 * installed), always including the bundle's (current once activated) and whatever `current`
 * points at; runtimes stay while a kept release uses them.
 */
export function planPrune(listing: NodeListing, bundle: Pick<ReleaseBundle, 'id'> & {runtime: {dir: string}}, keep: number, current = listing.current): PrunePlan {
  const releases = [...listing.releases]
  if (!releases.some((r) => r.id === bundle.id)) releases.push({id: bundle.id, installedAt: Number.POSITIVE_INFINITY, runtime: bundle.runtime.dir})
  releases.sort((a, b) => b.installedAt - a.installedAt || (a.id < b.id ? 1 : -1))
  const kept = new Set([bundle.id, ...(current ? [current] : [])])
  for (const release of releases) if (kept.size < keep) kept.add(release.id)
  const usedRuntimes = new Set([bundle.runtime.dir, ...releases.filter((r) => kept.has(r.id) && r.runtime).map((r) => r.runtime!)])
  return {
    releases: releases.filter((r) => !kept.has(r.id)).map((r) => r.id),
    runtimes: listing.runtimes.filter((r) => !usedRuntimes.has(r)),
    stale: listing.stale,
  }
}
