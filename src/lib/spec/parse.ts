import {readFileSync} from 'node:fs'

import {LineCounter, isMap, isScalar, parseDocument, type Document, type Node} from 'yaml'

import {ExitStatus, XclusterError} from '../errors.js'
import {formatProblem, type Locator, type SpecPath, type SpecProblem} from './problems.js'
import type {ClusterSpec} from './types.js'
import {validateSpec, type SpecValidation} from './validate.js'

/** Parses and validates spec text without throwing: every YAML and spec problem, with positions. */
export function checkSpecText(text: string, fileName: string): SpecValidation {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {lineCounter, keepSourceTokens: true, prettyErrors: true, uniqueKeys: true})
  if (doc.errors.length > 0) {
    const problems: SpecProblem[] = doc.errors.map((e) => ({
      file: fileName,
      line: e.linePos?.[0].line ?? null,
      col: e.linePos?.[0].col ?? null,
      path: '(yaml)',
      // yaml appends " at line L, column C:" and a source excerpt; the position is reported separately.
      problem: `malformed YAML: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`,
      fix: e.code === 'DUPLICATE_KEY' ? 'Remove or rename the repeated key.' : 'Fix the YAML syntax (indentation, brackets, quotes, "key: value").',
    }))
    return {ok: false, problems}
  }
  const result = validateSpec(doc.toJS(), {file: fileName, locate: yamlLocator(doc, lineCounter)})
  // In file order, so the operator can fix them top to bottom (sort is stable for ties).
  result.problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0))
  return result
}

/** Parses and validates spec text; throws SPEC_INVALID (exit 2) listing every problem. */
export function parseSpec(text: string, fileName: string): ClusterSpec {
  const result = checkSpecText(text, fileName)
  if (!result.ok) throw specInvalid(fileName, result.problems)
  return result.spec
}

/** Reads, parses and validates a spec file; throws SPEC_INVALID or SPEC_FILE_UNREADABLE (exit 2). */
export function loadSpecFile(path: string): ClusterSpec {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new XclusterError(`Cannot read the spec file ${path}: ${(err as Error).message}`, {
      code: 'SPEC_FILE_UNREADABLE',
      exit: ExitStatus.usage,
      suggestion: 'Check the path given with -f, or create an example spec with: xcluster init',
      cause: err,
    })
  }
  return parseSpec(text, path)
}

export function specInvalid(fileName: string, problems: SpecProblem[]): XclusterError {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`
  const lines = problems.map((p) => `  ${formatProblem(p)}`).join('\n')
  return new XclusterError(`${fileName} is not a valid cluster spec (${count}):\n${lines}`, {
    code: 'SPEC_INVALID',
    exit: ExitStatus.usage,
    suggestion: `Fix the problems listed above, then check again with: xcluster config validate -f ${fileName}`,
    details: {file: fileName, problems},
  })
}

/**
 * Finds where a path is in the YAML source. A missing path (a required key that is absent)
 * falls back to its nearest existing parent, so the operator still lands in the right place.
 */
function yamlLocator(doc: Document, lineCounter: LineCounter): Locator {
  const nodeAt = (path: SpecPath): Node | undefined => (path.length === 0 ? doc.contents : doc.getIn(path, true)) as Node | undefined
  const keyAt = (path: SpecPath): Node | undefined => {
    const parent = nodeAt(path.slice(0, -1))
    if (!isMap(parent)) return undefined
    const last = String(path.at(-1))
    const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === last)
    return pair?.key as Node | undefined
  }
  return (path, at) => {
    let node = at === 'key' ? keyAt(path) : nodeAt(path)
    for (let up = path.length - 1; !node?.range && up >= 0; up--) node = nodeAt(path.slice(0, up))
    // An empty document has no node at all: its problems are at the top of the file.
    if (!node?.range) return {line: 1, col: 1}
    return lineCounter.linePos(node.range[0])
  }
}
