import {readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/** templates/ at the package root (dist/lib/render -> ../../../templates; same from src/). */
export const TEMPLATES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'templates')

const EACH = /\{\{#each\s+([\w.]+)\s*\}\}\n?([\s\S]*?)\{\{\/each\}\}\n?/g
const VARIABLE = /\{\{\s*([\w.]+)\s*\}\}/g

function lookup(vars: unknown, path: string): unknown {
  let value: unknown = vars
  for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part]
  return value
}

/** Replaces `{{name}}` / `{{a.b}}`, and repeats `{{#each list}}...{{/each}}` per item (`{{this.x}}` inside). */
export function renderString(text: string, vars: Record<string, unknown>, source = 'template'): string {
  const expanded = text.replace(EACH, (_, path: string, body: string) => {
    const list = lookup(vars, path)
    if (!Array.isArray(list)) throw new Error(`${source}: {{#each ${path}}} needs a list`)
    return list.map((item) => renderString(body, {...vars, this: item}, source)).join('')
  })
  return expanded.replace(VARIABLE, (_, path: string) => {
    const value = lookup(vars, path)
    // A half-rendered config file is worse than none.
    if (value === undefined || value === null) throw new Error(`${source}: no value for {{${path}}}`)
    return String(value)
  })
}

/** Renders templates/<relPath>; a missing variable throws. */
export function renderTemplate(relPath: string, vars: Record<string, unknown>): string {
  return renderString(readFileSync(join(TEMPLATES_DIR, relPath), 'utf8'), vars, `template ${relPath}`)
}
