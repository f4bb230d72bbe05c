import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {MacBinding, NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {assembleSpec, specSha256, splitSpec, type SpecPointer} from '../../src/lib/spec/generation.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {diffWithSpec, newNodeRecord, overlay, updatedNodeRecord, type Registry, type RegistryRow} from '../../src/lib/spec/resolve.js'
import {largeSpecNodes, largeSpecYaml} from '../helpers/large-spec.js'

const spec5k = parseSpec(largeSpecYaml(largeSpecNodes(5000), {services: "  - {name: postgres, start: 'true', stop: 'true', nodes: [s1, s2, s3], vip: 10.68.0.240}\n"}), 'x')

const pointerOf = (parts: Buffer[]): SpecPointer => ({
  generation: 'g',
  parts: parts.length,
  bytes: parts.reduce((sum, p) => sum + p.length, 0),
  nodes: spec5k.nodes.length,
  sha256: '',
  appliedAt: '',
})

describe('the spec in parts', () => {
  it('splits a 5,000-node spec into parts within the part size, and assembles it back whole, key order included', () => {
    const parts = splitSpec(spec5k)
    assert.ok(parts.length >= 2, `${parts.length} parts`)
    assert.ok(parts.every((p) => p.length <= settings.specApply.partBytes))
    const back = assembleSpec(pointerOf(parts), parts)
    assert.equal(JSON.stringify(back), JSON.stringify(spec5k))
    assert.equal(specSha256(back), specSha256(spec5k))
  })

  it('refuses to assemble a generation with a part missing', () => {
    const parts = splitSpec(spec5k)
    assert.throws(
      () => assembleSpec(pointerOf(parts), parts.slice(1)),
      (e: {code?: string}) => e.code === 'SPEC_CORRUPT',
    )
  })

  it('the digest does not depend on key order', () => {
    const reordered = JSON.parse(JSON.stringify({nodes: spec5k.nodes, network: spec5k.network, cluster: spec5k.cluster, ssh: spec5k.ssh, services: spec5k.services}))
    assert.equal(specSha256(reordered), specSha256(spec5k))
  })
})

describe('the overlay a reader sees mid-fold', () => {
  const at = '2026-01-01T00:00:00.000Z'
  /** 1,000 nodes stored as an apply left them, some moved on, two with a changed MAC in the new spec. */
  function stored(): Registry {
    const old = parseSpec(largeSpecYaml(largeSpecNodes(1000)), 'x')
    const nodes = new Map<string, RegistryRow<NodeRecord>>()
    const macs = new Map<string, RegistryRow<MacBinding>>()
    for (const [i, n] of old.nodes.entries()) {
      const record = newNodeRecord({name: n.name, type: n.type, mac: n.mac, ip: n.ip ?? null}, '2025-01-01T00:00:00.000Z')
      nodes.set(n.name, {value: i % 7 === 0 ? {...record, state: 'ready'} : record, modRevision: String(10 + i)})
      macs.set(n.mac, {value: {node: n.name}, modRevision: String(10 + i)})
    }
    return {nodes, macs}
  }
  const next = {...spec5k, nodes: spec5k.nodes.map((n, i) => (i === 10 || i === 20 ? {...n, mac: `02:59:00:00:00:${i}`} : n))}

  it('is the same whichever part of the fold is written: every fold write turns an overlaid row into the same stored one', () => {
    const before = stored()
    const target = overlay(before, diffWithSpec(next, before), at)
    assert.equal(target.nodes.size, 5000)
    assert.equal(target.macs.size, 5000)
    assert.equal(target.macs.get(spec5k.nodes[10]!.mac), undefined, 'the old MAC of a node whose MAC changed is unbound')
    assert.equal(target.nodes.get(spec5k.nodes[7]!.name)?.value.state, 'ready', 'a state is kept')
    // Write every third row of the diff, as a fold cut short would, and overlay again.
    const diff = diffWithSpec(next, before)
    const partial: Registry = {nodes: new Map(before.nodes), macs: new Map(before.macs)}
    diff.add.filter((_, i) => i % 3 === 0).forEach((n) => partial.nodes.set(n.name, {value: newNodeRecord(n, at), modRevision: '99'}))
    diff.update.forEach((u) => partial.nodes.set(u.name, {value: updatedNodeRecord(u.record, u.node, at), modRevision: '99'}))
    diff.macs.filter((_, i) => i % 3 === 1).forEach((m) => (m.node === null ? partial.macs.delete(m.mac) : partial.macs.set(m.mac, {value: {node: m.node}, modRevision: '99'})))
    const seen = overlay(partial, diffWithSpec(next, partial), at)
    const values = (r: Registry) => ({nodes: [...r.nodes].map(([k, v]) => [k, v.value]).sort(), macs: [...r.macs].map(([k, v]) => [k, v.value]).sort()})
    assert.deepEqual(values(seen), values(target))
    // And once all is written, nothing is left to write.
    const full: Registry = {nodes: new Map([...target.nodes].map(([k, v]) => [k, {...v, modRevision: '99'}])), macs: new Map(target.macs)}
    const left = diffWithSpec(next, full)
    assert.deepEqual([left.add.length, left.update.length, left.macs.length], [0, 0, 0])
  })
})
