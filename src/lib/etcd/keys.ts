/**
 * The etcd key schema. This module is the only place that builds key strings: everything else
 * asks it for a key, so the layout can be read (and changed) in one file.
 *
 *   /xcluster/<cluster>/spec                    the current spec: which generation, its size and digest
 *                                               (before generations: the spec itself, still read)
 *   /xcluster/<cluster>/spec/parts/<gen>/<n>    the spec of generation <gen>, in parts of bounded size;
 *                                               staged under the apply's lease until `spec` names <gen>
 *   /xcluster/<cluster>/spec/fold               present while the current generation's node records and
 *                                               MAC bindings are still being written (readers overlay them)
 *   /xcluster/<cluster>/spec/apply              the running config apply's claim (under its lease)
 *   /xcluster/<cluster>/nodes/<name>            node record
 *   /xcluster/<cluster>/macs/<mac>              MAC -> node name
 *   /xcluster/<cluster>/hostkeys/<name>         pinned SSH host key fingerprints
 *   /xcluster/<cluster>/dhcp/leases/<ip>        DHCP lease (create-only per IP)
 *   /xcluster/<cluster>/dhcp/by-mac/<mac>       MAC -> its lease's IP (written with the lease)
 *   /xcluster/<cluster>/dhcp/discovered/<mac>   unknown MACs seen on the wire
 *   /xcluster/<cluster>/dhcp/enlisted/<mac>     a node's own first report of its SSH host keys
 *   /xcluster/<cluster>/election/<service>/leader              leader (create revision = token)
 *   /xcluster/<cluster>/election/<service>/candidates/<node>   live candidates (leased)
 *   /xcluster/<cluster>/election/<service>/views/<node>        each daemon's view (leased)
 *   /xcluster/<cluster>/election/<service>/history/<token>-<e> leadership changes (bounded)
 *   /xcluster/<cluster>/election/<service>/handover            resign / transfer request
 *   /xcluster/<cluster>/election/<service>/fence               the leader's fence of its rbdImage: image, token,
 *                                                              blocklisted addresses, broken locks, the lock holder
 *   /xcluster/<cluster>/runs/<id>               task-list runs (audit record)
 *   /xcluster/<cluster>/checkpoints/<id>/<phase>/<host>   finished steps of a run (--resume)
 *   /xcluster/<cluster>/run-locks/<id>          held (leased) while a process runs the run
 *   /xcluster/<cluster>/certs/ca                the cluster CA: certificate, key sealed (never in clear)
 *   /xcluster/<cluster>/certs/ca-previous       during `cert ca rotate`: the CA being retired, still trusted
 *   /xcluster/<cluster>/certs/issued/<name>     issued certificates: certificate, key sealed if kept
 *   /xcluster/<cluster>/certs/revoked/<serial>  revoked serials: name, when, why (what the CRL lists)
 *   /xcluster/<cluster>/certs/crl               the CA-signed revocation list (PEM) and its number
 *   /xcluster/<cluster>/certs/acme/accounts/<id>       an ACME account per directory (<id>: digest of its URL),
 *                                                      its key sealed; written once its first certificate is issued
 *   /xcluster/<cluster>/certs/acme/challenges/<token>  an HTTP-01 key authorization while its order runs (leased,
 *                                                      10 min); what every serve --acme-http answers from
 *   /xcluster/<cluster>/frontends/<name>        a public endpoint (`frontend expose`): target, public port,
 *                                               certificate name, tunnel port and its Rathole token
 *   /xcluster/<cluster>/ceph/cluster            the Ceph cluster xcluster formed (`ceph bootstrap`, `ceph join`):
 *                                               backend, fsid, monitor nodes; no key (keyrings stay on the nodes)
 */
import {ExitStatus, XclusterError} from '../errors.js'

export const ROOT = '/xcluster'

export type DhcpStateKey =
  {kind: 'spec'} | {kind: 'node'; name: string} | {kind: 'mac'; mac: string} | {kind: 'lease'; ip: string} | {kind: 'leaseByMac'; mac: string} | {kind: 'discovered'; mac: string}

const NAME = /^[a-z0-9][a-z0-9._-]*$/
export const ACME_TOKEN = /^[A-Za-z0-9_-]{1,256}$/

/** A name that cannot be part of a key is the operator's input to fix: a usage error. */
function segment(kind: string, value: string): string {
  if (!NAME.test(value)) {
    throw new XclusterError(`Invalid ${kind}: ${JSON.stringify(value)}.`, {
      code: 'NAME_INVALID',
      exit: ExitStatus.usage,
      suggestion: `A ${kind} is lower-case letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. ${kind === 'cluster name' ? 'xcluster' : 'c1'}).`,
    })
  }
  return value
}

export class KeySchema {
  readonly prefix: string

  constructor(readonly cluster: string) {
    this.prefix = `${ROOT}/${segment('cluster name', cluster)}/`
  }

  /** The spec pointer (src/lib/spec/generation.ts). */
  spec(): string {
    return `${this.prefix}spec`
  }

  /** The pointer and everything under it (parts, fold, claim): one range read gets them all. */
  specFamilyPrefix(): string {
    return this.spec()
  }

  specPartsPrefix(): string {
    return `${this.spec()}/parts/`
  }

  specGenerationPrefix(generation: string): string {
    return `${this.specPartsPrefix()}${segment('generation', generation)}/`
  }

  /** Zero-padded, so key order is part order. */
  specPart(generation: string, index: number): string {
    return `${this.specGenerationPrefix(generation)}${String(index).padStart(4, '0')}`
  }

  /** The generation and index a key under specPartsPrefix() stands for. */
  specPartFromKey(key: string): {generation: string; index: number} | undefined {
    if (!key.startsWith(this.specPartsPrefix())) return undefined
    const [generation, index] = key.slice(this.specPartsPrefix().length).split('/')
    return generation && index ? {generation, index: Number(index)} : undefined
  }

  /** Exists while a generation's node records and MAC bindings are not all written yet. */
  specFold(): string {
    return `${this.spec()}/fold`
  }

  /** Held, under the applying process's lease, while a config apply stages and commits. */
  specApplyClaim(): string {
    return `${this.spec()}/apply`
  }

  nodesPrefix(): string {
    return `${this.prefix}nodes/`
  }

  node(name: string): string {
    return `${this.nodesPrefix()}${segment('node name', name)}`
  }

  nodeFromKey(key: string): string {
    return key.slice(this.nodesPrefix().length)
  }

  macsPrefix(): string {
    return `${this.prefix}macs/`
  }

  /** MACs are stored lower-case with colons: the canonical form used everywhere. */
  mac(mac: string): string {
    return `${this.macsPrefix()}${segment('MAC', mac.toLowerCase().replaceAll(':', '-'))}`
  }

  macFromKey(key: string): string {
    return key.slice(this.macsPrefix().length).replaceAll('-', ':')
  }

  hostKeysPrefix(): string {
    return `${this.prefix}hostkeys/`
  }

  hostKey(name: string): string {
    return `${this.hostKeysPrefix()}${segment('node name', name)}`
  }

  /** Everything the DHCP server writes: leases, their MAC index, discovered MACs. */
  dhcpPrefix(): string {
    return `${this.prefix}dhcp/`
  }

  leasesPrefix(): string {
    return `${this.dhcpPrefix()}leases/`
  }

  lease(ip: string): string {
    return `${this.leasesPrefix()}${segment('IP', ip)}`
  }

  leasesByMacPrefix(): string {
    return `${this.dhcpPrefix()}by-mac/`
  }

  /** The MAC's current lease IP: lets a renewal find its lease without scanning every lease. */
  leaseByMac(mac: string): string {
    return `${this.leasesByMacPrefix()}${segment('MAC', mac.toLowerCase().replaceAll(':', '-'))}`
  }

  discoveredPrefix(): string {
    return `${this.dhcpPrefix()}discovered/`
  }

  discovered(mac: string): string {
    return `${this.discoveredPrefix()}${segment('MAC', mac.toLowerCase().replaceAll(':', '-'))}`
  }

  enlistedPrefix(): string {
    return `${this.dhcpPrefix()}enlisted/`
  }

  /**
   * A node's enlistment: the host keys it reported from the address leased to this MAC, written
   * once by the DHCP leader (src/lib/nodes/enlistment.ts).
   */
  enlisted(mac: string): string {
    return `${this.enlistedPrefix()}${segment('MAC', mac.toLowerCase().replaceAll(':', '-'))}`
  }

  /** The prefixes whose keys DhcpStateKey describes (spec, nodes, MACs, DHCP). */
  dhcpStatePrefixes(): string[] {
    return [this.specFamilyPrefix(), this.nodesPrefix(), this.macsPrefix(), this.dhcpPrefix()]
  }

  /** What a key is, for the DHCP server's cache; undefined for keys it does not follow. */
  dhcpStateKey(key: string): DhcpStateKey | undefined {
    // The pointer, its parts, the fold marker and the claim: the spec as a whole.
    if (key.startsWith(this.specFamilyPrefix())) return {kind: 'spec'}
    const tail = (prefix: string): string | undefined => (key.startsWith(prefix) ? key.slice(prefix.length) : undefined)
    const mac = (k: string): string => k.replaceAll('-', ':')
    let rest: string | undefined
    if ((rest = tail(this.nodesPrefix())) !== undefined) return {kind: 'node', name: rest}
    if ((rest = tail(this.macsPrefix())) !== undefined) return {kind: 'mac', mac: mac(rest)}
    if ((rest = tail(this.leasesPrefix())) !== undefined) return {kind: 'lease', ip: rest}
    if ((rest = tail(this.leasesByMacPrefix())) !== undefined) return {kind: 'leaseByMac', mac: mac(rest)}
    if ((rest = tail(this.discoveredPrefix())) !== undefined) return {kind: 'discovered', mac: mac(rest)}
    return undefined
  }

  electionsPrefix(): string {
    return `${this.prefix}election/`
  }

  electionPrefix(service: string): string {
    return `${this.electionsPrefix()}${segment('service', service)}/`
  }

  serviceFromElectionKey(key: string): string {
    return key.slice(this.electionsPrefix().length).split('/')[0] ?? ''
  }

  /** The leader key: held under the leader's lease; its create revision is the fencing token. */
  electionLeader(service: string): string {
    return `${this.electionPrefix(service)}leader`
  }

  electionCandidatesPrefix(service: string): string {
    return `${this.electionPrefix(service)}candidates/`
  }

  /** One per campaigning daemon, under its lease: the live candidates. */
  electionCandidate(service: string, node: string): string {
    return `${this.electionCandidatesPrefix(service)}${segment('node name', node)}`
  }

  electionViewsPrefix(service: string): string {
    return `${this.electionPrefix(service)}views/`
  }

  /** What one daemon believes (leader, token), under its lease: compared by `election check`. */
  electionView(service: string, node: string): string {
    return `${this.electionViewsPrefix(service)}${segment('node name', node)}`
  }

  electionHistoryPrefix(service: string): string {
    return `${this.electionPrefix(service)}history/`
  }

  /** Zero-padded token first, so key order is the order of leadership. */
  electionHistory(service: string, token: string, event: string): string {
    return `${this.electionHistoryPrefix(service)}${segment('token', token.padStart(20, '0'))}-${segment('event', event)}`
  }

  /** A pending resign or transfer request addressed to the leader holding `token`. */
  electionHandover(service: string): string {
    return `${this.electionPrefix(service)}handover`
  }

  /** What the latest leader did to fence its service's RBD image (written under its token). */
  electionFence(service: string): string {
    return `${this.electionPrefix(service)}fence`
  }

  runsPrefix(): string {
    return `${this.prefix}runs/`
  }

  run(id: string): string {
    return `${this.runsPrefix()}${segment('run id', id)}`
  }

  /** One key per finished (phase, host): parallel hosts never race on a shared record. */
  runCheckpointsPrefix(id: string): string {
    return `${this.prefix}checkpoints/${segment('run id', id)}/`
  }

  runCheckpoint(id: string, phase: string, host: string): string {
    return `${this.runCheckpointsPrefix(id)}${segment('phase', phase)}/${segment('host', host)}`
  }

  /** The (phase, host) a key under runCheckpointsPrefix(id) stands for. */
  parseRunCheckpoint(id: string, key: string): {phase: string; host: string} {
    const [phase, host] = key.slice(this.runCheckpointsPrefix(id).length).split('/')
    return {phase, host}
  }

  /** Exists, under the running process's lease, while a run is being run: a resume elsewhere is refused. */
  runLock(id: string): string {
    return `${this.prefix}run-locks/${segment('run id', id)}`
  }

  certsPrefix(): string {
    return `${this.prefix}certs/`
  }

  /** The cluster CA: its certificate and its private key sealed under the cluster secret. */
  certAuthority(): string {
    return `${this.certsPrefix()}ca`
  }

  /** The CA a rotation retires: trusted beside the new one until `cert ca rotate --finish`. */
  previousCertAuthority(): string {
    return `${this.certsPrefix()}ca-previous`
  }

  issuedCertsPrefix(): string {
    return `${this.certsPrefix()}issued/`
  }

  issuedCert(name: string): string {
    return `${this.issuedCertsPrefix()}${segment('certificate name', name)}`
  }

  acmeAccountsPrefix(): string {
    return `${this.certsPrefix()}acme/accounts/`
  }

  /** `id` is a digest of the directory URL (src/lib/certs/acme.ts): one account per ACME CA. */
  acmeAccount(id: string): string {
    return `${this.acmeAccountsPrefix()}${segment('ACME account id', id)}`
  }

  acmeChallengesPrefix(): string {
    return `${this.certsPrefix()}acme/challenges/`
  }

  /** An ACME token is base64url (RFC 8555 section 8.3): upper-case letters too, unlike other segments. */
  acmeChallenge(token: string): string {
    if (!ACME_TOKEN.test(token)) {
      throw new XclusterError(`Invalid ACME challenge token: ${JSON.stringify(token)}.`, {
        code: 'NAME_INVALID',
        exit: ExitStatus.usage,
        suggestion: 'A token is 1 to 256 base64url characters (A-Z, a-z, 0-9, _ and -).',
      })
    }
    return `${this.acmeChallengesPrefix()}${token}`
  }

  revokedCertsPrefix(): string {
    return `${this.certsPrefix()}revoked/`
  }

  revokedCert(serial: string): string {
    return `${this.revokedCertsPrefix()}${segment('certificate serial', serial)}`
  }

  /** The revocation list the CA signed last: PEM, number, this and next update. */
  certRevocationList(): string {
    return `${this.certsPrefix()}crl`
  }

  frontendsPrefix(): string {
    return `${this.prefix}frontends/`
  }

  frontend(name: string): string {
    return `${this.frontendsPrefix()}${segment('frontend name', name)}`
  }

  /** The Ceph cluster `ceph bootstrap` formed and the nodes `ceph join` added to it. */
  cephCluster(): string {
    return `${this.prefix}ceph/cluster`
  }
}
