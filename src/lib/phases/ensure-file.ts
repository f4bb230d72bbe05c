import {posix} from 'node:path'

import type {SshHost} from '../ssh/index.js'
import {shellQuote} from '../ssh/index.js'
import type {RunContext} from '../tasks/context.js'
import type {TaskHost} from '../tasks/phase.js'

export interface FileSpec {
  path: string
  content: string
  mode?: number
  owner?: string
  group?: string
}

/**
 * Makes a remote file have exactly this content, mode and owner: checks first and writes (through
 * the wet gate) only when something differs. Returns whether it changed (or would change) the file.
 */
export async function ensureFile(ctx: RunContext, host: TaskHost, ssh: SshHost, file: FileSpec): Promise<boolean> {
  const mode = file.mode ?? 0o644
  const owner = file.owner ?? 'root'
  const group = file.group ?? 'root'
  const q = shellQuote(file.path)
  const probe = await ssh.exec(`stat -c '%a %U %G' ${q} && cat ${q}`, {sudo: true})
  if (probe.code === 0) {
    const newline = probe.stdout.indexOf('\n')
    const [m, u, g] = probe.stdout.slice(0, newline).split(' ')
    const current = probe.stdout.slice(newline + 1)
    if (current === file.content && Number.parseInt(m, 8) === mode && u === owner && g === group) return false
  }
  const what = probe.code === 0 ? `update ${file.path}` : `create ${file.path}`
  await ctx.wet(host, what, async () => {
    if (probe.code !== 0) await ssh.run(`mkdir -p ${shellQuote(posix.dirname(file.path))}`, {sudo: true})
    await ssh.upload(file.content, file.path, {mode, owner, group})
  })
  return true
}
