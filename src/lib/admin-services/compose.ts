import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'

import {ExitStatus, XclusterError} from '../errors.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import {renderAdminServices, type RenderAdminOptions} from './render.js'

export interface ComposeBundleResult {
  dir: string
  /** Files written or rewritten (relative to dir); the others already had this content. */
  written: string[]
  unchanged: string[]
}

/**
 * Writes the Compose bundle: compose.yaml, its Dockerfile, a .env naming the project, and every
 * rendered config under config/, http/ and ansible/ (mounted read-only). `docker compose up -d
 * --build` in `dir` runs the admin host's services. Files already up to date are left alone.
 */
export function writeComposeBundle(dir: string, spec: ClusterSpec, options: RenderAdminOptions & {dryRun?: boolean} = {}): ComposeBundleResult {
  const bundle = renderAdminServices(spec, options)
  const target = resolve(dir)
  const entries: {path: string; content: string; mode: number}[] = [
    {path: 'compose.yaml', content: bundle.compose, mode: 0o644},
    {path: 'Dockerfile', content: bundle.dockerfile, mode: 0o644},
    {path: '.env', content: `COMPOSE_PROJECT_NAME=${settings.adminServices.composeProject}\n`, mode: 0o644},
    ...bundle.files.map((f) => ({path: f.path, content: f.content, mode: f.mode})),
  ]
  const result: ComposeBundleResult = {dir: target, written: [], unchanged: []}
  for (const entry of entries) {
    const path = join(target, entry.path)
    if (readOrUndefined(path) === entry.content) {
      result.unchanged.push(entry.path)
      continue
    }
    result.written.push(entry.path)
    if (options.dryRun) continue
    try {
      mkdirSync(dirname(path), {recursive: true})
      writeFileSync(path, entry.content, {mode: entry.mode})
    } catch (err) {
      throw new XclusterError(`Cannot write the Compose bundle file ${path}: ${(err as Error).message}`, {
        code: 'ADMIN_BUNDLE_UNWRITABLE',
        exit: ExitStatus.failure,
        suggestion: 'Pick a directory you can write, or run with sudo.',
        cause: err,
      })
    }
  }
  return result
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}
