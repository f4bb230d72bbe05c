import {createServer, type Server} from 'node:net'

import {preconditionError} from '../errors.js'

/**
 * One campaign per (node, service) on a host: two would each take the other's candidate key and
 * instances for a dead predecessor's, and clean them up. Each lock is an abstract Unix socket
 * (Linux): bound while the process lives, released by the kernel the moment it dies, however it
 * dies, so a serve restarted after a crash never waits for a stale lock.
 */
export async function lockCampaigns(scopePrefix: string, services: string[]): Promise<{release(): Promise<void>}> {
  const servers: Server[] = []
  const release = () => Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined)
  try {
    for (const service of services) servers.push(await bind(`\0xcluster-serve:${scopePrefix}:${service}`, scopePrefix, service))
  } catch (err) {
    await release()
    throw err
  }
  return {release}
}

async function bind(name: string, scopePrefix: string, service: string): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(
          preconditionError(
            'SERVE_ALREADY_RUNNING',
            `Another xcluster serve on this host already campaigns for "${service}" as this node (${scopePrefix}).`,
            'Stop it first (systemctl stop xcluster-serve), or give this one another --node.',
          ),
        )
      } else reject(err)
    })
    server.listen({path: name}, () => resolve())
  })
  server.unref()
  return server
}
