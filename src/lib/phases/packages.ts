import {ROLES} from '../nodes/roles.js'
import {settings} from '../settings.js'
import {shellQuote} from '../ssh/index.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/** Installs the role's packages that are missing (nothing when all are present). */
export const packagesPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'packages',
  title: 'Install role packages',
  async run(ctx, host) {
    await installPackages(ctx, host, ROLES[host.node.type].packages)
  },
}

/** Installs those of `packages` the node lacks (its facts from the connect phase), through the wet gate. */
export async function installPackages(ctx: NodeRunContext, host: NodeHost, packages: readonly string[]): Promise<void> {
  const installed = ctx.factsOf(host).packages
  const missing = packages.filter((p) => !installed.has(p))
  if (missing.length === 0) return
  const ssh = await ctx.ssh(host)
  const list = missing.map(shellQuote).join(' ')
  await ctx.wet(host, `install ${missing.join(' ')}`, async () => {
    // `dpkg --configure -a` first: an install cut off by a lost connection is finished, not wedged.
    // policy-rc.d keeps packages from starting their services with Debian's defaults (etcd on
    // localhost, an open Squid, a Ceph monitor without a cluster): xcluster configures each one,
    // then starts it.
    const noStart = '/usr/sbin/policy-rc.d'
    await ssh.run(
      `trap 'rm -f ${noStart}' EXIT; printf '#!/bin/sh\nexit 101\n' > ${noStart} && chmod 755 ${noStart} && dpkg --configure -a && apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends ${list}`,
      {
        sudo: true,
        env: {DEBIAN_FRONTEND: 'noninteractive'},
        timeoutMs: settings.packageInstallTimeoutMs,
      },
    )
    for (const p of missing) installed.add(p)
  })
}
