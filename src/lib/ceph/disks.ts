/**
 * A disk for Ceph: what the device holds (read with the kernel's and libblkid's own views:
 * lsblk and `wipefs -n`, neither needing udev), whether xcluster may take it, and the LVM and
 * OSD commands that make it an OSD: a PV, a VG of its own, one LV over all of it, then the
 * backend's own OSD creation on that LV (`microceph disk add` or `ceph-volume lvm create`).
 */
import {basename} from 'node:path'

import {ExitStatus, usageError, XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {renderTemplate} from '../render/template.js'
import {shellQuote} from '../ssh/shell.js'
import type {CephBackend, CephCli} from './cli.js'
import {BOOTSTRAP_OSD_KEYRING} from './deploy.js'

/** The LV every OSD disk gets, in a VG named for its node and device. */
export const OSD_LV = 'osd-block'

/** `ceph-s4-sdb`: one VG per OSD disk, named so `vgs` says where each came from. */
export const osdVolumeGroup = (node: string, device: string): string => `ceph-${node}-${basename(device)}`

export interface DiskSignature {
  /** What libblkid found: a filesystem (ext4, xfs), a partition table (dos, gpt), LVM2_member... */
  type: string
  offset: string
}

/** What a device holds, as the node's kernel and libblkid see it. */
export interface DeviceFacts {
  path: string
  /** lsblk's TYPE: disk, loop, part, lvm, rom... */
  type: string
  sizeBytes: number
  readOnly: boolean
  /** Where it or anything on it is mounted (swap counts). */
  mounts: string[]
  /** Partitions and holders on it (paths). */
  children: string[]
  signatures: DiskSignature[]
  /** The VG it is a PV of, if it is one. */
  volumeGroup: string | null
  /** Whether that VG already has the OSD LV (an earlier, interrupted attempt). */
  hasOsdVolume: boolean
}

/** Device paths xcluster accepts: /dev/NAME, /dev/disk/by-id/NAME and the like. */
export function checkDevicePath(device: string): void {
  if (!/^\/dev\/[A-Za-z0-9][A-Za-z0-9._:/+-]*$/.test(device) || device.includes('..')) {
    throw usageError(`${JSON.stringify(device)} is not a device path.`, 'Name the disk by its path on the node, e.g. /dev/sdb or /dev/disk/by-id/wwn-0x5000c500a1b2c3d4.', {device})
  }
}

/**
 * One round trip: the device must be a block device; then lsblk's JSON, wipefs's signatures
 * (without writing), and the PV's VG with whether it has the OSD LV.
 */
export function inspectCommand(device: string, volumeGroup: string): string {
  const dev = shellQuote(device)
  return [
    `test -b ${dev} || { echo "not a block device: ${device}" >&2; exit 3; }`,
    `lsblk -J -b -p -o NAME,TYPE,SIZE,MOUNTPOINT,RO ${dev}`,
    'echo @@',
    `wipefs -n -J ${dev}`,
    'echo @@',
    `pvs --noheadings -o vg_name ${dev} 2>/dev/null || true`,
    'echo @@',
    `lvs --noheadings -o lv_name ${shellQuote(`${volumeGroup}/${OSD_LV}`)} 2>/dev/null || true`,
  ].join('; ')
}

interface LsblkDevice {
  name: string
  type: string
  size: number | string
  mountpoint: string | null
  ro: boolean | string
  children?: LsblkDevice[]
}

/** Reads inspectCommand's output. */
export function parseDeviceFacts(device: string, output: string, volumeGroup: string): DeviceFacts {
  const [lsblk = '', wipefs = '', pvs = '', lvs = ''] = output.split(/^@@$/m).map((s) => s.trim())
  const root = (JSON.parse(lsblk) as {blockdevices: LsblkDevice[]}).blockdevices[0]
  if (!root) throw new Error(`lsblk printed no device for ${device}`)
  const all: LsblkDevice[] = []
  const walk = (d: LsblkDevice) => {
    all.push(d)
    for (const c of d.children ?? []) walk(c)
  }
  walk(root)
  const signatures = wipefs ? ((JSON.parse(wipefs) as {signatures?: {type: string; offset: string}[]}).signatures ?? []) : []
  const vg = pvs.split('\n')[0]?.trim() || null
  return {
    path: device,
    type: root.type,
    sizeBytes: Number(root.size),
    readOnly: root.ro === true || root.ro === '1',
    mounts: all.map((d) => d.mountpoint).filter((m): m is string => Boolean(m)),
    children: all.slice(1).map((d) => d.name),
    signatures: signatures.map((s) => ({type: s.type, offset: s.offset})),
    volumeGroup: vg,
    hasOsdVolume: vg === volumeGroup && lvs.trim() === OSD_LV,
  }
}

/** An earlier attempt's own PV (and maybe LV) on the device: carried on, not refused. */
const preparedByUs = (facts: DeviceFacts, volumeGroup: string): boolean => facts.volumeGroup === volumeGroup && facts.signatures.every((s) => s.type === 'LVM2_member')

const describeSignature = (s: DiskSignature): string =>
  s.type === 'LVM2_member' ? 'LVM metadata (a physical volume)' : ['dos', 'gpt', 'PMBR'].includes(s.type) ? `a partition table (${s.type})` : `a signature of ${s.type} at offset ${s.offset}`

/** Why the device may not become an OSD, or undefined when it may. */
export function diskRefusal(node: string, facts: DeviceFacts, wipe: boolean): XclusterError | undefined {
  const {path} = facts
  const refuse = (code: string, message: string, suggestion: string) => new XclusterError(message, {code, exit: ExitStatus.precondition, suggestion, details: {node, device: facts}})
  if (facts.mounts.length > 0) {
    return refuse(
      'CEPH_DISK_IN_USE',
      `${path} on ${node} is in use: mounted at ${facts.mounts.join(', ')}. xcluster never wipes a device in use, --wipe or not.`,
      `Unmount it on ${node} first, or choose another disk (the disks of the OSDs: ${commandLine(['ceph', 'disk', 'list'])})`,
    )
  }
  if (facts.readOnly) return refuse('CEPH_DISK_READ_ONLY', `${path} on ${node} is read-only.`, `Choose a writable disk on ${node}.`)
  if (!['disk', 'loop', 'part'].includes(facts.type)) {
    return refuse('CEPH_DISK_UNSUITABLE', `${path} on ${node} is a ${facts.type} device; an OSD takes a whole disk or a partition.`, `Choose a disk such as /dev/sdb on ${node}.`)
  }
  if (preparedByUs(facts, osdVolumeGroup(node, path))) return undefined
  const held = [...facts.signatures.map(describeSignature), ...facts.children.map((c) => `${c} on it`)]
  if (held.length > 0 && !wipe) {
    return refuse(
      'CEPH_DISK_NOT_EMPTY',
      `${path} on ${node} holds data: ${held.join(', ')}. Making it an OSD destroys that.`,
      `If that data may go, say so: ${commandLine(['ceph', 'disk', 'add', node, path, '--wipe'])}`,
    )
  }
  return undefined
}

/** The exact lines `disk add` runs on the node, in order, for the facts read now. */
export function diskCommands(node: string, facts: DeviceFacts, backend: CephBackend, wipe: boolean): {prepare: string[]; addOsd: string} {
  const dev = shellQuote(facts.path)
  const vg = osdVolumeGroup(node, facts.path)
  const prepare: string[] = []
  if (!preparedByUs(facts, vg)) {
    // Partitions first: their signatures sit inside the disk, past the table wipefs removes.
    if (wipe) for (const target of [...facts.children].reverse().concat(facts.path)) prepare.push(`wipefs -a ${shellQuote(target)}`)
    prepare.push(`pvcreate ${dev}`, `vgcreate ${shellQuote(vg)} ${dev}`)
  }
  if (!facts.hasOsdVolume) prepare.push(`lvcreate -y -l 100%FREE -n ${OSD_LV} ${shellQuote(vg)}`)
  const addOsd = backend === 'microceph' ? `microceph disk add ${shellQuote(`/dev/${vg}/${OSD_LV}`)}` : `ceph-volume lvm create --bluestore --data ${shellQuote(`${vg}/${OSD_LV}`)}`
  return {prepare, addOsd}
}

/**
 * `loop,SIZE[,N]`: N OSDs (default 1) whose BlueStore lives in a SIZE file on the node's root
 * disk, for a node without a spare disk (a lab, a small test cluster). It is MicroCeph's own spec
 * (`microceph disk add loop,8G,3`: size an integer with M, G or T), and Debian's Ceph gets the same
 * from templates/ceph/osd-file.sh. One failure domain with the node's root disk: not for data
 * that matters.
 */
export interface LoopSpec {
  /** As given: 4G. */
  size: string
  bytes: number
  count: number
}

const LOOP_SPEC = /^loop,(\d+)([MGT]),?(\d+)?$/
/** BlueStore keeps its own metadata in the file too; below 1G an OSD fills with it. */
export const MIN_LOOP_BYTES = 1024 ** 3
export const MAX_LOOP_COUNT = 16

/** The loop spec of a `disk add` argument, or undefined when it names a device (a path). */
export function parseLoopSpec(value: string): LoopSpec | undefined {
  if (!value.startsWith('loop,')) return undefined
  const m = LOOP_SPEC.exec(value)
  const bytes = m ? Number(m[1]) * 1024 ** ('KMGT'.indexOf(m[2]!) + 1) : Number.NaN
  const count = m?.[3] === undefined ? 1 : Number(m[3])
  if (!m || !Number.isSafeInteger(bytes) || bytes < MIN_LOOP_BYTES || count < 1 || count > MAX_LOOP_COUNT) {
    throw usageError(
      `${JSON.stringify(value)} is not a loop spec.`,
      `Give loop,SIZE or loop,SIZE,COUNT: SIZE a whole number with M, G or T, at least 1G (1024M), and COUNT 1 to ${MAX_LOOP_COUNT}, e.g. loop,4G or loop,8G,3.`,
      {spec: value},
    )
  }
  return {size: `${m[1]}${m[2]}`, bytes, count}
}

/** Debian's Ceph: the file a loop OSD's BlueStore lives in (ceph-osd's default block path). */
export const loopOsdFile = (id: number): string => `/var/lib/ceph/osd/ceph-${id}/block`

/** Where the backend keeps its loop files: the free space there must hold them all. */
export const loopFileDir = (backend: CephBackend): string => (backend === 'microceph' ? '/var/snap/microceph/common' : '/var/lib/ceph/osd')

/**
 * The lines that make the loop OSDs: MicroCeph's one `disk add`, or, for Debian's Ceph, the
 * script per OSD (each with its own OSD uuid), run as root by `sh -s`.
 */
export function loopCommands(backend: CephBackend, spec: LoopSpec, uuids: readonly string[]): string[] {
  if (backend === 'microceph') return [`microceph disk add loop,${spec.size},${spec.count}`]
  return uuids.slice(0, spec.count).map((uuid) => renderTemplate('ceph/osd-file.sh', {uuid, bytes: spec.bytes, bootstrapKeyring: BOOTSTRAP_OSD_KEYRING}))
}

/** A script as the plan shows it: its commands, without comments, on one line. */
export function scriptLine(script: string): string {
  return script
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && l !== 'set -eu')
    .join('; ')
}

/** One OSD and its disk, as `ceph disk list` shows it (host: its CRUSH host). */
export interface OsdDisk {
  osd: number
  host: string
  /** The kernel names of the devices under it ([] for memstore). */
  devices: string[]
  objectstore: string
  sizeBytes: number
  usedBytes: number
  /** Used, in % of its size, one decimal. */
  usedPercent: number
  pgs: number
  up: boolean
  in: boolean
}

interface OsdMetadataJson {
  id: number
  hostname?: string
  devices?: string
  osd_objectstore?: string
}

interface OsdDfJson {
  nodes: {id: number; kb?: number; kb_used?: number; utilization?: number; pgs?: number}[]
}

/** Every OSD of the cluster with its host, devices, size, use and state, by host then id. */
export async function listDisks(cli: CephCli): Promise<OsdDisk[]> {
  const [metadata, df, dump, tree] = await Promise.all([
    cli.json<OsdMetadataJson[]>({tool: 'ceph', args: ['osd', 'metadata']}),
    cli.json<OsdDfJson>({tool: 'ceph', args: ['osd', 'df']}),
    cli.json<{osds: {osd: number; up: number; in: number}[]}>({tool: 'ceph', args: ['osd', 'dump']}),
    cli.json<{nodes: {name: string; type: string; children?: number[]}[]}>({tool: 'ceph', args: ['osd', 'tree']}),
  ])
  // The CRUSH host (what drain and update go by), else the host the OSD reported.
  const crushHost = new Map(tree.nodes.filter((n) => n.type === 'host').flatMap((h) => (h.children ?? []).map((id) => [id, h.name] as const)))
  return dump.osds
    .map((o) => {
      const meta = metadata.find((m) => m.id === o.osd)
      const use = df.nodes.find((n) => n.id === o.osd)
      return {
        osd: o.osd,
        host: crushHost.get(o.osd) ?? meta?.hostname ?? '',
        devices: (meta?.devices ?? '').split(',').filter(Boolean),
        objectstore: meta?.osd_objectstore ?? '',
        sizeBytes: (use?.kb ?? 0) * 1024,
        usedBytes: (use?.kb_used ?? 0) * 1024,
        usedPercent: Math.round((use?.utilization ?? 0) * 10) / 10,
        pgs: use?.pgs ?? 0,
        up: o.up === 1,
        in: o.in === 1,
      }
    })
    .sort((a, b) => a.host.localeCompare(b.host) || a.osd - b.osd)
}
