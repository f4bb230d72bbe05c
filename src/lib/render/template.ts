import {readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/** templates/ at the package root (dist/lib/render -> ../../../templates; same from src/). */
export const TEMPLATES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'templates')

const EACH = /\{\{#each\s+([\w.]+)\s*\}\}\n?([\s\S]*?)\{\{\/each\}\}\n?/g
const IF = /\{\{#if\s+([\w.]+)\s*\}\}\n?([\s\S]*?)\{\{\/if\}\}\n?/g
const VARIABLE = /\{\{\s*([\w.]+)\s*\}\}/g

function lookup(vars: unknown, path: string): unknown {
  let value: unknown = vars
  for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part]
  return value
}

/** A value `{{#if}}` keeps its block for: present, not false, not empty. */
function truthy(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false && value !== '' && !(Array.isArray(value) && value.length === 0)
}

/**
 * Replaces `{{name}}` / `{{a.b}}`, repeats `{{#each list}}...{{/each}}` per item (`{{this.x}}`
 * inside), and keeps `{{#if name}}...{{/if}}` only when the value is set (not nested in itself).
 */
export function renderString(text: string, vars: Record<string, unknown>, source = 'template'): string {
  const expanded = text.replace(EACH, (_, path: string, body: string) => {
    const list = lookup(vars, path)
    if (!Array.isArray(list)) throw new Error(`${source}: {{#each ${path}}} needs a list`)
    return list.map((item) => renderString(body, {...vars, this: item}, source)).join('')
  })
  const kept = expanded.replace(IF, (_, path: string, body: string) => (truthy(lookup(vars, path)) ? body : ''))
  return kept.replace(VARIABLE, (_, path: string) => {
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
