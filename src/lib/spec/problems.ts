/** A problem found in a spec file: where it is, what is wrong and how to fix it. */
export interface SpecProblem {
  file: string
  /** 1-based; null when the position is unknown (e.g. a spec that did not come from a file). */
  line: number | null
  col: number | null
  /** Where inside the spec, e.g. `nodes[3].mac`; `(top level)` for the document itself. */
  path: string
  /** What is wrong, e.g. `"02:58:43" is not a MAC address`. */
  problem: string
  /** How to fix it, as a full sentence. */
  fix: string
}

/** A path inside the spec as keys and list indexes: `['nodes', 3, 'mac']`. */
export type SpecPath = readonly (string | number)[]

/** Maps a path to a source position; `key` points at a mapping key rather than at its value. */
export type Locator = (path: SpecPath, at: 'key' | 'value') => {line: number; col: number} | undefined

export function formatPath(path: SpecPath): string {
  if (path.length === 0) return '(top level)'
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('')
}

/** One line per problem: `FILE:LINE:COL: PATH: PROBLEM. FIX` (the form editors jump to). */
export function formatProblem(p: SpecProblem): string {
  const where = p.line === null ? p.file : `${p.file}:${p.line}:${p.col}`
  return `${where}: ${p.path}: ${p.problem}. ${p.fix}`
}
