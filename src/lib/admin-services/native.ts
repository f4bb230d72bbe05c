import {spawn, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'

import {ExitStatus, XclusterError} from '../errors.js'
import {env, settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import {adminLayout} from './layout.js'
import {findBinary, gatewayInterface, gatewayNotLocal, preflightAdminServices} from './preflight.js'
import {ADMIN_SERVICE_NAMES, renderAdminServices, type AdminPort, type AdminService, type AdminServiceName, type AdminServicesBundle, type RenderAdminOptions} from './render.js'
import {boundSockets, conflicts, processInfo, sessionMembers, socketHolders, type SocketHolder} from './sockets.js'
import {systemdManager, systemdRunning} from './systemd.js'

/** How the services are kept: plain processes with records under the state dir, or systemd units. */
export type ServiceManagerKind = 'process' | 'systemd'

/** What --native remembers of a service it started (state/<service>.json). */
export interface ServiceRecord {
  service: AdminServiceName
  manager: ServiceManagerKind
  /** The process (its session leader) while running; absent once stopped. */
  pid?: number
  /** With the pid, the process's identity: a reused pid has another start time. */
  startTime?: number
  /** The unit, under systemd. */
  unit?: string
  /** SHA-256 of the command and the configs it read at start: a change means a restart. */
  fingerprint: string
  ports: AdminPort[]
  startedAt?: string
  stoppedAt?: string
}

export interface NativeOptions extends Omit<RenderAdminOptions, 'root'> {
  /** Where configs, caches, logs and records live. Default: settings.adminServices.stateDir. */
  stateDir?: string
  /** Report what would be done and change nothing. */
  dryRun?: boolean
}

export interface NativeAction {
  service: AdminServiceName
  action: 'create' | 'update' | 'copy' | 'mkdir' | 'start' | 'restart'
  /** What, for people: a path relative to the state dir, or the command. */
  detail: string
}

export interface NativeStartResult {
  stateDir: string
  dryRun: boolean
  manager: ServiceManagerKind
  /** Services something was (or, in a dry run, would be) done to. */
  changed: AdminServiceName[]
  unchanged: AdminServiceName[]
  actions: NativeAction[]
}

/** The contract a service manager fulfils: start, tell, stop. */
export interface ServiceManager {
  kind: ServiceManagerKind
  running(record: ServiceRecord): boolean
  /** Whether a process holding a port belongs to this running service. */
  owns(record: ServiceRecord, holder: SocketHolder): boolean
  start(service: AdminService, bundle: AdminServicesBundle, fingerprint: string): Promise<ServiceRecord>
  stop(record: ServiceRecord): Promise<void>
}

const stateDirOf = (options: {stateDir?: string}): string => options.stateDir ?? process.env[env.adminStateDir] ?? settings.adminServices.stateDir

/**
 * Runs the admin host's services from the rendered configs as processes on this host (systemd
 * units when systemd is PID 1). Checks before it changes: files are written only when they
 * differ, and a daemon is restarted only when its own configs or command changed, so a re-run
 * with the same spec changes nothing and says so. A preflight refuses (exit 3) before anything is
 * written when a program is missing or a port is held by something else.
 */
export async function startNativeServices(spec: ClusterSpec, options: NativeOptions = {}): Promise<NativeStartResult> {
  const stateDir = stateDirOf(options)
  const iface = options.interface ?? gatewayInterface(spec)
  if (!iface) throw gatewayNotLocal(spec)
  if (!options.dryRun) requireRoot()
  requireWalkable(stateDir)
  const bundle = renderAdminServices(spec, {...options, root: stateDir, interface: iface})
  const manager = managerFor(stateDir)
  const layout = adminLayout(stateDir)
  const records = new Map(bundle.services.map((s) => [s.name, readRecord(layout.state, s.name)]))
  preflightAdminServices(spec, bundle, (service, holder) => {
    const record = records.get(service.name)
    return record !== undefined && record.manager === manager.kind && manager.running(record) && manager.owns(record, holder)
  })

  const actions: NativeAction[] = []
  const writes: (() => void)[] = []
  // The root too: the daemons drop to their own users and must be able to walk into it.
  for (const dir of [{path: '.', owner: 'root', service: 'ntp' as const}, ...bundle.directories]) {
    const path = join(stateDir, dir.path)
    const stat = existsSync(path) ? statSync(path) : undefined
    if (stat && stat.uid === userId(dir.owner) && (stat.mode & 0o755) === 0o755) continue
    actions.push({service: dir.service, action: 'mkdir', detail: stat ? `${dir.path} (owner ${dir.owner}, mode 755)` : dir.path})
    writes.push(() => {
      mkdirSync(path, {recursive: true, mode: 0o755})
      chmodSync(path, 0o755)
      chownSync(path, userId(dir.owner), groupId(dir.owner))
    })
  }
  for (const file of bundle.files) {
    const path = join(stateDir, file.path)
    const current = readOrUndefined(path)
    if (current?.toString('utf8') === file.content && (statSync(path).mode & 0o777) === file.mode) continue
    actions.push({service: file.service, action: current === undefined ? 'create' : 'update', detail: file.path})
    writes.push(() => writeAtomically(path, Buffer.from(file.content), file.mode))
  }
  for (const copy of bundle.copies) {
    const path = join(stateDir, copy.path)
    const bytes = readFileSync(copy.source)
    if (readOrUndefined(path)?.equals(bytes)) continue
    actions.push({service: copy.service, action: 'copy', detail: `${copy.source} -> ${copy.path}`})
    writes.push(() => writeAtomically(path, bytes, 0o644))
  }

  const toStart: {service: AdminService; fingerprint: string; record?: ServiceRecord}[] = []
  for (const service of bundle.services.filter((s) => s.daemon)) {
    const fingerprint = serviceFingerprint(service, bundle)
    const record = records.get(service.name)
    const running = record !== undefined && record.manager === manager.kind && manager.running(record)
    if (running && record.fingerprint === fingerprint) continue
    actions.push({service: service.name, action: running ? 'restart' : 'start', detail: service.argv.join(' ')})
    toStart.push({service, fingerprint, ...(running ? {record} : {})})
  }

  const changed = ADMIN_SERVICE_NAMES.filter((n) => actions.some((a) => a.service === n))
  const result: NativeStartResult = {
    stateDir,
    dryRun: options.dryRun ?? false,
    manager: manager.kind,
    changed,
    unchanged: bundle.services.map((s) => s.name).filter((n) => !changed.includes(n)),
    actions,
  }
  if (options.dryRun) return result

  for (const write of writes) write()
  mkdirSync(layout.state, {recursive: true, mode: 0o700})
  for (const {service, fingerprint, record} of toStart) {
    if (record) await manager.stop(record)
    writeRecord(layout.state, await manager.start(service, bundle, fingerprint))
  }
  return result
}

export interface ServiceStatus {
  service: AdminServiceName
  manager: ServiceManagerKind
  running: boolean
  pid?: number
  unit?: string
  /** Each port, and whether this service holds it now (observed in the kernel's socket tables). */
  ports: (AdminPort & {held: boolean})[]
  startedAt?: string
  stoppedAt?: string
}

/** The services --native started under this state dir: running or not, and which ports they hold. */
export function nativeServicesStatus(options: {stateDir?: string} = {}): ServiceStatus[] {
  const layout = adminLayout(stateDirOf(options))
  const records = ADMIN_SERVICE_NAMES.map((n) => readRecord(layout.state, n)).filter((r): r is ServiceRecord => r !== undefined)
  const sockets = boundSockets()
  const holders = socketHolders(new Set(sockets.map((s) => s.inode)))
  return records.map((record) => {
    const manager = managerFor(layout.root, record.manager)
    const running = manager.running(record)
    const ports = record.ports.map((port) => ({
      ...port,
      held: running && sockets.some((s) => conflicts(s, port) && (holders.get(s.inode) ?? []).some((h) => manager.owns(record, h))),
    }))
    return {
      service: record.service,
      manager: record.manager,
      running,
      ...(running && record.pid !== undefined ? {pid: record.pid} : {}),
      ...(record.unit ? {unit: record.unit} : {}),
      ports,
      ...(record.startedAt ? {startedAt: record.startedAt} : {}),
      ...(record.stoppedAt ? {stoppedAt: record.stoppedAt} : {}),
    }
  })
}

export interface NativeStopResult {
  stopped: AdminServiceName[]
  notRunning: AdminServiceName[]
  dryRun: boolean
}

/** Stops the services --native started (configs, caches and logs stay for the next start). */
export async function stopNativeServices(options: {stateDir?: string; dryRun?: boolean; services?: AdminServiceName[]} = {}): Promise<NativeStopResult> {
  const layout = adminLayout(stateDirOf(options))
  const result: NativeStopResult = {stopped: [], notRunning: [], dryRun: options.dryRun ?? false}
  for (const name of options.services ?? ADMIN_SERVICE_NAMES) {
    const record = readRecord(layout.state, name)
    if (!record) continue
    const manager = managerFor(layout.root, record.manager)
    if (!manager.running(record)) {
      result.notRunning.push(name)
      continue
    }
    result.stopped.push(name)
    if (options.dryRun) continue
    if (process.getuid?.() !== 0) requireRoot()
    await manager.stop(record)
    const {pid: _pid, startTime: _startTime, ...rest} = record
    writeRecord(layout.state, {...rest, stoppedAt: new Date().toISOString()})
  }
  return result
}

/** SHA-256 of what a daemon reads at start: its command and its config files. */
function serviceFingerprint(service: AdminService, bundle: AdminServicesBundle): string {
  const configs = bundle.files.filter((f) => f.service === service.name && f.restarts).map((f) => [f.path, f.mode, f.content])
  return createHash('sha256')
    .update(JSON.stringify({argv: service.argv, prepare: service.prepare ?? null, configs}))
    .digest('hex')
}

function managerFor(stateDir: string, kind?: ServiceManagerKind): ServiceManager {
  const use = kind ?? (systemdRunning() ? 'systemd' : 'process')
  return use === 'systemd' ? systemdManager(stateDir) : processManager(stateDir)
}

/** Plain processes: each in its own session, output to log/<service>.log, identity by pid and start time. */
function processManager(stateDir: string): ServiceManager {
  const layout = adminLayout(stateDir)
  const alive = (record: ServiceRecord): boolean => record.pid !== undefined && record.startTime !== undefined && processInfo(record.pid)?.startTime === record.startTime
  const manager: ServiceManager = {
    kind: 'process',
    running: alive,
    owns: (record, holder) => alive(record) && holder.sid === record.pid,
    async start(service, bundle, fingerprint) {
      const binary = resolvedArgv(service.argv)
      const logFile = join(layout.log, `${service.name}.log`)
      if (service.prepare) {
        const prep = spawnSync(resolvedArgv(service.prepare)[0], service.prepare.slice(1), {encoding: 'utf8', cwd: stateDir, timeout: settings.adminServices.startTimeoutMs})
        if (prep.status !== 0) throw startFailed(service, `\`${service.prepare.join(' ')}\` exited ${prep.status ?? prep.signal}: ${(prep.stderr || prep.stdout || '').trim().slice(-1500)}`, logFile)
      }
      const log = openSync(logFile, 'a')
      const child = spawn(binary[0], binary.slice(1), {detached: true, stdio: ['ignore', log, log], cwd: stateDir})
      closeSync(log)
      child.unref()
      const pid = child.pid
      if (pid === undefined) throw startFailed(service, `could not run ${binary[0]}`, logFile)
      const info = await waitFor(() => processInfo(pid), 1000)
      if (!info) throw startFailed(service, 'it exited at once', logFile)
      const record: ServiceRecord = {service: service.name, manager: 'process', pid, startTime: info.startTime, fingerprint, ports: service.ports, startedAt: new Date().toISOString()}
      await waitForPorts(service, record, manager, logFile)
      return record
    },
    async stop(record) {
      if (!alive(record)) return
      const sid = record.pid as number
      signalSession(sid, 'SIGTERM')
      const gone = await waitFor(() => (sessionMembers(sid).length === 0 ? true : undefined), settings.adminServices.stopTimeoutMs)
      if (!gone) {
        signalSession(sid, 'SIGKILL')
        await waitFor(() => (sessionMembers(sid).length === 0 ? true : undefined), settings.adminServices.stopTimeoutMs)
      }
    },
  }
  return manager
}

function signalSession(sid: number, signal: NodeJS.Signals): void {
  for (const pid of sessionMembers(sid)) {
    try {
      process.kill(pid, signal)
    } catch {
      // exited meanwhile
    }
  }
}

/** Waits until the service holds every port it binds (seen in the kernel's tables), or fails with its log. */
export async function waitForPorts(service: AdminService, record: ServiceRecord, manager: ServiceManager, logFile: string): Promise<void> {
  const held = (): true | undefined => {
    if (!manager.running(record)) return undefined
    const sockets = boundSockets()
    const holders = socketHolders(new Set(sockets.map((s) => s.inode)))
    const all = service.ports.every((port) => sockets.some((s) => conflicts(s, port) && (holders.get(s.inode) ?? []).some((h) => manager.owns(record, h))))
    return all ? true : undefined
  }
  const ok = await waitFor(() => held() ?? (manager.running(record) ? undefined : false), settings.adminServices.startTimeoutMs, 50)
  if (ok === true) return
  const why = manager.running(record) ? `it did not bind ${portsText(service.ports)} within ${settings.adminServices.startTimeoutMs / 1000} s` : 'it exited'
  await manager.stop(record)
  throw startFailed(service, why, logFile)
}

const portsText = (ports: AdminPort[]): string => ports.map((p) => `${p.address}:${p.port}/${p.protocol}`).join(', ')

function startFailed(service: AdminService, why: string, logFile: string): XclusterError {
  const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-10).join('\n') : ''
  return new XclusterError(`The admin host's ${service.title} did not start: ${why}.${tail ? `\n${tail}` : ''}`, {
    code: 'ADMIN_SERVICE_FAILED',
    exit: ExitStatus.failure,
    suggestion: `Look at ${logFile}, fix what it says, then run again (services already running are left as they are).`,
    details: {service: service.name, logFile},
  })
}

/** The command with its program as an absolute path (sbin directories included). */
export function resolvedArgv(argv: string[]): string[] {
  const path = findBinary(argv[0])
  if (!path) throw new XclusterError(`${argv[0]} is not installed.`, {code: 'ADMIN_PROGRAM_MISSING', exit: ExitStatus.precondition})
  return [path, ...argv.slice(1)]
}

/** Polls until `check` gives a value other than undefined, or the time is up (undefined). */
export async function waitFor<T>(check: () => T | undefined, timeoutMs: number, everyMs = 50): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (Date.now() > deadline) return undefined
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

function readRecord(dir: string, service: AdminServiceName): ServiceRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, `${service}.json`), 'utf8')) as ServiceRecord
  } catch {
    return undefined
  }
}

function writeRecord(dir: string, record: ServiceRecord): void {
  mkdirSync(dir, {recursive: true, mode: 0o700})
  writeAtomically(join(dir, `${record.service}.json`), Buffer.from(JSON.stringify(record, null, 2) + '\n'), 0o600)
}

/** Written beside and renamed into place: a daemon (or a reader) never sees half a file. */
function writeAtomically(path: string, bytes: Buffer, mode: number): void {
  mkdirSync(dirname(path), {recursive: true, mode: 0o755})
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, bytes, {mode})
  renameSync(tmp, path)
}

function readOrUndefined(path: string): Buffer | undefined {
  try {
    return readFileSync(path)
  } catch {
    return undefined
  }
}

/**
 * The daemons drop to their own users (_chrony, dnsmasq, www-data, proxy): every directory above
 * the state dir must let others through, or they fail deep in their logs ("Permission denied").
 */
function requireWalkable(stateDir: string): void {
  for (let dir = dirname(resolve(stateDir)); ; dir = dirname(dir)) {
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) {
      throw new XclusterError(`The daemons cannot reach ${stateDir}: ${dir} does not let other users through (mode ${(statSync(dir).mode & 0o777).toString(8)}).`, {
        code: 'ADMIN_STATE_DIR_UNREACHABLE',
        exit: ExitStatus.precondition,
        suggestion: `Pick a state dir under world-searchable directories, or run: chmod o+x ${dir}`,
      })
    }
    if (dir === dirname(dir)) return
  }
}

function requireRoot(): void {
  if (process.getuid?.() === 0) return
  throw new XclusterError("Running the admin host's services needs root: they bind ports below 1024 and drop to their own users.", {
    code: 'ADMIN_NEEDS_ROOT',
    exit: ExitStatus.precondition,
    suggestion: 'Run it again with sudo.',
  })
}

/** A user's uid and gid from /etc/passwd (the daemons' users come with their Debian packages). */
function passwdEntry(user: string): {uid: number; gid: number} {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':')
    if (name === user) return {uid: Number(uid), gid: Number(gid)}
  }
  throw new XclusterError(`The user ${user} does not exist on this host.`, {
    code: 'ADMIN_USER_MISSING',
    exit: ExitStatus.precondition,
    suggestion: "It comes with the service's Debian package: reinstall it (e.g. sudo apt-get install --reinstall squid).",
  })
}

const userId = (user: string): number => passwdEntry(user).uid
const groupId = (user: string): number => passwdEntry(user).gid
