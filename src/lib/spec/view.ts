import type {EtcdStore, KeyRange, StoredKv} from '../etcd/store.js'
import type {MacBinding, NodeRecord} from '../nodes/record.js'
import {readSpecFamily, type SpecFamily} from './generation.js'
import {diffWithSpec, overlay, type Registry, type RegistryRow} from './resolve.js'
import type {ClusterSpec} from './types.js'

export interface ClusterViewOptions {
  /**
   * `always`: the spec is read (pointer and parts). `while-folding`: only the pointer, and the
   * parts only while a fold is unfinished (they are needed to overlay the registry then); the
   * choice is made by etcd inside the one read, so it costs no round trip either way.
   */
  spec: 'always' | 'while-folding'
  /** Node records: all, one by name, or none. */
  nodes?: 'all' | {name: string} | 'none'
  macs?: boolean
  /** Further prefixes read at the same revision (leases, runs, ...), returned in `extra`. */
  extra?: string[]
}

/**
 * The cluster's spec and node registry as every reader must see it, read at one revision: the
 * stored node records and MAC bindings, overlaid with the current spec while its fold is
 * unfinished (`spec/fold` present), so a reader sees the old spec with its nodes or the new one
 * with its nodes, never a mix (src/lib/spec/apply.ts).
 */
export interface ClusterView {
  revision: string
  family: SpecFamily
  /** The current spec (undefined when none is stored, or not read: see ClusterViewOptions.spec). */
  spec: ClusterSpec | undefined
  /** True while the current generation's fold is unfinished. */
  folding: boolean
  /** What etcd holds under nodes/ and macs/ (as read). */
  stored: Registry
  /** What readers see: `stored`, overlaid with the spec while folding. */
  resolved: Registry
  /** Resolved node records, in name order. */
  nodes: NodeRecord[]
  /** The keys of each `extra` prefix, in the order asked. */
  extra: StoredKv[][]
}

export async function readClusterView(store: EtcdStore, options: ClusterViewOptions): Promise<ClusterView> {
  const k = store.keys
  const nodes = options.nodes ?? 'all'
  const registryRanges: KeyRange[] = [...(nodes === 'all' ? [{prefix: k.nodesPrefix()}] : nodes === 'none' ? [] : [{key: k.node(nodes.name)}]), ...(options.macs ? [{prefix: k.macsPrefix()}] : [])]
  const extra = (options.extra ?? []).map((prefix) => ({prefix}))
  const always = options.spec === 'always'
  // Pointer and fold marker are small; the parts come only when needed.
  const head: KeyRange[] = always ? [{prefix: k.specFamilyPrefix()}] : [{key: k.spec()}, {key: k.specFold()}]
  const read = await store.readRanges({
    ranges: [...head, ...registryRanges, ...extra],
    ...(always ? {} : {whilePresent: {key: k.specFold(), ranges: [{prefix: k.specPartsPrefix()}]}}),
  })
  const [headKvs, rest] = [read.kvs.slice(0, head.length).flat(), read.kvs.slice(head.length)]
  const parts = always ? [] : read.present ? (read.kvs.at(-1) ?? []) : []
  const family = readSpecFamily(k, [...headKvs, ...parts], always || read.present)

  const stored: Registry = {nodes: new Map(), macs: new Map()}
  let i = 0
  if (nodes !== 'none') {
    for (const kv of rest[i++] ?? []) {
      const r = row<NodeRecord>(kv)
      if (r?.value.name) stored.nodes.set(r.value.name, r)
    }
  }
  if (options.macs) {
    for (const kv of rest[i++] ?? []) {
      const r = row<MacBinding>(kv)
      if (r) stored.macs.set(k.macFromKey(kv.key), r)
    }
  }
  const extraKvs = rest.slice(i, i + extra.length)

  const folding = family.fold !== undefined
  const resolved =
    folding && family.spec && family.pointer?.value ? overlay(stored, diffWithSpec(family.spec, stored, typeof nodes === 'object' ? nodes.name : undefined), family.pointer.value.appliedAt) : stored
  return {
    revision: read.revision,
    family,
    spec: family.spec,
    folding,
    stored,
    resolved,
    nodes: [...resolved.nodes.values()].map((r) => r.value).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    extra: extraKvs,
  }
}

/** A stored row; undefined for a value that is not JSON (not ours to interpret: skipped, not a crash). */
function row<T>(kv: StoredKv): RegistryRow<T> | undefined {
  try {
    return {value: JSON.parse(kv.value.toString()) as T, modRevision: kv.modRevision}
  } catch {
    return undefined
  }
}
