/**
 * The Rathole clients' configs on the core node that leads the `certs` election (src/lib/certs/
 * keeper.ts): one `rathole-client-<frontend>.toml` per serving frontend, rendered from etcd's state
 * (src/lib/frontend/render.ts), in a directory of this node's own (settings.frontend.ratholeClientDir,
 * env XCLUSTER_RATHOLE_CLIENT_DIR).
 *
 * Rathole keeps one control channel per service and drops the older one when a second client
 * connects, so the configs must live on one core node at a time: the leader writes them, and
 * removes them when it stops leading. Each file holds tokens: 0600, written whole (a temporary
 * file renamed over it) and only when its content differs, so a runner watching the directory
 * sees a complete file and no change that is none. Nothing here returns or logs a file's content.
 */
import {chmodSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {join} from 'node:path'

import {writePrivateFile} from '../certs/secret.js'
import {env, settings} from '../settings.js'
import {defaultLayout, isRatholeClientFileName, renderRatholeClients, type FrontendLayout, type FrontendState} from './render.js'

/** What an update changed, by file name: never a file's content. */
export interface RatholeClientChange {
  /** Files created or rewritten (their content differed). */
  written: string[]
  /** Files of frontends that no longer serve, and temporary files a killed write left. */
  removed: string[]
}

/** The directory this node keeps the clients' configs in. */
export const ratholeClientDir = (): string => process.env[env.ratholeClientDir] || settings.frontend.ratholeClientDir

/** A temporary file writePrivateFile leaves when it is killed between its write and its rename. */
const isLeftoverTemp = (name: string): boolean => /\.tmp-\d+$/.test(name) && isRatholeClientFileName(name.replace(/\.tmp-\d+$/, ''))

export class RatholeClientConfigs {
  constructor(
    readonly dir: string,
    private readonly layout: FrontendLayout = defaultLayout(),
  ) {}

  /**
   * Makes the directory hold exactly one client per serving frontend of `state`. Synchronous on
   * purpose: nothing else (a stop) runs between the caller's last leadership check and the writes.
   */
  update(state: FrontendState): RatholeClientChange {
    // Rendered first: a state that cannot be rendered (a service without its VIP) leaves the files as they were.
    const files = renderRatholeClients(state, this.layout, {redact: false})
    const wanted = new Set(files.map((f) => f.name))
    const written: string[] = []
    for (const file of files) {
      const path = join(this.dir, file.name)
      if (this.current(path) === file.content) {
        if ((statSync(path).mode & 0o777) !== 0o600) chmodSync(path, 0o600)
        continue
      }
      writePrivateFile(path, file.content)
      written.push(file.name)
    }
    const removed = this.remove((name) => !wanted.has(name))
    return {written, removed}
  }

  /** Removes every client config (and leftover temporary file) here: this node does not lead. */
  removeAll(): string[] {
    return this.remove(() => true)
  }

  private current(path: string): string | undefined {
    try {
      return readFileSync(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  private remove(stale: (name: string) => boolean): string[] {
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const removed = names.filter((name) => isLeftoverTemp(name) || (isRatholeClientFileName(name) && stale(name))).sort()
    for (const name of removed) rmSync(join(this.dir, name), {force: true})
    return removed
  }
}
