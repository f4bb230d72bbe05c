import {Document, isCollection, isMap, isScalar, isSeq} from 'yaml'

import {typeFromName} from './node-type.js'
import type {ClusterSpec, IpRange} from './types.js'

const rangeText = (r: IpRange): string => `${r.start}-${r.end}`

/**
 * A validated spec back in the file's own form (ranges as FIRST-LAST, `type:` only where the
 * name does not imply it), so `config show > xcluster.yaml` can be applied again unchanged.
 */
export function specToYaml(spec: ClusterSpec): string {
  const {ranges, ...network} = spec.network
  const document = {
    cluster: spec.cluster,
    network: {...network, ranges: Object.fromEntries(Object.entries(ranges).map(([name, r]) => [name, rangeText(r)]))},
    ssh: spec.ssh,
    nodes: spec.nodes.map((n) => ({
      name: n.name,
      mac: n.mac,
      ...(n.ip === undefined ? {} : {ip: n.ip}),
      ...(typeFromName(n.name) === n.type ? {} : {type: n.type}),
    })),
    ...(spec.pxe ? {pxe: spec.pxe} : {}),
    ...(spec.packages ? {packages: spec.packages} : {}),
    ...(spec.services?.length ? {services: spec.services} : {}),
    ...(spec.autoProvision ? {autoProvision: true} : {}),
    ...(spec.ceph ? {ceph: spec.ceph} : {}),
  }
  // Flow style for each node and the dns list keeps one node per line, as in the example.
  const doc = new Document(document)
  const nodes = doc.get('nodes', true)
  for (const item of isSeq(nodes) ? nodes.items : []) {
    if (!isMap(item)) continue
    item.flow = true
    // Quoted: YAML 1.1 readers take an all-digit MAC like 12:34:56:00:00:00 for a number.
    const mac = item.get('mac', true)
    if (isScalar(mac)) mac.type = 'QUOTE_DOUBLE'
  }
  const dns = doc.getIn(['network', 'dns'], true)
  if (isCollection(dns)) dns.flow = true
  return doc.toString()
}
