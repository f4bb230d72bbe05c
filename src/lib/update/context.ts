import type {EtcdStore} from '../etcd/store.js'
import type {InventoryAccess} from '../inventory/index.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRunContext, type NodeHost} from '../phases/context.js'
import type {ClusterSpec} from '../spec/types.js'
import type {HostKeyStore, HostPool} from '../ssh/index.js'
import type {UpdateBatch} from './plan.js'
import type {PlaybookOutcome} from './playbook.js'

/** What a rolling update's phases share besides a node action's state. */
export interface UpdateSettings {
  /** Batches in the order they run (names only: the checks are made again before each). */
  batches: string[][]
  playbook: string
  /** The xcluster CLI the inventory plugin runs. */
  executable: string
  access: InventoryAccess
}

/** The state of one `xcluster update` run. */
export class UpdateRunContext extends NodeRunContext {
  /** The run's id once its record exists (for the reason on a node it leaves drained). */
  runId?: string
  /** Per batch index: the checks made right before it drains (one per batch, shared by its hosts). */
  readonly batchChecks = new Map<number, Promise<UpdateBatch>>()
  /** Per node: the elections it campaigned in before its drain, which it must rejoin after. */
  readonly candidacies = new Map<string, string[]>()
  /** Per batch index: its playbook run (one per batch, shared by its hosts). */
  readonly playbookRuns = new Map<number, Promise<PlaybookOutcome>>()
  /** Where the inventory is exported for Ansible (made on the first playbook run, removed after the run). */
  workspaceDir?: string
  /** Nodes this run brought back to ready. */
  readonly updated = new Set<string>()

  constructor(
    hosts: NodeHost[],
    dryRun: boolean,
    store: EtcdStore,
    spec: ClusterSpec,
    cluster: NodeRecord[],
    pool: HostPool,
    hostKeys: HostKeyStore,
    readonly update: UpdateSettings,
  ) {
    super(hosts, dryRun, store, spec, cluster, pool, hostKeys)
    // Leaderships move to no node of the same batch.
    for (const batch of update.batches) for (const name of batch) this.drainedTogether.set(name, batch)
  }

  batchOf(node: string): number {
    return this.update.batches.findIndex((b) => b.includes(node))
  }

  /** Why the run holds a node drained, kept on its record. */
  reason(what = 'rolling update'): string {
    return `${what} (xcluster update${this.runId ? `, run ${this.runId}` : ''})`
  }
}
