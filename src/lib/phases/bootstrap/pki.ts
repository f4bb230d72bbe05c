import {existsSync, readFileSync} from 'node:fs'

import type {BootstrapContext} from '../../bootstrap/context.js'
import {adminClusterKeyPath, nodeClusterKeyPath} from '../../bootstrap/cluster-key.js'
import {nodeTlsFiles} from '../../certs/paths.js'
import {settings} from '../../settings.js'
import type {Phase} from '../../tasks/phase.js'
import type {NodeHost} from '../context.js'
import {ensureFile} from '../ensure-file.js'
import {installNodeTls, nodeTlsState} from '../node-tls.js'
import {provisionedHosts} from './hosts.js'

/**
 * A core node's credentials: the cluster CA, its etcd member's peer and server certificates, its
 * serve daemon's client certificate, the cluster secret (core nodes may issue certificates) and
 * the cluster's SSH key (core nodes reach the others with it). The CA is created on the first
 * run and kept in etcd, sealed. Certificates already on the node are kept while they come from
 * this CA, name the node and its address, and have more than the renewal window left; so a
 * re-run changes nothing. No private key appears in the plan, a log or --json: only paths.
 */
export const pkiPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'pki',
  title: "Cluster CA and the core nodes' certificates, secret and SSH key",
  hosts: provisionedHosts,
  async run(ctx, host) {
    const ca = await ctx.ca(ctx.role === 'admin')
    const ssh = await ctx.ssh(host)
    const ip = host.ip as string
    const state = await nodeTlsState(ssh, ca, host.name, ip)
    if (state !== 'current') {
      await ctx.wet(host, `install the cluster CA and ${host.name}'s etcd peer, server and serve certificates in ${settings.certs.nodeDir}`, () => installNodeTls(ssh, ca, host.name, ip))
    }
    const secret = ctx.secret(ctx.role === 'admin')
    await ensureFile(ctx, host, ssh, {path: nodeTlsFiles.secret, content: `${secret.exportBytes().toString('base64url')}\n`, mode: 0o600})
    const keyFile = ctx.role === 'admin' ? adminClusterKeyPath(ctx.bootstrap.cluster) : nodeClusterKeyPath
    if (existsSync(keyFile)) {
      await ensureFile(ctx, host, ssh, {path: nodeClusterKeyPath, content: readFileSync(keyFile, 'utf8'), mode: 0o600})
    } else {
      // A dry run before the key exists: it would be generated, then installed.
      ctx.plan.set(host.name, [...(ctx.plan.get(host.name) ?? []), `install the cluster SSH key at ${nodeClusterKeyPath}`])
    }
  },
}
