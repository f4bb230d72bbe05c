import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync} from 'node:fs'
import {basename, dirname, resolve} from 'node:path'

import type {ISnapshotResponse} from 'etcd3'
import {Listr, ListrLogger, ProcessOutput} from 'listr2'

import {ExitStatus, preconditionError, usageError, XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import {humanBytes, inspectEtcdCluster, withMemberEndpoint, type EtcdClusterState} from './maintenance.js'
import type {EtcdConnection} from './store.js'

/**
 * etcd snapshots, saved and restored. A snapshot from etcd's Maintenance.Snapshot API is the
 * member's bolt database followed by the SHA-256 of it (32 bytes): that embedded hash is checked
 * on every save and restore, and a `FILE.sha256` sidecar (sha256sum format, of the whole file)
 * is written beside it, so a file changed after it was saved is refused too. `etcdctl snapshot
 * status` (Debian etcd-client) reads the database itself: its revision and key count.
 */

/** What a checked snapshot file holds. */
export interface SnapshotFacts {
  file: string
  bytes: number
  /** SHA-256 of the whole file (what FILE.sha256 holds). */
  sha256: string
  /** The revision of the keyspace it holds, and its keys (all buckets), as etcdctl reads them; null without etcdctl. */
  revision: number | null
  keys: number | null
  /** Which checks passed: the embedded hash always; the sidecar when there is one; etcdctl's read when it ran. */
  checks: {embeddedSha256: true; sidecar: 'matched' | 'absent'; etcdctl: boolean}
}

export type SnapshotProgress = 'live' | 'plain' | 'silent'

export interface SnapshotSaveResult extends SnapshotFacts {
  sha256File: string
  /** The member it was streamed from, and the endpoint used. */
  member: string
  endpoint: string
  seconds: number
}

/** The member data dir an offline restore creates (the flags of `etcdctl snapshot restore`). */
export interface OfflineMemberTarget {
  dataDir: string
  name: string
  initialCluster: string
  initialAdvertisePeerUrls: string
  initialClusterToken: string
}

export interface RestoreResult {
  snapshot: SnapshotFacts
  target: OfflineMemberTarget
  /** What the cluster's endpoints answered when the restore was planned. */
  cluster: {endpoints: string[]; running: boolean; healthyMembers: string[]}
  dryRun: boolean
  /** What the restore does (or, in a dry run, would do), in order. */
  steps: string[]
  /** What the operator does next, on this member and on the others. */
  nextSteps: string[]
  restored: boolean
}

export interface RestorePlan {
  result: RestoreResult
  commit(): Promise<RestoreResult>
}

const sidecarOf = (file: string): string => `${file}.sha256`
const HASH_BYTES = 32
/** bolt pages are multiples of 512 bytes: a snapshot with its hash is 32 bytes past one (etcd's own test). */
const hasEmbeddedHash = (size: number): boolean => size > HASH_BYTES && size % 512 === HASH_BYTES

function corrupt(file: string, why: string, details?: unknown): XclusterError {
  return new XclusterError(`Snapshot ${file} is corrupt: ${why}. Nothing was written.`, {
    code: 'SNAPSHOT_CORRUPT',
    exit: ExitStatus.precondition,
    suggestion: 'Use another copy of the snapshot (or save a new one from a healthy cluster with: xcluster etcd snapshot save FILE).',
    details,
  })
}

/** The hash in a sha256sum-format line ("<hex>  <name>"), or undefined when the file holds none. */
function readSidecar(file: string): string | undefined {
  const text = readFileSync(file, 'utf8')
  return /^([0-9a-f]{64})\b/i.exec(text.trim())?.[1]?.toLowerCase()
}

/** One pass over the file: SHA-256 of the whole file, and whether its embedded hash matches the rest. */
function hashFile(file: string, size: number): {sha256: string; embeddedOk: boolean} {
  const whole = createHash('sha256')
  const body = createHash('sha256')
  const trailer = Buffer.alloc(HASH_BYTES)
  const bodyBytes = size - HASH_BYTES
  const buf = Buffer.alloc(1024 * 1024)
  const fd = openSync(file, 'r')
  try {
    let at = 0
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, at)
      if (n === 0) break
      const chunk = buf.subarray(0, n)
      whole.update(chunk)
      if (at < bodyBytes) body.update(chunk.subarray(0, Math.min(n, bodyBytes - at)))
      if (at + n > bodyBytes) {
        const from = Math.max(0, bodyBytes - at)
        chunk.copy(trailer, at + from - bodyBytes, from)
      }
      at += n
    }
    if (at !== size) throw corrupt(file, `it changed while being read (${at} of ${size} bytes)`)
  } finally {
    closeSync(fd)
  }
  return {sha256: whole.digest('hex'), embeddedOk: body.digest().equals(trailer)}
}

function etcdctlMissing(): XclusterError {
  return preconditionError(
    'ETCDCTL_MISSING',
    `${settings.etcdMaintenance.etcdctl} was not found: it reads a snapshot's database and restores a member's data dir.`,
    'Install it (Debian: apt-get install etcd-client) and run again.',
  )
}

/** Runs etcdctl (v3 API); resolves its stdout, rejects with its stderr (ENOENT: not installed). */
function etcdctl(args: string[]): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCDCTL_')))
    execFile(settings.etcdMaintenance.etcdctl, args, {env: {...env, ETCDCTL_API: '3'}, timeout: settings.etcdMaintenance.etcdctlTimeoutMs, maxBuffer: 16 * 1024 * 1024}, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') reject(etcdctlMissing())
      else if (err) reject(new Error(lastLine(stderr) || err.message))
      else resolveRun(stdout)
    })
  })
}

/** etcdctl logs JSON lines (zap); its last line is the error it exits with. */
const lastLine = (text: string): string =>
  text
    .trim()
    .split('\n')
    .filter((l) => l.trim())
    .at(-1)
    ?.replace(/^Error:\s*/, '') ?? ''

const haveEtcdctl = async (): Promise<boolean> =>
  etcdctl(['version']).then(
    () => true,
    (err) => !(err instanceof XclusterError && err.code === 'ETCDCTL_MISSING'),
  )

/** `etcdctl snapshot status FILE -w json`: the database's revision and key count (it opens the file read-only). */
async function databaseStatus(file: string): Promise<{revision: number; keys: number}> {
  const out = JSON.parse(await etcdctl(['snapshot', 'status', file, '-w', 'json'])) as {revision: number; totalKey: number}
  return {revision: Number(out.revision), keys: Number(out.totalKey)}
}

/**
 * Checks a snapshot file, reading it only: the embedded SHA-256, the sidecar when there is one
 * (`sidecar: 'ignore'` while saving, before it exists) and etcdctl's read of the database
 * (`etcdctl: 'required'` for a restore, which needs etcdctl anyway).
 */
export async function checkSnapshotFile(file: string, options: {sidecar: 'check' | 'ignore'; etcdctl: 'required' | 'if-present'}): Promise<SnapshotFacts> {
  const path = resolve(file)
  let size: number
  try {
    const st = statSync(path)
    if (!st.isFile()) throw usageError(`${file} is not a file.`, 'Give the path of a snapshot saved with: xcluster etcd snapshot save FILE')
    size = st.size
  } catch (err) {
    if (err instanceof XclusterError) throw err
    throw usageError(`No snapshot at ${file}.`, 'Give the path of a snapshot saved with: xcluster etcd snapshot save FILE')
  }
  if (!hasEmbeddedHash(size)) {
    throw corrupt(file, `its size (${size} bytes) is not a database plus etcd's 32-byte SHA-256: it is truncated, or not a snapshot saved from etcd's API`, {bytes: size})
  }
  const {sha256, embeddedOk} = hashFile(path, size)
  let sidecar: 'matched' | 'absent' = 'absent'
  if (options.sidecar === 'check' && existsSync(sidecarOf(path))) {
    const expected = readSidecar(sidecarOf(path))
    if (expected !== sha256) {
      throw corrupt(file, `its SHA-256 is ${sha256}, but ${basename(sidecarOf(path))} says ${expected ?? 'nothing readable'}: the file changed after it was saved`, {
        sha256,
        expected: expected ?? null,
      })
    }
    sidecar = 'matched'
  }
  if (!embeddedOk) throw corrupt(file, 'the SHA-256 etcd embedded at its end does not match its contents (damaged or truncated)', {sha256})
  let db: {revision: number; keys: number} | undefined
  if (options.etcdctl === 'required' || (await haveEtcdctl())) {
    try {
      db = await databaseStatus(path)
    } catch (err) {
      if (err instanceof XclusterError) throw err
      throw corrupt(file, `etcdctl cannot read its database (${(err as Error).message})`)
    }
  }
  return {file: path, bytes: size, sha256, revision: db?.revision ?? null, keys: db?.keys ?? null, checks: {embeddedSha256: true, sidecar, etcdctl: db !== undefined}}
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function listrOptions(progress: SnapshotProgress): object {
  return {
    renderer: progress === 'live' ? 'default' : progress === 'plain' ? 'simple' : 'silent',
    // Progress goes to stderr when it is not a terminal's live view: stdout stays the result.
    rendererOptions: progress === 'plain' ? {logger: new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})} : {},
    exitOnError: true,
    registerSignalListeners: false,
  }
}

/** Streams the snapshot from one member's endpoint into `part`, fsynced; resolves the bytes written. */
function streamSnapshot(connection: EtcdConnection, endpoint: string, part: string, onProgress: (written: number, total: number | null) => void): Promise<number> {
  return withMemberEndpoint(connection, endpoint, async (member) => {
    const fd = openSync(part, 'w', 0o600)
    let written = 0
    try {
      const stream = (await member.client.maintenance.snapshot()) as Awaited<ReturnType<typeof member.client.maintenance.snapshot>> & {cancel?: () => void}
      await new Promise<void>((done, fail) => {
        let idle: NodeJS.Timeout
        const touch = () => {
          clearTimeout(idle)
          idle = setTimeout(() => {
            stream.cancel?.()
            fail(new Error(`the stream sent nothing for ${settings.etcdMaintenance.snapshotIdleTimeoutMs / 1000} s`))
          }, settings.etcdMaintenance.snapshotIdleTimeoutMs)
        }
        touch()
        stream.on('data', (msg: ISnapshotResponse) => {
          touch()
          const blob = Buffer.from(msg.blob ?? [])
          let at = 0
          while (at < blob.length) at += writeSync(fd, blob, at)
          written += blob.length
          const remaining = Number(msg.remaining_bytes ?? 0)
          onProgress(written, written + remaining)
        })
        stream.on('error', (err) => {
          clearTimeout(idle)
          fail(err)
        })
        stream.on('end', () => {
          clearTimeout(idle)
          done()
        })
      })
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    return written
  })
}

/**
 * Saves a snapshot of the cluster's etcd to `file`: streamed from a healthy member into
 * FILE.part, fsynced, checked (embedded SHA-256, etcdctl's read of the database when etcdctl is
 * here), renamed into place, then FILE.sha256 written. An existing FILE is refused unless
 * `force`; a failed save leaves no FILE.part behind and FILE as it was.
 */
export async function saveSnapshot(
  connection: EtcdConnection,
  file: string,
  options: {
    force: boolean
    progress: SnapshotProgress
    /**
     * How to act as etcd's root when the connection's user may not take a snapshot (RBAC gives
     * snapshots to root alone): the operator's identity is refused, so the stream is retried as root.
     */
    asRoot?: <T>(connection: EtcdConnection, fn: (root: EtcdConnection) => Promise<T>) => Promise<T>
  },
): Promise<SnapshotSaveResult> {
  const path = resolve(file)
  if (existsSync(path) && !options.force) {
    throw preconditionError('SNAPSHOT_EXISTS', `${file} already exists; it was not replaced.`, 'Give another FILE, or replace it with --force.')
  }
  if (!existsSync(dirname(path))) throw usageError(`The directory of ${file} does not exist.`, `Create ${dirname(path)} first, or give another FILE.`)
  const part = `${path}.part`
  const started = Date.now()
  const ctx: {cluster?: EtcdClusterState; member?: string; endpoint?: string; facts?: SnapshotFacts} = {}
  const tasks = new Listr(
    [
      {
        title: 'Find a healthy etcd member',
        task: async (_: unknown, task: {title: string}) => {
          ctx.cluster = await inspectEtcdCluster(connection, {requireMemberList: true})
          // A healthy member has served a quorum read: its data is the cluster's latest.
          const source = ctx.cluster.members.find((m) => m.healthy && m.endpoint)
          if (!source?.endpoint) {
            throw preconditionError(
              'ETCD_NO_HEALTHY_MEMBER',
              `No healthy etcd member to take a snapshot from: ${ctx.cluster.members.map((m) => `${m.name || m.id}: ${m.problem}`).join('; ')}.`,
              'See xcluster etcd health; a member without quorum serves stale data, so none is used.',
            )
          }
          ctx.member = source.name
          ctx.endpoint = source.endpoint
          task.title = `Snapshot from ${source.name} (${source.endpoint})`
        },
      },
      {
        title: `Stream the snapshot to ${basename(part)}`,
        task: async (_: unknown, task: {output: string; title: string}) => {
          const stream = (via: EtcdConnection) =>
            streamSnapshot(via, ctx.endpoint!, part, (written, total) => {
              task.output = `${humanBytes(written)}${total ? ` of ${humanBytes(total)}` : ''}`
            })
          let bytes: number
          let asRoot = false
          try {
            bytes = await stream(connection)
          } catch (err) {
            if (!options.asRoot || !connection.cert || !/permission denied/i.test(String((err as Error)?.message ?? err))) throw err
            asRoot = true
            bytes = await options.asRoot(connection, stream)
          }
          task.title = `Streamed ${humanBytes(bytes)} to ${basename(part)}${asRoot ? " as etcd's root (a certificate minted for this snapshot)" : ''}`
        },
      },
      {
        title: 'Check the snapshot',
        task: async (_: unknown, task: {title: string}) => {
          ctx.facts = await checkSnapshotFile(part, {sidecar: 'ignore', etcdctl: 'if-present'})
          const f = ctx.facts
          task.title = f.checks.etcdctl
            ? `Checked: embedded SHA-256 matches; revision ${f.revision}, ${f.keys} keys`
            : 'Checked: embedded SHA-256 matches (etcdctl not installed: the database itself was not read)'
        },
      },
      {
        title: `Move into place: ${file}, ${basename(sidecarOf(path))}`,
        task: async () => {
          renameSync(part, path)
          const sidecarPart = `${sidecarOf(path)}.part`
          writeFileSync(sidecarPart, `${ctx.facts!.sha256}  ${basename(path)}\n`, {mode: 0o644})
          const fd = openSync(sidecarPart, 'r')
          fsyncSync(fd)
          closeSync(fd)
          renameSync(sidecarPart, sidecarOf(path))
          fsyncDir(dirname(path))
        },
      },
    ],
    listrOptions(options.progress) as never,
  )
  try {
    await tasks.run()
  } catch (err) {
    rmSync(part, {force: true})
    rmSync(`${sidecarOf(path)}.part`, {force: true})
    if (err instanceof XclusterError) throw err
    throw new XclusterError(`The snapshot could not be saved: ${(err as Error).message}. ${existsSync(path) ? `${file} was left as it was.` : `${file} was not written.`}`, {
      code: 'SNAPSHOT_SAVE_FAILED',
      exit: ExitStatus.failure,
      suggestion: 'Check the cluster with xcluster etcd health and the free space where FILE goes, then run again.',
      cause: err,
    })
  }
  return {...ctx.facts!, file: path, sha256File: sidecarOf(path), member: ctx.member!, endpoint: ctx.endpoint!, seconds: (Date.now() - started) / 1000}
}

/** Parses NAME=URL,... and checks NAME is in it with exactly the URLs the member advertises. */
function checkTarget(target: OfflineMemberTarget): void {
  const pairs = target.initialCluster.split(',').map((p) => p.trim())
  const urls = new Map<string, string[]>()
  for (const pair of pairs) {
    const m = /^([^=\s]+)=(\S+)$/.exec(pair)
    if (!m)
      throw usageError(
        `--initial-cluster: "${pair}" is not NAME=PEER_URL.`,
        'Give every member as NAME=PEER_URL, comma-separated, e.g. s1=https://10.0.0.2:2380,s2=https://10.0.0.3:2380,s3=https://10.0.0.4:2380',
      )
    try {
      new URL(m[2]!)
    } catch {
      throw usageError(`--initial-cluster: "${m[2]}" is not a URL.`, 'Peer URLs look like https://10.0.0.2:2380.')
    }
    urls.set(m[1]!, [...(urls.get(m[1]!) ?? []), m[2]!])
  }
  const mine = urls.get(target.name)
  if (!mine) throw usageError(`--name ${target.name} is not in --initial-cluster (${[...urls.keys()].join(', ')}).`, "Give this member's own name, as it appears in --initial-cluster.")
  const advertised = target.initialAdvertisePeerUrls.split(',').map((u) => u.trim())
  if ([...mine].sort().join(',') !== [...advertised].sort().join(',')) {
    throw usageError(
      `--initial-advertise-peer-urls ${target.initialAdvertisePeerUrls} differs from ${target.name}'s URLs in --initial-cluster (${mine.join(',')}).`,
      "Give this member's peer URL, the same in both flags.",
    )
  }
  if (existsSync(target.dataDir)) {
    throw preconditionError(
      'RESTORE_DATA_DIR_EXISTS',
      `--data-dir ${target.dataDir} already exists; a restore creates it and never writes into an existing one.`,
      `Stop etcd on this member and move the old data dir aside (e.g. mv ${target.dataDir} ${target.dataDir}.before-restore), or give another --data-dir.`,
    )
  }
}

/** The per-member commands of a whole-cluster restore, for the members a running cluster lists (or placeholders). */
export function clusterRestoreProcedure(file: string, cluster: EtcdClusterState | undefined, token: string): string[] {
  const members = (cluster?.members ?? []).filter((m) => m.name && m.peerUrls.length > 0)
  const initial = members.length > 0 ? members.map((m) => `${m.name}=${m.peerUrls[0]}`).join(',') : 'NAME1=PEER_URL1,NAME2=PEER_URL2,NAME3=PEER_URL3'
  const dataDir = settings.etcdMember.dataDir
  const restoreOn = (name: string, peer: string) =>
    commandLine([
      'etcd',
      'snapshot',
      'restore',
      file,
      '--data-dir',
      dataDir,
      '--name',
      name,
      '--initial-cluster',
      initial,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster-token',
      token,
      '--yes',
    ])
  return [
    `Copy ${file} and ${basename(sidecarOf(file))} to every etcd member.`,
    'On every member: systemctl stop xcluster-serve.service etcd-member.service',
    `On every member: mv ${dataDir} ${dataDir}.before-restore`,
    ...(members.length > 0 ? members.map((m) => `On ${m.name}: ${restoreOn(m.name, m.peerUrls[0]!)}`) : [`On each member: ${restoreOn('NAME', 'PEER_URL')}`]),
    'On every member: systemctl start etcd-member.service xcluster-serve.service',
    'Then check: xcluster etcd health',
  ]
}

/**
 * Checks a restore and plans it, writing nothing: the snapshot's integrity first (sidecar,
 * embedded SHA-256, etcdctl's read), then what the cluster's endpoints answer. Without a
 * target (the offline data dir to create) a restore is refused: exit 3 while the cluster runs
 * with quorum, a usage error (2) otherwise; both say what to run on each member.
 */
export async function planRestore(connection: EtcdConnection, file: string, target: OfflineMemberTarget | undefined): Promise<RestorePlan> {
  const resolved = target ? {...target, dataDir: resolve(target.dataDir)} : undefined
  if (resolved) checkTarget(resolved)
  const snapshot = await checkSnapshotFile(file, {sidecar: 'check', etcdctl: 'required'})
  const cluster = await inspectEtcdCluster(connection)
  const healthyMembers = cluster.members.filter((m) => m.healthy).map((m) => m.name || m.id || '?')
  const running = cluster.quorum
  const token = target?.initialClusterToken ?? connection.cluster
  if (!resolved) {
    const procedure = clusterRestoreProcedure(file, running ? cluster : undefined, token)
    const details = {endpoints: connection.endpoints, healthyMembers, procedure}
    if (running) {
      throw preconditionError(
        'ETCD_RUNNING',
        `etcd at ${connection.endpoints.join(', ')} is running with quorum (${healthyMembers.join(', ')} healthy): restoring over it would throw away every write since the snapshot. Nothing was changed.`,
        `To replace the cluster's data with the snapshot, stop etcd on every member and restore each member's data dir offline:\n  ${procedure.join('\n  ')}`,
        details,
      )
    }
    throw usageError(
      `A restore rebuilds one member's data dir offline: say which with --data-dir, --name, --initial-cluster and --initial-advertise-peer-urls. Nothing was changed.`,
      `On each member, with etcd stopped:\n  ${procedure.join('\n  ')}`,
      details,
    )
  }
  const steps = [
    `restore snapshot ${snapshot.file} (revision ${snapshot.revision}, ${snapshot.keys} keys, ${humanBytes(snapshot.bytes)}) with etcdctl snapshot restore into ${resolved.dataDir}.restoring, as member ${resolved.name} (${resolved.initialAdvertisePeerUrls}) of ${resolved.initialCluster}, cluster token ${resolved.initialClusterToken}`,
    `check the restored database is at revision ${snapshot.revision}`,
    `rename it to ${resolved.dataDir}`,
  ]
  const others = resolved.initialCluster
    .split(',')
    .map((p) => p.split('=')[0]!.trim())
    .filter((n) => n !== resolved.name)
  const nextSteps = [
    ...(running ? [`etcd at ${connection.endpoints.join(', ')} is running with quorum (${healthyMembers.join(', ')}): stop etcd on every member before starting any of them on restored data.`] : []),
    ...(others.length > 0
      ? [`Restore ${others.join(', ')} the same way, each with its own --name and --initial-advertise-peer-urls (same snapshot, --initial-cluster and --initial-cluster-token).`]
      : []),
    `Start etcd on ${resolved.dataDir} (on a core node: systemctl start etcd-member.service), then check: xcluster etcd health`,
  ]
  const result: RestoreResult = {snapshot, target: resolved, cluster: {endpoints: connection.endpoints, running, healthyMembers}, dryRun: true, steps, nextSteps, restored: false}
  return {result, commit: () => restoreMemberDataDir(result)}
}

/** Runs the planned restore: etcdctl into a sibling directory, checked, then renamed into place. */
async function restoreMemberDataDir(plan: RestoreResult): Promise<RestoreResult> {
  const {target, snapshot} = plan
  const parent = dirname(target.dataDir)
  mkdirSync(parent, {recursive: true})
  const staging = `${target.dataDir}.restoring`
  if (existsSync(staging)) rmSync(staging, {recursive: true, force: true})
  try {
    await etcdctl([
      'snapshot',
      'restore',
      snapshot.file,
      '--data-dir',
      staging,
      '--name',
      target.name,
      '--initial-cluster',
      target.initialCluster,
      '--initial-advertise-peer-urls',
      target.initialAdvertisePeerUrls,
      '--initial-cluster-token',
      target.initialClusterToken,
    ]).catch((err) => {
      if (err instanceof XclusterError) throw err
      throw new XclusterError(`etcdctl snapshot restore failed: ${(err as Error).message}. ${target.dataDir} was not created.`, {
        code: 'RESTORE_FAILED',
        exit: ExitStatus.failure,
        suggestion: 'Fix what etcdctl reports and run again.',
        cause: err,
      })
    })
    const restored = await databaseStatus(`${staging}/member/snap/db`)
    if (restored.revision !== snapshot.revision) {
      throw new XclusterError(`The restored database is at revision ${restored.revision}, the snapshot at ${snapshot.revision}. ${target.dataDir} was not created.`, {
        code: 'RESTORE_VERIFY_FAILED',
        exit: ExitStatus.failure,
        suggestion: 'Run again; if it repeats, check the etcdctl version against the etcd that saved the snapshot.',
        details: {restored, snapshot: {revision: snapshot.revision, keys: snapshot.keys}},
      })
    }
    if (existsSync(target.dataDir)) throw preconditionError('RESTORE_DATA_DIR_EXISTS', `${target.dataDir} appeared during the restore; it was left alone.`, 'Check what created it, then run again.')
    renameSync(staging, target.dataDir)
    fsyncDir(parent)
  } finally {
    if (existsSync(staging)) rmSync(staging, {recursive: true, force: true})
  }
  return {...plan, dryRun: false, restored: true}
}
