import {existsSync, writeFileSync} from 'node:fs'

import {ExitStatus, XclusterError} from '../errors.js'
import {renderTemplate} from '../render/template.js'

export interface InitResult {
  file: string
  overwritten: boolean
  /** True when nothing was written (--dry-run): `overwritten` then says what a real run would do. */
  dryRun: boolean
}

const fileExists = (file: string): XclusterError =>
  new XclusterError(`${file} already exists; not overwriting it.`, {
    code: 'FILE_EXISTS',
    exit: ExitStatus.usage,
    suggestion: `Pick another path with -f, or replace it with --force.`,
  })

/**
 * Writes templates/xcluster.yaml to `file`; refuses to replace an existing file unless forced.
 * With `dryRun` it renders and checks the same way and writes nothing.
 */
export function writeExampleSpec(file: string, options: {force?: boolean; dryRun?: boolean} = {}): InitResult {
  const text = renderTemplate('xcluster.yaml', {})
  const existed = existsSync(file)
  if (options.dryRun) {
    if (existed && !options.force) throw fileExists(file)
    return {file, overwritten: existed, dryRun: true}
  }
  try {
    // 'wx' fails if the file exists, atomically: no check-then-write race.
    writeFileSync(file, text, {flag: options.force ? 'w' : 'wx'})
    return {file, overwritten: existed, dryRun: false}
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw fileExists(file)
    throw new XclusterError(`Cannot write ${file}: ${(err as Error).message}`, {code: 'FILE_UNWRITABLE', exit: ExitStatus.usage, cause: err})
  }
}
