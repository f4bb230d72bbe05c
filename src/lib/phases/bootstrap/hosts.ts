import type {BootstrapContext} from '../../bootstrap/context.js'
import type {NodeHost} from '../context.js'

/**
 * Phase host selectors for a bootstrap. The run has two parts: the admin host's (it reaches every
 * core node with the operator's key, provisions the seed and forms the cluster there) and the
 * seed's (it provisions its peers with the cluster key and deploys the services). Checkpoints are
 * per (phase, host), so a provisioning phase lists every core node: on the admin host only the
 * seed, and the seed's own entry is already done when the seed resumes the run for its peers. A
 * dry run on the admin host plans both parts: it changes nothing, so nothing needs handing over.
 */
export const coreHosts = (ctx: BootstrapContext): NodeHost[] => ctx.hosts
export const seedHost = (ctx: BootstrapContext): NodeHost[] => [ctx.seed]
export const peerHosts = (ctx: BootstrapContext): NodeHost[] => ctx.hosts.filter((h) => h.name !== ctx.bootstrap.seed.name)
export const provisionedHosts = (ctx: BootstrapContext): NodeHost[] => (ctx.role === 'admin' && !ctx.dryRun ? [ctx.seed] : ctx.hosts)

/** Phases only the admin host runs (its bootstrap services, the move of the state, the hand-over). */
export const adminPart = (ctx: BootstrapContext): boolean => ctx.role === 'admin'
/** Phases only the seed runs when it carries the bootstrap on (planned by the admin host's dry run). */
export const corePart = (ctx: BootstrapContext): boolean => ctx.role === 'core' || ctx.dryRun
