import {existsSync, writeFileSync} from 'node:fs'

import {ExitStatus, XclusterError} from '../errors.js'
import {renderTemplate} from '../render/template.js'

export interface InitResult {
  file: string
  overwritten: boolean
}

/** Writes templates/xcluster.yaml to `file`; refuses to replace an existing file unless forced. */
export function writeExampleSpec(file: string, options: {force?: boolean} = {}): InitResult {
  const text = renderTemplate('xcluster.yaml', {})
  const existed = existsSync(file)
  try {
    // 'wx' fails if the file exists, atomically: no check-then-write race.
    writeFileSync(file, text, {flag: options.force ? 'w' : 'wx'})
    return {file, overwritten: existed}
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      throw new XclusterError(`${file} already exists; not overwriting it.`, {
        code: 'FILE_EXISTS',
        exit: ExitStatus.usage,
        suggestion: `Pick another path with -f, or replace it with --force.`,
      })
    }
    throw new XclusterError(`Cannot write ${file}: ${(err as Error).message}`, {code: 'FILE_UNWRITABLE', exit: ExitStatus.usage, cause: err})
  }
}
