/**
 * A disk for Ceph: what the device holds (read with the kernel's and libblkid's own views:
 * lsblk and `wipefs -n`, neither needing udev), whether xcluster may take it, and the LVM and
 * OSD commands that make it an OSD: a PV, a VG of its own, one LV over all of it, then the
 * backend's own OSD creation on that LV (`microceph disk add` or `ceph-volume lvm create`).
 */
import {basename} from 'node:path'

import {ExitStatus, usageError, XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {shellQuote} from '../ssh/shell.js'
import type {CephBackend, CephCli} from './cli.js'

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
