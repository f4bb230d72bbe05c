import {readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/** The package's templates/ directory (this file is dist/lib/render/template.js). */
const TEMPLATES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'templates')

/**
 * Loads `templates/<relPath>` and replaces `{{name}}` / `{{a.b}}` placeholders from `vars`.
 * A placeholder without a value throws: a half-rendered config file is worse than none.
 */
export function renderTemplate(relPath: string, vars: Record<string, unknown>): string {
  const text = readFileSync(join(TEMPLATES, relPath), 'utf8')
  return text.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, name: string) => {
    let value: unknown = vars
    for (const part of name.split('.')) value = (value as Record<string, unknown> | undefined)?.[part]
    if (value === undefined || value === null) throw new Error(`template ${relPath}: no value for {{${name}}}`)
    return String(value)
  })
}
