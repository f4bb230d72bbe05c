import {preconditionError, usageError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import type {ClusterSpec, ServiceSpec} from '../spec/types.js'
import {Campaign, type CampaignLog, type CampaignStatus} from './campaign.js'
import {instanceScope} from './instance.js'
import type {InProcessService} from './service-runner.js'

/** The services named by `--elect`, checked against the spec and this node. */
export function resolveServices(spec: ClusterSpec, names: string[], node: string): ServiceSpec[] {
  const declared = spec.services ?? []
  return [...new Set(names)].map((name) => {
    const service = declared.find((s) => s.name === name)
    if (!service) {
      const known = declared.map((s) => s.name)
      throw usageError(
        `Service "${name}" is not in the cluster spec.`,
        known.length > 0 ? `Use one of: ${known.join(', ')}; or add it under services: and run config apply.` : 'Add it under services: in xcluster.yaml and run xcluster config apply.',
      )
    }
    if (service.nodes && !service.nodes.includes(node)) {
      throw preconditionError(
        'NODE_NOT_ELIGIBLE',
        `Node "${node}" may not run service "${name}" (nodes: ${service.nodes.join(', ')}).`,
        `Run serve on one of ${service.nodes.join(', ')}, or pass --node.`,
      )
    }
    return service
  })
}

/**
 * The election daemon behind `xcluster serve --elect`: one campaign per service. Other daemons
 * (DHCP) hang off the same `serve` process and may use `campaign(name)` to guard their writes.
 */
export class ElectionDaemon {
  readonly campaigns: Campaign[]

  /** `inProcess` services run inside this process instead of their start/stop commands. */
  constructor(
    store: EtcdStore,
    readonly node: string,
    services: ServiceSpec[],
    log: (service: string) => CampaignLog,
    inProcess: Record<string, InProcessService> = {},
  ) {
    const scope = instanceScope(store.connection, node)
    this.campaigns = services.map((s) => new Campaign(store, s, node, scope, log(s.name), inProcess[s.name]))
  }

  start(): void {
    for (const c of this.campaigns) c.start()
  }

  campaign(service: string): Campaign | undefined {
    return this.campaigns.find((c) => c.service.name === service)
  }

  status(): CampaignStatus[] {
    return this.campaigns.map((c) => c.status())
  }

  /** Resigns every service at once (SIGTERM): peers take over without waiting for a TTL. */
  async stop(reason: string): Promise<void> {
    await Promise.all(this.campaigns.map((c) => c.shutdown(reason)))
  }
}
