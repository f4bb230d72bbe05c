import type {BootstrapContext} from '../../bootstrap/context.js'
import {ensureAdminClusterKey} from '../../bootstrap/cluster-key.js'
import {shellQuote} from '../../ssh/index.js'
import type {Phase} from '../../tasks/phase.js'
import type {NodeHost} from '../context.js'
import {adminPart, coreHosts} from './hosts.js'

/**
 * Authorizes the cluster's SSH key on every core node, from the admin host (with the operator's
 * key and the pins just taken), so the seed can carry the bootstrap on without the laptop.
 * Appends to authorized_keys only when the key is missing: the operator's own key stays.
 */
export const clusterKeyPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'cluster-key',
  title: 'Authorize the cluster SSH key on the core nodes',
  hosts: coreHosts,
  shouldRun: adminPart,
  // The first change of a bootstrap: only once every core node passed its checks.
  requiresAll: true,
  async run(ctx, host) {
    const key = await ensureAdminClusterKey(ctx.bootstrap.cluster, ctx.dryRun)
    const ssh = await ctx.ssh(host)
    const home = (await ssh.run('printf %s "$HOME"')).stdout
    const file = `${home}/.ssh/authorized_keys`
    const present = key ? (await ssh.exec(`grep -qxF ${shellQuote(key.publicKey)} ${shellQuote(file)}`)).code === 0 : false
    if (present) return
    await ctx.wet(host, `authorize the cluster SSH key in ${file}`, async () => {
      await ssh.run(`umask 077; mkdir -p ${shellQuote(`${home}/.ssh`)} && printf '%s\\n' ${shellQuote(key!.publicKey)} >> ${shellQuote(file)}`)
    })
  },
}
