import {renderTemplate} from '../render/template.js'
import {parseCidr} from '../spec/ipv4.js'
import type {ClusterSpec} from '../spec/types.js'
import {settings} from '../settings.js'

export interface KeepalivedOptions {
  /** The node this config is for: a core node of the spec. */
  node: string
  /** The interface carrying the cluster subnet on that node. */
  interface?: string
  /** Exit 0 while the local admin services are healthy. */
  trackScript?: string
  /** Defaults to the spec's admin VIP. */
  vip?: string
  instance?: string
  routerId?: number
  /** Seconds between VRRP adverts; below 1 needs VRRPv3, which is then used. */
  advertInt?: number
}

/**
 * Priorities by node: the spec's core nodes in order get 150, 140, 130, ...; so the VIP rests on
 * the first healthy core node and returns to it (VRRP preemption) once it is healthy again.
 */
export function vrrpPriority(spec: ClusterSpec, node: string): number {
  const core = spec.nodes.filter((n) => n.type === 'core').map((n) => n.name)
  const index = core.indexOf(node)
  if (index < 0) throw new Error(`node "${node}" is not a core node of the spec (core: ${core.join(', ')})`)
  return settings.keepalived.topPriority - index * settings.keepalived.priorityStep
}

/** keepalived.conf for one core node, from templates/keepalived.conf. */
export function renderKeepalivedConfig(spec: ClusterSpec, options: KeepalivedOptions): string {
  const subnet = parseCidr(spec.network.subnet)
  if (!subnet) throw new Error(`the spec's subnet ${spec.network.subnet} is not a CIDR`)
  return renderTemplate('keepalived.conf', {
    node: options.node,
    interface: options.interface ?? settings.keepalived.interface,
    trackScript: options.trackScript ?? settings.keepalived.trackScript,
    vip: options.vip ?? spec.network.adminVip,
    prefixLength: subnet.prefix,
    instance: options.instance ?? 'admin_vip',
    routerId: options.routerId ?? settings.keepalived.routerId,
    priority: vrrpPriority(spec, options.node),
    advertInt: options.advertInt ?? settings.keepalived.advertIntSeconds,
    vrrpVersion: (options.advertInt ?? settings.keepalived.advertIntSeconds) < 1 ? 3 : 2,
  })
}
