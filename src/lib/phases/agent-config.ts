import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {ensureFile} from './ensure-file.js'

/** /etc/xcluster/agent.yaml: who the node is and where the cluster's etcd lives. */
export const agentConfigPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'agent-config',
  title: 'Write the xcluster agent config',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    // The cluster's etcd speaks TLS only (bootstrap): its members are the core nodes.
    const etcdEndpoints = ctx.cluster
      .filter((n) => n.type === 'core' && n.ip)
      .map((n) => `"https://${n.ip}:${settings.etcdClientPort}"`)
      .join(', ')
    const content = renderTemplate('node/agent.yaml', {
      cluster: ctx.spec.cluster,
      name: host.name,
      type: host.node.type,
      mac: host.node.mac,
      ip: host.ip ?? '~',
      etcdEndpoints,
      adminVip: ctx.spec.network.adminVip,
    })
    await ensureFile(ctx, host, ssh, {path: '/etc/xcluster/agent.yaml', content, mode: 0o640})
  },
}
