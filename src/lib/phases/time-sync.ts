import {renderTemplate} from '../render/template.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {ensureFile} from './ensure-file.js'

/** chrony syncs from the core nodes (and the bootstrap host, which serves NTP until they do). */
export const timeSyncPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'time-sync',
  title: 'Configure time sync from the core nodes',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const core = ctx.cluster.filter((n) => n.type === 'core' && n.ip && n.name !== host.name).map((n) => n.ip!)
    const servers = [...core, ctx.spec.network.gateway]
    const content = renderTemplate('node/chrony.conf', {servers, subnet: ctx.spec.network.subnet})
    if (await ensureFile(ctx, host, ssh, {path: '/etc/chrony/chrony.conf', content})) {
      await ctx.wet(host, 'restart chrony', () => ssh.systemctl('try-restart', 'chrony.service'))
    }
  },
}
