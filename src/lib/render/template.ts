import {readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/** templates/ at the package root (dist/lib/render -> ../../../templates; same from src/). */
export const TEMPLATES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'templates')

/** Renders templates/<relPath>, replacing `{{name}}` / `{{a.b}}`; a missing variable throws. */
export function renderTemplate(relPath: string, vars: Record<string, unknown>): string {
  const text = readFileSync(join(TEMPLATES_DIR, relPath), 'utf8')
  return text.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, path: string) => {
    let value: unknown = vars
    for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part]
    if (value === undefined || value === null) throw new Error(`template ${relPath}: no value for {{${path}}}`)
    return String(value)
  })
}
