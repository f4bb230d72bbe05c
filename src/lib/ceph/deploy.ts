/**
 * What forming a Ceph cluster runs on a node, per backend, as command lines decided before any of
 * them runs (the lines --dry-run prints are the ones a real run executes). Pure: no SSH here.
 *
 * Debian's packages (`ceph`): the manual deployment of Ceph's own documentation (Pacific,
 * "Manual Deployment" and "Adding/Removing Monitors"): keyrings made with ceph-authtool on the
 * node, a monmap, `ceph-mon --mkfs` as the ceph user, then Debian's systemd units.
 * MicroCeph (`microceph`): its own CLI, which does all of the above itself.
 */
import {renderTemplate} from '../render/template.js'
import {shellQuote} from '../ssh/shell.js'

/** Debian's packages a monitor node needs (ceph-common, with the ceph CLI, comes with them). */
export const CEPH_PACKAGES = ['ceph-mon', 'ceph-mgr', 'ceph-osd'] as const

export const CEPH_CONF = '/etc/ceph/ceph.conf'
export const ADMIN_KEYRING = '/etc/ceph/ceph.client.admin.keyring'
export const BOOTSTRAP_OSD_KEYRING = '/var/lib/ceph/bootstrap-osd/ceph.keyring'
/** Made on the node for `ceph-mon --mkfs` only, and removed after it: it holds the mon. secret. */
const MON_KEYRING = '/var/lib/ceph/tmp/ceph.mon.keyring'
const MONMAP = '/var/lib/ceph/tmp/monmap'
const TMP_DIR_LINE = 'install -d -o ceph -g ceph -m 750 /var/lib/ceph/tmp'

export const monDataDir = (id: string): string => `/var/lib/ceph/mon/ceph-${id}`
export const mgrDataDir = (id: string): string => `/var/lib/ceph/mgr/ceph-${id}`
/** `ceph-mon --mkfs` writes this file last but one (then store.db): its presence means the mon exists. */
export const monKeyring = (id: string): string => `${monDataDir(id)}/keyring`
export const mgrKeyring = (id: string): string => `${mgrDataDir(id)}/keyring`
export const monUnit = (id: string): string => `ceph-mon@${id}`
export const mgrUnit = (id: string): string => `ceph-mgr@${id}`

/** A monitor: its id (the node's name) and its address on the cluster LAN. */
export interface CephMon {
  name: string
  ip: string
}

/** A monitor's addresses as Nautilus and later write them: msgr2 on 3300, the legacy protocol on 6789. */
export const monAddressVector = (ip: string): string => `[v2:${ip}:3300,v1:${ip}:6789]`

/** /etc/ceph/ceph.conf of every member (templates/ceph/ceph.conf). */
export function renderCephConf(fsid: string, mons: readonly CephMon[], publicNetwork: string): string {
  return renderTemplate('ceph/ceph.conf', {fsid, monHost: mons.map((m) => monAddressVector(m.ip)).join(','), publicNetwork})
}

/** The fsid a ceph.conf names, if any (a bootstrap cut short keeps the one it chose). */
export function confFsid(conf: string): string | undefined {
  return /^\s*fsid\s*=\s*([0-9a-f-]{36})\s*$/im.exec(conf)?.[1]
}

const q = shellQuote

/** The admin keyring of a new cluster, made on the node (its key never leaves it here). */
export function adminKeyringLines(): string[] {
  return [`ceph-authtool --create-keyring ${ADMIN_KEYRING} --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'`, `chmod 600 ${ADMIN_KEYRING}`]
}

/** The key `ceph-volume` creates OSDs with (`ceph disk add`), made on the node. */
export function bootstrapOsdKeyringLines(): string[] {
  return [
    `install -d -o ceph -g ceph -m 750 /var/lib/ceph/bootstrap-osd`,
    `ceph-authtool --create-keyring ${BOOTSTRAP_OSD_KEYRING} --gen-key -n client.bootstrap-osd --cap mon 'profile bootstrap-osd' --cap mgr 'allow r'`,
    `chmod 600 ${BOOTSTRAP_OSD_KEYRING}`,
  ]
}

/** The first monitor: its keyring with the others imported, a monmap of itself, its store. */
export function firstMonLines(mon: CephMon, fsid: string): string[] {
  return [
    TMP_DIR_LINE,
    `ceph-authtool --create-keyring ${MON_KEYRING} --gen-key -n mon. --cap mon 'allow *'`,
    `ceph-authtool ${MON_KEYRING} --import-keyring ${ADMIN_KEYRING}`,
    `ceph-authtool ${MON_KEYRING} --import-keyring ${BOOTSTRAP_OSD_KEYRING}`,
    `monmaptool --create --clobber --addv ${q(mon.name)} ${q(monAddressVector(mon.ip))} --fsid ${q(fsid)} ${MONMAP}`,
    ...mkfsLines(mon.name),
  ]
}

/** A monitor joining a running cluster: the current monmap and mon. key from the cluster, then its store. */
export function joiningMonLines(name: string): string[] {
  return [TMP_DIR_LINE, `ceph mon getmap -o ${MONMAP}`, `ceph auth get mon. -o ${MON_KEYRING}`, ...mkfsLines(name)]
}

function mkfsLines(name: string): string[] {
  return [
    `chown ceph:ceph ${MON_KEYRING} ${MONMAP}`,
    `install -d -o ceph -g ceph -m 750 ${q(monDataDir(name))}`,
    `runuser -u ceph -- ceph-mon --mkfs -i ${q(name)} --monmap ${MONMAP} --keyring ${MON_KEYRING}`,
    `rm -f ${MON_KEYRING} ${MONMAP}`,
  ]
}

/** A manager beside each monitor: its key from the cluster, written to its data dir only (-o). */
export function mgrLines(name: string): string[] {
  return [
    `install -d -o ceph -g ceph -m 750 ${q(mgrDataDir(name))}`,
    `ceph auth get-or-create ${q(`mgr.${name}`)} mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o ${q(mgrKeyring(name))}`,
    `chown ceph:ceph ${q(mgrKeyring(name))}`,
  ]
}

export const enableLine = (unit: string): string => `systemctl enable --now ${q(unit)}`

/**
 * A monitor leaving (`ceph leave`), as "Adding/Removing Monitors" describes it, in the order a
 * cluster of two can survive: out of the monmap first, while its monitor still answers (stopped
 * first, one of two would be no majority and `mon remove` could not pass), then its units
 * stopped and its stores deleted (a removed monitor's store must never start and come back with
 * an old map), and its manager's key deleted.
 */
export const monRemoveLine = (name: string): string => `ceph mon remove ${q(name)}`
export const disableLine = (units: readonly string[]): string => `systemctl disable --now ${units.map(q).join(' ')}`
export const removeDirsLine = (dirs: readonly string[]): string => `rm -rf ${dirs.map(q).join(' ')}`
export const mgrAuthDelLine = (name: string): string => `ceph auth del ${q(`mgr.${name}`)}`
/** Whether the manager's key exists, its exit status only: the key itself stays on the node. */
export const mgrAuthExistsLine = (name: string): string => `ceph auth get ${q(`mgr.${name}`)} >/dev/null 2>&1`

/** What `ceph mon dump --format json` says of the monmap. */
export interface CephMonmapJson {
  mons?: {name?: string}[]
}

export const monmapNames = (raw: CephMonmapJson): string[] => (raw.mons ?? []).map((m) => m.name ?? '').filter((n) => n !== '')

/**
 * MicroCeph's CLI, as documented:
 * https://documentation.ubuntu.com/microceph/latest/snap/reference/commands/cluster/
 * (`cluster bootstrap` with --mon-ip and --public-network, `cluster add <NAME>` printing the join
 * token, `cluster join <TOKEN>`, `cluster list`, `cluster remove <NAME>`) and the install how-to,
 * https://documentation.ubuntu.com/microcloud/latest/microceph/how-to/single-node
 * (`snap install microceph`, then `snap refresh --hold microceph`: no unplanned Ceph upgrade).
 */
export const microceph = {
  install: ['snap install microceph', 'snap refresh --hold microceph'],
  /** Succeeds once this node belongs to a MicroCeph cluster. */
  member: 'microceph cluster list',
  bootstrap: (mon: CephMon, publicNetwork: string): string => `microceph cluster bootstrap --mon-ip ${q(mon.ip)} --public-network ${q(publicNetwork)}`,
  /** Run on a member: prints the token that lets `name` join (a secret: never shown). */
  add: (name: string): string => `microceph cluster add ${q(name)}`,
  join: (token: string): string => `microceph cluster join ${q(token)}`,
  /** Run on a remaining member: takes the node out of the cluster, its monitor and manager with it. */
  remove: (name: string): string => `microceph cluster remove ${q(name)}`,
  /** How a plan shows the join: the token is a secret. */
  joinShown: 'microceph cluster join <token from microceph cluster add>',
}

/** Whether `microceph cluster list` (a table, a row per member: `| NAME | ADDRESS | ROLE | ...`) names the node. */
export function microcephListsMember(list: string, name: string): boolean {
  return list.split('\n').some((row) => row.split('|')[1]?.trim() === name)
}

/** What `ceph -s --format json` says of the monitors and managers (Pacific 16.2). */
export interface CephQuorumJson {
  fsid?: string
  quorum_names?: string[]
  monmap?: {num_mons?: number}
  mgrmap?: {available?: boolean; num_standbys?: number}
}

export interface CephQuorum {
  fsid: string
  quorum: string[]
  mons: number
  mgrAvailable: boolean
  mgrStandbys: number
}

export function parseQuorum(raw: CephQuorumJson): CephQuorum {
  return {
    fsid: raw.fsid ?? '',
    quorum: [...(raw.quorum_names ?? [])].sort(),
    mons: raw.monmap?.num_mons ?? 0,
    mgrAvailable: raw.mgrmap?.available === true,
    mgrStandbys: raw.mgrmap?.num_standbys ?? 0,
  }
}

/**
 * Whether the monmap holds exactly the named monitors, all in quorum, and the manager beside each
 * is up: one active, the others standing by (a new standby registers a moment after it starts).
 */
export const formed = (q: CephQuorum, mons: readonly string[]): boolean => q.mgrAvailable && q.mgrStandbys + 1 >= mons.length && q.mons === mons.length && mons.every((m) => q.quorum.includes(m))
