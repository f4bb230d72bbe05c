import {preconditionError} from '../errors.js'
import {settings} from '../settings.js'
import {parseKeyValueLines} from '../ssh/index.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {packageProxyUrl} from './package-proxy.js'

/** What a node must be before anything is changed on it. */
export interface PreflightRequirements {
  /** Debian release (VERSION_ID) the node must run. */
  debian?: string
  /** Free MiB needed on the filesystems of these paths. */
  freeMiB?: number
  paths?: string[]
  /** TCP ports that must be free unless the named unit (ours) already listens on them. */
  ports?: {port: number; ownUnit: string}[]
  /** The package cache is started by this very run (bootstrap's dry run): only the route to it can be checked. */
  cacheNotYetStarted?: boolean
}

/** The architecture name `uname -m` prints for this process's Node.js build. */
export const unameArch = (arch: string = process.arch): string => ({x64: 'x86_64', arm64: 'aarch64'})[arch] ?? arch

/**
 * Checks a node before any change: a supported OS under systemd, the architecture of the runtime
 * xcluster ships, free disk, the package cache reachable over IPv4 (apt would otherwise fail
 * deep inside an install), and the ports its services need. Every problem found on a host is
 * reported at once, with the fix; nothing is changed, so it runs in --dry-run too.
 */
export function preflightPhase(id: string, requirements: (ctx: NodeRunContext, host: NodeHost) => PreflightRequirements): Phase<NodeHost, NodeRunContext> {
  return {
    id,
    title: 'Check the nodes before changing them',
    readOnly: true,
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const need = requirements(ctx, host)
      const problems: string[] = []
      const fixes: string[] = []
      const probe = await ssh.run(
        [
          '. /etc/os-release 2>/dev/null; echo "os=$ID $VERSION_ID"',
          'echo "arch=$(uname -m)"',
          'echo "systemd=$(systemctl is-system-running 2>/dev/null || true)"',
          ...(need.paths ?? []).map((p) => `echo "free ${p}=$(df -Pm ${p} 2>/dev/null | awk 'NR==2 {print $4}')"`),
        ].join('; '),
        {sudo: true},
      )
      const facts = parseKeyValueLines(probe.stdout)
      const [os, version] = (facts.os ?? '').split(' ')
      if (os !== 'debian' || (need.debian && version !== need.debian)) {
        problems.push(`it runs ${facts.os?.trim() || 'an unknown OS'}, not Debian ${need.debian ?? ''}`.trim())
        fixes.push(`install Debian ${need.debian ?? ''} on ${host.name}`.replace('  ', ' '))
      }
      if (facts.arch !== unameArch()) {
        problems.push(`its architecture is ${facts.arch}; xcluster's runtime is built for ${unameArch()}`)
        fixes.push(`use ${unameArch()} machines (or run bootstrap from a ${facts.arch} admin host)`)
      }
      if (!['running', 'degraded', 'starting'].includes(facts.systemd ?? '')) {
        problems.push(`systemd is not running as its init (state: ${facts.systemd || 'none'})`)
        fixes.push('boot it with systemd')
      }
      for (const path of need.paths ?? []) {
        const free = Number(facts[`free ${path}`])
        if (need.freeMiB && Number.isFinite(free) && free < need.freeMiB) {
          problems.push(`${path} has ${free} MiB free, ${need.freeMiB} MiB are needed`)
          fixes.push(`free space on ${host.name}:${path}`)
        }
      }
      const proxy = packageProxyUrl(ctx.spec, host.node.type)
      if (proxy) {
        const {hostname, port} = new URL(proxy)
        const listening = need.cacheNotYetStarted ? '' : ` && timeout 3 bash -c '</dev/tcp/${hostname}/${port || 80}' 2>/dev/null`
        const route = await ssh.exec(`ip -4 route get ${hostname} >/dev/null 2>&1${listening}`, {sudo: true})
        if (route.code !== 0) {
          problems.push(`it cannot reach the package cache at ${proxy} over IPv4 (no route, or nothing answers on port ${port || 80})`)
          fixes.push(`give ${host.name} an IPv4 address and route to ${hostname} (check its network and that the cache runs there), or set packages.proxy in xcluster.yaml`)
        }
      }
      for (const {port, ownUnit} of need.ports ?? []) {
        const busy = await ssh.exec(`ss -Hltn 'sport = :${port}' | grep -q . && ! systemctl is-active --quiet ${ownUnit}`, {sudo: true})
        if (busy.code === 0) {
          problems.push(`TCP port ${port} is taken by something other than ${ownUnit}`)
          fixes.push(`stop what listens on ${host.name}:${port} (ss -ltnp 'sport = :${port}')`)
        }
      }
      if (problems.length > 0) {
        throw preconditionError('PREFLIGHT_FAILED', `${host.name} is not ready: ${problems.join('; ')}.`, `${fixes.join('; ')}; then run the command again.`, {host: host.name, problems})
      }
    },
  }
}

/** What every provisioned node needs (node add, bootstrap). */
export const nodePreflight = preflightPhase('preflight', () => ({debian: settings.preflight.debian, freeMiB: settings.preflight.minFreeMiB, paths: ['/']}))
