/**
 * `ceph disk add NODE DEVICE`: a task list on the node over SSH, journaled like every node
 * action. Read-only first (the node's Ceph, what the device holds: refused with nothing changed),
 * then the LVM preparation and the backend's OSD creation, each line through the wet gate so
 * --dry-run prints exactly what a real run executes.
 */
import {runOnNodes, type NodeActionOptions} from '../actions/node-run.js'
import {ExitStatus, XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import type {EtcdStore} from '../etcd/store.js'
import {connectPhase} from '../phases/connect.js'
import type {NodeHost, NodeRunContext} from '../phases/context.js'
import type {SshHost} from '../ssh/index.js'
import {shellQuote} from '../ssh/shell.js'
import type {Phase} from '../tasks/phase.js'
import {assertRunSucceeded, type RunSummary} from '../tasks/runner.js'
import {randomUUID} from 'node:crypto'

import {humanSize} from './input.js'
import {settings} from '../settings.js'
import {
  checkDevicePath,
  diskCommands,
  OSD_LV,
  diskRefusal,
  inspectCommand,
  loopCommands,
  loopFileDir,
  osdVolumeGroup,
  parseDeviceFacts,
  parseLoopSpec,
  scriptLine,
  type DeviceFacts,
  type LoopSpec,
} from './disks.js'

export interface DiskAddOptions extends NodeActionOptions {
  /** Destroy what the device holds (filesystem, partition table, LVM metadata). */
  wipe: boolean
}

export interface DiskAddResult {
  node: string
  /** The device's path, or the loop spec (loop,4G). */
  device: string
  /** The VG made on the device (absent for loop OSDs). */
  volumeGroup?: string
  /** What the device held before (absent when the run stopped before reading it). */
  before?: DeviceFacts
  /** The new OSD's id, where the backend's tools say it (ceph-volume). */
  osd?: number
  /** The loop OSDs made (Debian's Ceph: the ids its script printed). */
  osds?: number[]
  run: RunSummary
}

export async function addDisk(store: EtcdStore, node: string, device: string, options: DiskAddOptions): Promise<DiskAddResult> {
  const loop = parseLoopSpec(device)
  if (loop) return addLoopOsds(store, node, loop, options)
  checkDevicePath(device)
  const volumeGroup = osdVolumeGroup(node, device)
  const found = new Map<string, DeviceFacts>()
  let osd: number | undefined

  const inspect: Phase<NodeHost, NodeRunContext> = {
    id: 'inspect-disk',
    title: `Check that ${device} may become an OSD`,
    readOnly: true,
    async run(ctx, host) {
      await requireCephOn(ctx, host)
      const ssh = await ctx.ssh(host)
      const res = await ssh.exec(inspectCommand(device, volumeGroup), {sudo: true})
      if (res.code !== 0) {
        throw new XclusterError(`Cannot read ${device} on ${host.name}: ${(res.stderr || res.stdout).trim().split('\n').pop()}`, {
          code: 'CEPH_DISK_NOT_FOUND',
          exit: ExitStatus.precondition,
          suggestion: `See the disks of ${host.name} there (lsblk), and name one by its path.`,
        })
      }
      const facts = parseDeviceFacts(device, res.stdout, volumeGroup)
      const refusal = diskRefusal(host.name, facts, options.wipe)
      if (refusal) throw refusal
      found.set(host.name, facts)
    },
  }

  const prepare: Phase<NodeHost, NodeRunContext> = {
    id: 'prepare-lvm',
    title: `Prepare ${device} with LVM`,
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const {prepare: lines} = diskCommands(host.name, found.get(host.name)!, (await ctx.ceph(host)).backend, options.wipe)
      for (const line of lines) await ctx.wet(host, line, () => ssh.run(line, {sudo: true}))
    },
  }

  const addOsd: Phase<NodeHost, NodeRunContext> = {
    id: 'add-osd',
    title: `Create the OSD on ${volumeGroup}`,
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const {backend} = await ctx.ceph(host)
      const {addOsd: line} = diskCommands(host.name, found.get(host.name)!, backend, options.wipe)
      if (backend === 'ceph') {
        // An OSD an earlier attempt already made on the LV is not made twice.
        const existing = await osdOnVolume(ssh, volumeGroup)
        if (existing !== undefined) {
          osd = existing
          return
        }
      }
      await ctx.wet(host, line, () => ssh.run(line, {sudo: true, timeoutMs: 10 * 60_000}))
      if (backend === 'ceph' && !ctx.dryRun) osd = await osdOnVolume(ssh, volumeGroup)
    },
  }

  const {summary} = await runOnNodes(store, 'ceph disk add', [node], [connectPhase, inspect, prepare, addOsd], options)
  assertRunSucceeded(summary)
  const before = found.get(node)
  return {node, device, volumeGroup, ...(before ? {before} : {}), ...(osd === undefined ? {} : {osd}), run: summary}
}

/** The backend's Ceph on the node, or a refusal that says how to get it there. */
async function requireCephOn(ctx: NodeRunContext, host: NodeHost): Promise<void> {
  const cli = await ctx.ceph(host)
  if (await cli.present()) return
  throw new XclusterError(`${host.name} runs no Ceph of the spec's backend (${cli.backend}): there is no cluster to add an OSD to.`, {
    code: 'CEPH_NOT_ON_NODE',
    exit: ExitStatus.precondition,
    suggestion: `Join ${host.name} to the Ceph cluster first: ${commandLine(['ceph', 'join', host.name])}`,
  })
}

/**
 * `ceph disk add NODE loop,SIZE[,N]`: N file-backed OSDs. Read-only first (the node's Ceph, room
 * for the files where the backend keeps them), then one OSD at a time; each new OSD is a new
 * uuid, so a re-run adds more, as MicroCeph's own `disk add loop,...` does.
 */
async function addLoopOsds(store: EtcdStore, node: string, spec: LoopSpec, options: DiskAddOptions): Promise<DiskAddResult> {
  const osds: number[] = []
  const inspect: Phase<NodeHost, NodeRunContext> = {
    id: 'inspect-space',
    title: `Check that ${node} has room for ${spec.count} OSD file(s) of ${spec.size}`,
    readOnly: true,
    async run(ctx, host) {
      await requireCephOn(ctx, host)
      const dir = loopFileDir((await ctx.ceph(host)).backend)
      const res = await (await ctx.ssh(host)).exec(`df -B1 --output=avail ${shellQuote(dir)} | tail -n 1`, {sudo: true})
      const avail = Number(res.stdout.trim())
      if (res.code !== 0 || !Number.isFinite(avail)) throw new Error(`Cannot read the free space of ${dir} on ${host.name}: ${(res.stderr || res.stdout).trim()}`)
      const needed = spec.bytes * spec.count
      if (avail < needed) {
        throw new XclusterError(`${host.name} has ${humanSize(avail)} free in ${dir}; ${spec.count} OSD file(s) of ${spec.size} need ${humanSize(needed)}.`, {
          code: 'CEPH_NO_ROOM',
          exit: ExitStatus.precondition,
          suggestion: `Ask for less, or add a disk of the node instead: ${commandLine(['ceph', 'disk', 'add', host.name, 'DEVICE'])}`,
          details: {node: host.name, availBytes: avail, neededBytes: needed},
        })
      }
    },
  }
  const add: Phase<NodeHost, NodeRunContext> = {
    id: 'add-osd',
    title: `Create ${spec.count} file-backed OSD(s) of ${spec.size}`,
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const {backend} = await ctx.ceph(host)
      const uuids = Array.from({length: spec.count}, () => randomUUID())
      for (const script of loopCommands(backend, spec, uuids)) {
        if (backend === 'microceph') {
          await ctx.wet(host, script, () => ssh.run(script, {sudo: true, timeoutMs: settings.ceph.formTimeoutMs}))
          continue
        }
        const res = await ctx.wet(host, scriptLine(script), () => ssh.run('sh -s', {sudo: true, input: script, timeoutMs: settings.ceph.formTimeoutMs}))
        const id = /^osd\.(\d+)$/m.exec(res?.stdout ?? '')?.[1]
        if (id !== undefined) osds.push(Number(id))
      }
    },
  }
  const {summary} = await runOnNodes(store, 'ceph disk add', [node], [connectPhase, inspect, add], options)
  assertRunSucceeded(summary)
  return {node, device: `loop,${spec.size},${spec.count}`, osds, run: summary}
}

/** The OSD id ceph-volume has on the disk's LV, if any. */
async function osdOnVolume(ssh: SshHost, volumeGroup: string): Promise<number | undefined> {
  const res = await ssh.exec(`ceph-volume lvm list ${shellQuote(`${volumeGroup}/${OSD_LV}`)} --format json`, {sudo: true})
  if (res.code !== 0) return undefined
  const ids = Object.keys(JSON.parse(res.stdout.trim() || '{}') as Record<string, unknown>)
  return ids.length > 0 ? Number(ids[0]) : undefined
}
