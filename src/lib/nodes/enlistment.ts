import type {Lease} from '../dhcp/lease.js'
import type {EtcdStore, Transaction} from '../etcd/store.js'
import type {NodeRecord} from './record.js'
import {fingerprintOfPublicKey} from '../ssh/fingerprint.js'
import {HostKeyStore} from '../ssh/host-key-store.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'

/**
 * Enlistment (MAAS's commissioning report, reduced to what SSH trust needs): a freshly installed
 * node sends its SSH host public keys to the cluster's DHCP leader, which stores them for the MAC
 * leased the sender's address. `node add` then pins them instead of trusting whatever key answers
 * its first connection.
 *
 * What makes a report believable: it comes over TCP from the address DHCP leased to that MAC
 * right now (a sender cannot choose its source address and still get the answer), and only the
 * first one counts, so a machine that shows up later with the same MAC cannot replace the keys.
 * An impostor would have to answer DHCP with the node's MAC and report before the node itself:
 * the window between a node's first lease and its first boot, as with MAAS.
 */
export interface EnlistedHostKey {
  type: string
  fingerprint: string
}

/** The value under KeySchema.enlisted(mac). */
export interface EnlistmentRecord {
  mac: string
  /** The address it reported from: the one leased to the MAC then. */
  ip: string
  hostKeys: EnlistedHostKey[]
  reportedAt: string
  /** The DHCP server that took the report. */
  receivedBy: string
}

/** Why a report was refused (an HTTP status and a message for the node's log). */
export class EnlistmentRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/** Host key types a node may report: what OpenSSH's sshd generates. */
const HOST_KEY_TYPES = new Set(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'])

/**
 * The report's body: the node's /etc/ssh/ssh_host_*_key.pub lines, one per line (comments and
 * blank lines ignored). Every line must be a host public key of a known type; at least one.
 */
export function parseEnlistmentReport(body: string): EnlistedHostKey[] {
  if (Buffer.byteLength(body) > settings.enlistment.maxReportBytes) throw new EnlistmentRefused(413, `the report is larger than ${settings.enlistment.maxReportBytes} bytes`)
  const lines = body
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  if (lines.length === 0) throw new EnlistmentRefused(400, 'the report names no host key: send the lines of /etc/ssh/ssh_host_*_key.pub')
  if (lines.length > settings.enlistment.maxHostKeys) throw new EnlistmentRefused(400, `the report names ${lines.length} keys; a node has at most ${settings.enlistment.maxHostKeys}`)
  const keys: EnlistedHostKey[] = []
  for (const [i, line] of lines.entries()) {
    const type = line.split(/\s+/)[0] as string
    if (!HOST_KEY_TYPES.has(type)) throw new EnlistmentRefused(400, `line ${i + 1}: "${type.slice(0, 40)}" is not an SSH host key type`)
    let fingerprint: string
    try {
      fingerprint = fingerprintOfPublicKey(line)
    } catch {
      throw new EnlistmentRefused(400, `line ${i + 1}: not an OpenSSH public key line`)
    }
    if (!keys.some((k) => k.fingerprint === fingerprint)) keys.push({type, fingerprint})
  }
  return keys
}

export type EnlistmentOutcome = {kind: 'recorded'; record: EnlistmentRecord} | {kind: 'unchanged'; record: EnlistmentRecord}

/**
 * Records a report that arrived from `sourceIp`, in one transaction guarded by `fence` (the DHCP
 * leader's token): the lease on that address must be bound, unexpired and unchanged since read,
 * and the MAC must not have enlisted before. A repeat of the same keys is `unchanged`; different
 * keys are refused (409) and nothing is written.
 */
export async function recordEnlistment(
  store: EtcdStore,
  report: {sourceIp: string; body: string; receivedBy: string},
  fence: (txn: Transaction) => void,
  now = Date.now(),
): Promise<EnlistmentOutcome> {
  const hostKeys = parseEnlistmentReport(report.body)
  const leaseRow = await store.getJson<Lease>(store.keys.lease(report.sourceIp))
  const lease = leaseRow?.value
  if (!leaseRow || !lease || lease.state !== 'bound' || Date.parse(lease.expiresAt) <= now) {
    throw new EnlistmentRefused(403, `${report.sourceIp} holds no DHCP lease from this cluster: enlist from the address DHCP gave this machine`)
  }
  const key = store.keys.enlisted(lease.mac)
  const record: EnlistmentRecord = {mac: lease.mac, ip: report.sourceIp, hostKeys, reportedAt: new Date(now).toISOString(), receivedBy: report.receivedBy}
  const txn = store.transaction().ifAbsent(key).ifUnchanged(store.keys.lease(report.sourceIp), leaseRow.modRevision).put(key, record)
  fence(txn)
  if (await txn.commit()) return {kind: 'recorded', record}
  const existing = await readEnlistment(store, lease.mac)
  if (!existing) throw new EnlistmentRefused(503, 'the report could not be stored (the lease changed, or this server stopped leading DHCP): send it again')
  const same = existing.hostKeys.length === hostKeys.length && hostKeys.every((k) => existing.hostKeys.some((e) => e.fingerprint === k.fingerprint))
  if (same) return {kind: 'unchanged', record: existing}
  throw new EnlistmentRefused(
    409,
    `${lease.mac} enlisted on ${existing.reportedAt} with other host keys, and the first report stands; if this machine was reinstalled, an operator checks its key on the console and runs xcluster node repin`,
  )
}

export async function readEnlistment(store: EtcdStore, mac: string): Promise<EnlistmentRecord | undefined> {
  return (await store.getJson<EnlistmentRecord>(store.keys.enlisted(mac)))?.value
}

/**
 * Before a node's first connection: pins the host keys it enlisted with, when nothing is pinned
 * for it yet. Returns the fingerprints pinned (or, with `dryRun`, that would be); none when the
 * node has a pin already or never enlisted.
 */
export async function pinEnlistedHostKeys(store: EtcdStore, node: NodeRecord, dryRun: boolean): Promise<string[]> {
  const pins = new HostKeyStore(store)
  if (await pins.get(node.name)) return []
  const enlisted = await readEnlistment(store, node.mac)
  if (!enlisted) return []
  const fingerprints = enlisted.hostKeys.map((k) => k.fingerprint)
  if (!dryRun) await pins.pin(node.name, fingerprints, 'enlistment')
  return fingerprints
}

/**
 * The node's side: templates/node/enlist.sh for this cluster. With the cluster's SSH public key,
 * the script also authorizes it for the spec's SSH user, as the installer authorized the
 * operator's: what lets the cluster provision the machine by itself (autoProvision).
 */
export function renderEnlistScript(spec: ClusterSpec, clusterPublicKey?: string): string {
  if (clusterPublicKey !== undefined && !/^ssh-[a-z0-9-]+ [A-Za-z0-9+/=]+( [A-Za-z0-9@._+:=/ -]*)?$/.test(clusterPublicKey))
    throw new Error('the cluster SSH public key is not one OpenSSH public key line')
  return renderTemplate('node/enlist.sh', {
    cluster: spec.cluster,
    port: settings.enlistment.port,
    path: settings.enlistment.path,
    clusterKey: clusterPublicKey ?? false,
    sshUser: spec.ssh.user,
  })
}
