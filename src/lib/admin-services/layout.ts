import {join} from 'node:path'

/**
 * Where everything of the admin host's services lives under one root directory. The rendered
 * configs name these paths, and the Compose bundle mounts the configs at the same paths inside
 * its containers, so one set of files serves `--native` and Compose alike.
 */
export function adminLayout(root: string) {
  const run = join(root, 'run')
  const cache = join(root, 'cache')
  const log = join(root, 'log')
  return {
    root,
    /** Rendered configs (read-only to the daemons). */
    config: join(root, 'config'),
    /** The HTTP server's document root: the boot script and the install media. */
    httpRoot: join(root, 'http'),
    /** The TFTP root: the iPXE binaries. */
    tftpRoot: join(root, 'tftp'),
    ansible: join(root, 'ansible'),
    /** The daemons' own pid files. */
    run,
    squidRun: join(run, 'squid'),
    cache,
    squidCache: join(cache, 'squid'),
    nginxCache: join(cache, 'nginx'),
    log,
    squidLog: join(log, 'squid'),
    /** --native's records of the processes it started (pid, config fingerprint). */
    state: join(root, 'state'),
  }
}

export type AdminLayout = ReturnType<typeof adminLayout>
