import {renderTemplate} from '../render/template.js'
import type {ClusterSpec} from '../spec/types.js'
import {pxeSettings} from './pxe.js'

export interface DnsmasqOptions {
  /** The interface dnsmasq listens on (the admin host's cluster interface). */
  interface: string
  /** Directory TFTP serves the iPXE binaries from. */
  tftpRoot: string
  /** DNS port; 0 turns DNS off (TFTP only). */
  port?: number
}

/**
 * dnsmasq.conf for DNS and TFTP with DHCP off (xcluster serves DHCP). DNS names: the gateway
 * (`admin`), the admin VIP (`api`) and every node with a fixed address.
 */
export function renderDnsmasqConfig(spec: ClusterSpec, options: DnsmasqOptions): string {
  const pxe = pxeSettings(spec)
  const hosts = [{name: 'admin', ip: spec.network.gateway}, {name: 'api', ip: spec.network.adminVip}, ...spec.nodes.filter((n) => n.ip).map((n) => ({name: n.name, ip: n.ip as string}))]
  return renderTemplate('dnsmasq.conf', {
    cluster: spec.cluster,
    interface: options.interface,
    port: options.port ?? 53,
    domain: spec.network.domain,
    hosts,
    tftpRoot: options.tftpRoot,
    biosBootFile: pxe.biosBootFile,
    uefiBootFile: pxe.uefiBootFile,
  })
}
