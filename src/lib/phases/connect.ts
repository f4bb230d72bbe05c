import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/**
 * Connects to each host (its key checked against the pin before authenticating) and gathers the
 * facts later phases decide from. Read-only, so it also runs in --dry-run and on --resume; a
 * newly accepted key is pinned through the wet gate.
 */
export const connectPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'connect',
  title: 'Connect and gather facts',
  readOnly: true,
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    if (ssh.hostKey.decision === 'accepted-new') {
      const fingerprint = ssh.hostKey.fingerprint
      await ctx.wet(host, `pin host key ${fingerprint}`, () => ctx.hostKeys.pin(host.name, fingerprint, 'accept-new'))
    }
    const res = await ssh.run(`hostname; dpkg-query -W -f='\${Package} \${db:Status-Status}\\n'`)
    const [hostname, ...rows] = res.stdout.trim().split('\n')
    const packages = new Set(
      rows
        .map((r) => r.split(' '))
        .filter(([, s]) => s === 'installed')
        .map(([p]) => p),
    )
    ctx.facts.set(host.name, {hostname, packages})
  },
}
