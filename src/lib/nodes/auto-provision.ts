import {addNodes} from '../actions/node-add.js'
import {settlesWithin} from '../clock.js'
import {MintedAdmin} from '../certs/minted-admin.js'
import {leaderFence} from '../election/fence.js'
import type {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import {readStoredSpec} from '../spec/store.js'
import type {EnlistmentRecord} from './enlistment.js'
import {transitionNode} from './lifecycle.js'
import type {NodeRecord} from './record.js'
import {NodeRegistry} from './registry.js'

export interface AutoProvisionerOptions {
  /** The cluster as this node's serve identity: it reads everything, writes nothing here. */
  store: EtcdStore
  /** This node's name: who the runs are by. */
  node: string
  /** The cluster secret (core nodes only): opens the CA, which mints the operator identity. */
  secretPath: string
  /** The cluster's SSH key (core nodes only), authorized on every node. */
  sshKeyPath: string
  log: (event: string, details: Record<string, unknown>) => void
  pollMs?: number
  /** Where the runs write as the operator (default: an identity minted from the CA). */
  adminStore?: () => Promise<EtcdStore>
}

/**
 * The cluster provisioning its own nodes (spec `autoProvision: true`), as the elected
 * `provision` service of `xcluster serve --provision` on the core nodes: while it leads, a
 * registered node that has enlisted is claimed and put through `node add`, with its enlisted host
 * keys pinned, from this core node with the cluster's SSH key, as the operator identity minted for
 * the run from the CA (the serve identity may not write nodes or pins).
 *
 * The claim (`registered` → `provisioning`) is one transaction fenced by the leader's token: a
 * deposed leader claims nothing, and a node claimed once is never claimed again (only a
 * `registered` node is), so two leaders never provision the same node. A run that leadership ends
 * midway goes on to its end; a node it leaves `failed` or `provisioning` (serve stopped) is the
 * operator's to finish with `xcluster node add NAME`.
 */
export class AutoProvisioner {
  private token?: string
  private running?: Promise<void>
  private timer?: NodeJS.Timeout
  private readonly admin: MintedAdmin

  constructor(private readonly options: AutoProvisionerOptions) {
    this.admin = new MintedAdmin(options.store, options.secretPath)
  }

  start(token: string): void {
    this.token = token
    this.schedule(0)
  }

  /** Stops claiming at once; a run in flight goes on (see the class comment). */
  stop(): void {
    this.token = undefined
    clearTimeout(this.timer)
  }

  /**
   * Serve's shutdown: stops claiming and gives a run in flight a moment to end (bounded: serve's
   * stop budget is fixed), then forgets the minted identity. A run cut short leaves its nodes
   * `provisioning`, for `node add` to finish.
   */
  async close(): Promise<void> {
    this.stop()
    await settlesWithin(this.running ?? Promise.resolve(), settings.election.shutdownCleanupMs)
    await this.admin.close()
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer)
    if (this.token === undefined) return
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => this.schedule(this.options.pollMs ?? settings.enlistment.autoProvisionPollMs))
    }, ms)
    this.timer.unref()
  }

  private async tick(): Promise<void> {
    const token = this.token
    if (token === undefined) return
    try {
      const spec = await readStoredSpec(this.options.store)
      if (!spec.autoProvision) return
      const waiting = await this.enlistedAndRegistered()
      if (waiting.length === 0) return
      const admin = await (this.options.adminStore ?? (() => this.admin.store()))()
      const claimed: string[] = []
      for (const node of waiting) {
        if (this.token !== token) break
        try {
          await transitionNode(admin, node.name, 'provisioning', {
            from: ['registered'],
            by: `xcluster-provision@${this.options.node}`,
            reason: 'enlisted: provisioned by the cluster (autoProvision)',
            fence: leaderFence(this.options.store.keys, settings.enlistment.provisionService, token),
          })
          claimed.push(node.name)
        } catch (err) {
          this.options.log('provision-claim-refused', {node: node.name, error: String((err as Error)?.message ?? err)})
        }
      }
      if (claimed.length === 0) return
      this.options.log('provisioning', {nodes: claimed, token})
      try {
        const result = await addNodes(admin, {
          names: claimed,
          provision: true,
          dryRun: false,
          concurrency: settings.enlistment.autoProvisionConcurrency,
          progress: 'silent',
          args: ['node', 'add', ...claimed],
          keyPath: this.options.sshKeyPath,
          acceptNewHostKey: false,
        })
        this.options.log('provisioned', {nodes: claimed, run: result.run?.runId})
      } catch (err) {
        this.options.log('provision-failed', {nodes: claimed, error: String((err as Error)?.message ?? err)})
      }
    } catch (err) {
      this.options.log('provision-step-failed', {error: String((err as Error)?.message ?? err)})
    }
  }

  /**
   * Registered nodes (never provisioned) whose MAC has enlisted: two prefix reads a tick, however
   * many nodes enlisted over the cluster's life (enlistments stay until the node is removed).
   */
  private async enlistedAndRegistered(): Promise<NodeRecord[]> {
    const store = this.options.store
    const registered = (await new NodeRegistry(store).list()).filter((n) => n.state === 'registered')
    if (registered.length === 0) return []
    const enlisted = new Set((await store.listJson<EnlistmentRecord>(store.keys.enlistedPrefix())).map((r) => r.value.mac))
    return registered.filter((n) => enlisted.has(n.mac))
  }
}
