import {createHash, randomBytes} from 'node:crypto'

import {ExitStatus, XclusterError, preconditionError} from '../errors.js'
import type {KeySchema} from '../etcd/keys.js'
import type {StoredKv} from '../etcd/store.js'
import {settings} from '../settings.js'
import type {ClusterSpec, NodeSpec} from './types.js'

/**
 * A spec of any size on a stock etcd: the spec is stored in parts under a *generation*
 * (`spec/parts/<generation>/<n>`), each part a JSON value of at most settings.specApply.partBytes,
 * and the small `spec` key points at the current generation. Parts of a generation never change;
 * an apply stages a new generation that no reader sees, then swaps the pointer in one transaction
 * that also drops the previous generation's parts. A reader reads the pointer and the parts in one
 * read at one revision, so it always holds one whole generation.
 */
export interface SpecPointer {
  generation: string
  parts: number
  /** Bytes of all parts. */
  bytes: number
  nodes: number
  /** SHA-256 of the spec's canonical JSON: re-applying the same spec is told without reading the parts. */
  sha256: string
  /**
   * When the apply that made this pointer ran: the createdAt/updatedAt of the node records it
   * writes, so records a reader overlays (spec/fold) equal those written later, to the byte.
   */
  appliedAt: string
}

/** The value under `spec/fold`: the generation whose node records and MAC bindings are still being written. */
export interface SpecFold {
  generation: string
}

/** The value under `spec/apply`: who is applying, for the refusal another apply gets. */
export interface ApplyClaimRecord {
  generation: string
  by: string
  host: string
  pid: number
  startedAt: string
}

/** Part 0 is the spec with the first nodes; the others carry further nodes, in order. */
type SpecPart = Partial<ClusterSpec> & {nodes: NodeSpec[]}

/** JSON with sorted keys, so a stored spec compares equal however its keys were ordered. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  )
}

export const specSha256 = (spec: ClusterSpec): string => createHash('sha256').update(canonicalJson(spec)).digest('hex')

/** Sortable by time, unique across hosts. */
export const newGeneration = (): string => `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`

/**
 * The spec as parts of at most settings.specApply.partBytes each. SPEC_TOO_LARGE when the whole
 * passes settings.specApply.maxSpecBytes, or when the spec without its nodes fills a part alone.
 */
export function splitSpec(spec: ClusterSpec): Buffer[] {
  const limit = settings.specApply.partBytes
  const head = Buffer.byteLength(JSON.stringify({...spec, nodes: []}))
  const chunks: NodeSpec[][] = [[]]
  let size = head
  for (const node of spec.nodes) {
    const bytes = Buffer.byteLength(JSON.stringify(node)) + 1
    if (size + bytes > limit && chunks.at(-1)!.length > 0) {
      chunks.push([])
      size = Buffer.byteLength('{"nodes":[]}')
    }
    chunks.at(-1)!.push(node)
    size += bytes
  }
  const parts = chunks.map((nodes, i) => Buffer.from(JSON.stringify(i === 0 ? {...spec, nodes} : {nodes})))
  const total = parts.reduce((sum, p) => sum + p.length, 0)
  if (head > limit) {
    throw new XclusterError(`What the spec holds besides its nodes is ${kib(head)} of JSON; xcluster stores at most ${kib(limit)} of it.`, {
      code: 'SPEC_TOO_LARGE',
      exit: ExitStatus.precondition,
      suggestion: 'Shorten what is not nodes (services, packages, pxe): e.g. move long start: commands into scripts or units on the nodes.',
      details: {bytes: head, limit},
    })
  }
  if (total > settings.specApply.maxSpecBytes) {
    throw new XclusterError(`The spec is ${mib(total)} of JSON (${spec.nodes.length} nodes); xcluster stores at most ${mib(settings.specApply.maxSpecBytes)}.`, {
      code: 'SPEC_TOO_LARGE',
      exit: ExitStatus.precondition,
      suggestion: 'Split the machines into several clusters (each its own --cluster and spec).',
      details: {bytes: total, nodes: spec.nodes.length, limit: settings.specApply.maxSpecBytes},
    })
  }
  return parts
}

const kib = (bytes: number): string => `${Math.ceil(bytes / 1024)} KiB`
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

/** The spec from its parts, in order; SPEC_CORRUPT when they do not make the generation the pointer names. */
export function assembleSpec(pointer: SpecPointer, parts: Buffer[]): ClusterSpec {
  const bytes = parts.reduce((sum, p) => sum + p.length, 0)
  if (parts.length !== pointer.parts || bytes !== pointer.bytes) {
    throw preconditionError(
      'SPEC_CORRUPT',
      `The stored spec (generation ${pointer.generation}) has ${parts.length} of its ${pointer.parts} parts (${bytes} of ${pointer.bytes} bytes).`,
      'Apply the spec again: xcluster config apply -f xcluster.yaml',
    )
  }
  const [first, ...rest] = parts.map((p) => JSON.parse(p.toString()) as SpecPart)
  return {...(first as ClusterSpec), nodes: [first!.nodes, ...rest.map((p) => p.nodes)].flat()}
}

/** What the keys under KeySchema.specFamilyPrefix() say, read at one revision. */
export interface SpecFamily {
  /** The `spec` key: its mod revision (what an apply compares) and, for a pointer, the pointer. */
  pointer?: {value: SpecPointer | undefined; modRevision: string}
  /** The current spec, when its parts were read (or the spec stored before generations). */
  spec?: ClusterSpec
  /** SHA-256 of the current spec (from the pointer, or computed for a spec stored before generations). */
  sha256?: string
  fold?: {value: SpecFold; modRevision: string}
  claim?: {value: ApplyClaimRecord; lease: string; createRevision: string}
}

const isPointer = (value: unknown): value is SpecPointer => typeof (value as SpecPointer)?.generation === 'string'

/**
 * Interprets the spec family's keys; parts of generations other than the current one (staged,
 * old) are ignored. `partsRead`: the read covered the parts (else only the pointer and the fold).
 */
export function readSpecFamily(keys: KeySchema, kvs: StoredKv[], partsRead: boolean): SpecFamily {
  const family: SpecFamily = {}
  const parts = new Map<string, {index: number; value: Buffer}[]>()
  for (const kv of kvs) {
    if (kv.key === keys.spec()) {
      const value = JSON.parse(kv.value.toString()) as unknown
      if (isPointer(value)) family.pointer = {value, modRevision: kv.modRevision}
      else {
        family.pointer = {value: undefined, modRevision: kv.modRevision}
        family.spec = value as ClusterSpec
        family.sha256 = specSha256(family.spec)
      }
    } else if (kv.key === keys.specFold()) family.fold = {value: JSON.parse(kv.value.toString()) as SpecFold, modRevision: kv.modRevision}
    else if (kv.key === keys.specApplyClaim()) family.claim = {value: JSON.parse(kv.value.toString()) as ApplyClaimRecord, lease: kv.lease, createRevision: kv.createRevision}
    else {
      const part = keys.specPartFromKey(kv.key)
      if (part) parts.set(part.generation, [...(parts.get(part.generation) ?? []), {index: part.index, value: kv.value}])
    }
  }
  const pointer = family.pointer?.value
  if (pointer) {
    family.sha256 = pointer.sha256
    const mine = parts.get(pointer.generation) ?? []
    if (partsRead)
      family.spec = assembleSpec(
        pointer,
        mine.sort((a, b) => a.index - b.index).map((p) => p.value),
      )
  }
  return family
}
