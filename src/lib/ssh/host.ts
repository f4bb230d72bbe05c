import {randomBytes} from 'node:crypto'
import {once} from 'node:events'
import {readFileSync, ReadStream} from 'node:fs'
import {posix} from 'node:path'
import {Readable} from 'node:stream'

import {Client, type ClientChannel, type ConnectConfig, type SFTPWrapper} from 'ssh2'

import {ExitStatus, usageError, XclusterError} from '../errors.js'
import {settings} from '../settings.js'
import {HostKeyPin, type HostKeyDecision, type HostKeyPolicy} from './host-key.js'
import {remoteCommand, shellQuote} from './shell.js'

/** Where and as whom to connect, and what the host's key must be. */
export interface SshTarget {
  /** Node name: used in messages, pins and as the pool key. */
  name: string
  address: string
  port?: number
  user: string
  privateKeyPath: string
  hostKey: HostKeyPolicy
}

export interface ConnectOptions {
  /** Deadline for one attempt (TCP connect + handshake + auth). */
  timeoutMs?: number
  /** Extra attempts after the first, with exponential back-off, for unreachable hosts only. */
  retries?: number
}

export interface ExecOptions {
  timeoutMs?: number
  /** Run as root (`sudo -n -- sh -c ...`) when the login user is not root. */
  sudo?: boolean
  /**
   * Sent on stdin, which is then closed (stdin is always closed so nothing waits on it). A stream
   * is piped with backpressure (an upload of any size holds a few chunks in memory). If it fails,
   * the call rejects with SSH_INPUT_FAILED: a file that cannot be opened never starts the
   * command; a failure midway kills the command where sshd forwards signals (non-root logins),
   * elsewhere it sees its stdin end early, so what it reads must be verifiable (a checksum).
   */
  input?: string | Buffer | Readable
  /** Exported for the command; values never appear in messages. */
  env?: Record<string, string>
}

export interface ExecResult {
  /** Exit status, or null when the command was killed by a signal. */
  code: number | null
  stdout: string
  stderr: string
  signal?: string
}

export interface UploadOptions {
  /** File mode, default 0o644. */
  mode?: number
  owner?: string
  group?: string
  /** For a non-root login user: place the file as root through sudo (default true). */
  sudo?: boolean
}

export interface HostKeyOutcome {
  fingerprint: string
  /** `accepted-new`: nothing was pinned and the caller accepted it; store `fingerprint` now. */
  decision: HostKeyDecision
}

const SYSTEMCTL_ACTIONS = [
  'start',
  'stop',
  'restart',
  'reload',
  'try-restart',
  'reload-or-restart',
  'enable',
  'disable',
  'mask',
  'unmask',
  'is-active',
  'is-enabled',
  'is-failed',
  'status',
  'show',
  'reset-failed',
  'kill',
] as const
export type SystemctlAction = (typeof SYSTEMCTL_ACTIONS)[number] | 'daemon-reload'

const ACCOUNT = /^(?:[a-z_][a-z0-9_.-]*\$?|\d+)$/i
const UNIT = /^[A-Za-z0-9@._:\\-]+$/

interface RawResult {
  code: number | null
  stdout: Buffer
  stderr: Buffer
  signal?: string
}

/**
 * One authenticated SSH connection to a host whose key has been checked against its pin.
 * `exec` never throws for a non-zero exit (the result says how it ended); it throws only when the
 * command could not run to completion (timeout, lost connection).
 */
export class SshHost {
  private closed = false
  private sftpSession?: Promise<SFTPWrapper>
  private readonly closeListeners: (() => void)[] = []

  private constructor(
    readonly target: SshTarget,
    private readonly client: Client,
    readonly hostKey: HostKeyOutcome,
  ) {
    client.on('close', () => {
      this.closed = true
      for (const listener of this.closeListeners.splice(0)) listener()
    })
    // A connection that dies later surfaces through `close`; an unhandled `error` would crash.
    client.on('error', () => {})
  }

  get name(): string {
    return this.target.name
  }

  /** False once the server or the network dropped the connection, or after close(). */
  get alive(): boolean {
    return !this.closed
  }

  /** Connects, retrying an unreachable host with exponential back-off. Key and auth refusals are final. */
  static async connect(target: SshTarget, options: ConnectOptions = {}): Promise<SshHost> {
    const timeoutMs = options.timeoutMs ?? settings.sshConnectTimeoutMs
    const retries = options.retries ?? settings.sshConnectRetries
    const privateKey = readPrivateKey(target)
    // Validate pins up front: a malformed pin is a usage error, not a network problem.
    new HostKeyPin(target.name, target.address, target.hostKey)
    let delay: number = settings.sshConnectBackoffMs
    for (let attempt = 0; ; attempt++) {
      try {
        return await SshHost.attempt(target, privateKey, timeoutMs)
      } catch (error) {
        if (!(error instanceof RetryableConnectError)) throw error
        if (attempt >= retries) throw unreachableError(target, attempt + 1, error.reason)
        await new Promise((r) => setTimeout(r, delay))
        delay = Math.min(delay * 2, settings.sshConnectBackoffMaxMs)
      }
    }
  }

  private static attempt(target: SshTarget, privateKey: Buffer, timeoutMs: number): Promise<SshHost> {
    const pin = new HostKeyPin(target.name, target.address, target.hostKey)
    const client = new Client()
    return new Promise((resolve, reject) => {
      let settled = false
      const fail = (error: Error) => {
        if (settled) return
        settled = true
        client.end()
        reject(error)
      }
      client.once('ready', () => {
        if (settled) return
        settled = true
        client.removeAllListeners('error')
        resolve(new SshHost(target, client, {fingerprint: pin.presented!, decision: pin.decision!}))
      })
      client.on('error', (error: Error & {level?: string}) => {
        const refusal = pin.refusal()
        if (refusal) return fail(refusal)
        if (error.level === 'client-authentication') return fail(authError(target, pin))
        fail(new RetryableConnectError(error.message))
      })
      client.on('close', () => fail(new RetryableConnectError('connection closed during the handshake')))
      const config: ConnectConfig = {
        host: target.address,
        port: target.port ?? 22,
        username: target.user,
        privateKey,
        readyTimeout: timeoutMs,
        keepaliveInterval: settings.sshKeepaliveIntervalMs,
        keepaliveCountMax: settings.sshKeepaliveCountMax,
        // Called during key exchange, before any authentication is attempted.
        hostVerifier: (key: Buffer) => pin.verify(key),
      }
      try {
        client.connect(config)
      } catch (error) {
        // ssh2 parses the key synchronously: a malformed or passphrase-protected key lands here.
        fail(
          new XclusterError(`The SSH private key ${target.privateKeyPath} (for ${target.name}) is not usable: ${(error as Error).message}.`, {
            code: 'SSH_KEY_INVALID',
            exit: ExitStatus.precondition,
            suggestion: 'Use an unencrypted OpenSSH private key (e.g. ssh-keygen -t ed25519 -N "").',
            details: {host: target.name, path: target.privateKeyPath},
          }),
        )
      }
    })
  }

  onClose(listener: () => void): void {
    if (this.closed) listener()
    else this.closeListeners.push(listener)
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const raw = await this.execRaw(command, options)
    return {code: raw.code, stdout: raw.stdout.toString('utf8'), stderr: raw.stderr.toString('utf8'), ...(raw.signal ? {signal: raw.signal} : {})}
  }

  /** Like exec, but a non-zero exit is an error (SSH_COMMAND_FAILED) carrying the end of stderr. */
  async run(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const result = await this.exec(command, options)
    if (result.code !== 0) throw commandFailedError(this.target, command, result)
    return result
  }

  /** `systemctl ACTION UNIT` as root. Like exec, a non-zero exit is a result (is-active uses it). */
  async systemctl(action: SystemctlAction, unit?: string, options: Omit<ExecOptions, 'sudo'> = {}): Promise<ExecResult> {
    if (action !== 'daemon-reload' && !(SYSTEMCTL_ACTIONS as readonly string[]).includes(action)) {
      throw usageError(`Unknown systemctl action ${JSON.stringify(action)}.`, `Use one of: daemon-reload, ${SYSTEMCTL_ACTIONS.join(', ')}.`)
    }
    if (action === 'daemon-reload') return this.exec('systemctl daemon-reload', {...options, sudo: true})
    if (!unit || !UNIT.test(unit)) throw usageError(`Invalid systemd unit name ${JSON.stringify(unit ?? '')}.`, 'Pass a unit name such as ssh.service.')
    return this.exec(`systemctl ${action} ${shellQuote(unit)}`, {...options, sudo: true})
  }

  /**
   * Writes a file atomically: the content goes to a temporary file next to the target, gets its
   * mode and owner, then is renamed over the target, so readers see the old or the new file only.
   */
  async upload(content: string | Buffer, remotePath: string, options: UploadOptions = {}): Promise<void> {
    const mode = options.mode ?? 0o644
    assertAbsolute(remotePath)
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw usageError(`Invalid file mode ${mode} for ${remotePath}.`, 'Pass a mode such as 0o644.')
    for (const account of [options.owner, options.group]) {
      if (account !== undefined && !ACCOUNT.test(account)) throw usageError(`Invalid owner or group ${JSON.stringify(account)} for ${remotePath}.`, 'Pass a user or group name, or a numeric id.')
    }
    const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content
    const dir = posix.dirname(remotePath)
    const temp = `${dir}/.${posix.basename(remotePath)}.xc-${randomBytes(6).toString('hex')}`
    const chown = options.owner || options.group ? `${options.owner ?? ''}${options.group ? `:${options.group}` : ''}` : undefined
    const sftp = await this.sftp()
    try {
      if (this.target.user === 'root' || options.sudo === false) {
        await sftpCall<void>((cb) => sftp.writeFile(temp, data, {mode: 0o600}, cb))
        // chmod after writing: the mode given at open is reduced by the server's umask.
        await sftpCall<void>((cb) => sftp.chmod(temp, mode, cb))
        if (chown) await this.run(`chown ${shellQuote(chown)} ${shellQuote(temp)}`)
        await sftpCall<void>((cb) => sftp.ext_openssh_rename(temp, remotePath, cb))
      } else {
        // The login user cannot write there: stage in /tmp, then let root place it atomically.
        const stage = `/tmp/.xc-upload-${randomBytes(6).toString('hex')}`
        await sftpCall<void>((cb) => sftp.writeFile(stage, data, {mode: 0o600}, cb))
        const q = {stage: shellQuote(stage), temp: shellQuote(temp), dest: shellQuote(remotePath)}
        await this.run(
          [
            `trap 'rm -f ${q.stage} ${q.temp}' EXIT`,
            `cp ${q.stage} ${q.temp}`,
            `chmod ${mode.toString(8)} ${q.temp}`,
            ...(chown ? [`chown ${shellQuote(chown)} ${q.temp}`] : []),
            `mv -f ${q.temp} ${q.dest}`,
          ].join(' && '),
          {sudo: true},
        )
      }
    } catch (error) {
      await this.exec(`rm -f ${shellQuote(temp)}`, {sudo: options.sudo !== false}).catch(() => {})
      if (error instanceof XclusterError) throw error
      throw new XclusterError(`Could not upload ${remotePath} to ${this.name}: ${(error as Error).message}.`, {
        code: 'SSH_UPLOAD_FAILED',
        suggestion: `Check that ${dir} exists on ${this.name} and that ${this.target.user} may write there (or use sudo).`,
        details: {host: this.name, path: remotePath},
        cause: error,
      })
    }
  }

  /** Reads a remote file; for a non-root login user it is read as root through sudo (default). */
  async download(remotePath: string, options: {sudo?: boolean} = {}): Promise<Buffer> {
    assertAbsolute(remotePath)
    if (this.target.user !== 'root' && options.sudo !== false) {
      const raw = await this.execRaw(`cat -- ${shellQuote(remotePath)}`, {sudo: true})
      if (raw.code !== 0) throw downloadError(this.target, remotePath, raw.stderr.toString('utf8').trim())
      return raw.stdout
    }
    const sftp = await this.sftp()
    try {
      return await sftpCall<Buffer>((cb) => sftp.readFile(remotePath, cb))
    } catch (error) {
      throw downloadError(this.target, remotePath, (error as Error).message)
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    const closed = new Promise<void>((r) => this.onClose(r))
    this.client.end()
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())])
  }

  private sftp(): Promise<SFTPWrapper> {
    this.assertAlive('open SFTP')
    this.sftpSession ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((error, sftp) => {
        if (error) {
          this.sftpSession = undefined
          return reject(error)
        }
        sftp.on('close', () => (this.sftpSession = undefined))
        resolve(sftp)
      })
    })
    return this.sftpSession
  }

  private assertAlive(what: string): void {
    if (this.closed) {
      throw new XclusterError(`The SSH connection to ${this.name} is closed; cannot ${what}.`, {
        code: 'SSH_DISCONNECTED',
        suggestion: 'Get a fresh connection from the HostPool (it reconnects dropped hosts).',
        details: {host: this.name},
      })
    }
  }

  private async execRaw(command: string, options: ExecOptions): Promise<RawResult> {
    this.assertAlive(`run ${describe(command)}`)
    const timeoutMs = options.timeoutMs ?? settings.sshCommandTimeoutMs
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw usageError(`Invalid command timeout ${timeoutMs} ms for ${describe(command)}.`, 'Pass a positive number of milliseconds.')
    // The host kills the command a little after we give up on it, even where signals do not reach.
    const wire = remoteCommand(command, this.target.user, {sudo: options.sudo, env: options.env, killAfterMs: timeoutMs + settings.sshRemoteKillGraceMs})
    const input = options.input instanceof Readable ? options.input : undefined
    // A file that cannot be opened never starts the command (it would see an empty stdin).
    if (input instanceof ReadStream && input.pending) {
      try {
        await once(input, 'ready')
      } catch (error) {
        throw inputFailedError(this.target, command, error as Error)
      }
    }
    // Listen at once: a stream can fail before the channel opens.
    let inputError: Error | undefined
    let onInputError = (): void => {}
    input?.once('error', (error: Error) => {
      inputError = error
      onInputError()
    })
    return new Promise((resolve, reject) => {
      this.client.exec(wire, (error, channel: ClientChannel) => {
        if (error) {
          input?.destroy()
          return reject(
            new XclusterError(`Could not start ${describe(command)} on ${this.name}: ${error.message}.`, {
              code: 'SSH_EXEC_FAILED',
              details: {host: this.name, command: describe(command)},
              cause: error,
            }),
          )
        }
        const stdout: Buffer[] = []
        const stderr: Buffer[] = []
        let exit: {code: number | null; signal?: string} | undefined
        let timedOut = false
        const timer = setTimeout(() => {
          timedOut = true
          killRemote(this.client, channel)
          channel.close()
          reject(
            new XclusterError(`${describe(command)} on ${this.name} did not finish within ${timeoutMs} ms and was stopped.`, {
              code: 'SSH_COMMAND_TIMEOUT',
              suggestion: 'Check the host for a hung process or a slow network, or raise the timeout for this step.',
              details: {host: this.name, command: describe(command), timeoutMs},
            }),
          )
        }, timeoutMs)
        channel.on('data', (d: Buffer) => stdout.push(d))
        channel.stderr.on('data', (d: Buffer) => stderr.push(d))
        channel.on('exit', (code: number | null, signal?: string) => {
          exit = {code: typeof code === 'number' ? code : null, ...(signal ? {signal} : {})}
        })
        channel.on('close', () => {
          clearTimeout(timer)
          if (input) {
            input.unpipe(channel)
            input.destroy()
          }
          if (timedOut) return
          if (inputError) return reject(inputFailedError(this.target, command, inputError))
          if (!exit) {
            return reject(
              new XclusterError(`The connection to ${this.name} was lost while running ${describe(command)}.`, {
                code: 'SSH_CONNECTION_LOST',
                suggestion: 'Check that the host is up; the command may or may not have completed.',
                details: {host: this.name, command: describe(command)},
              }),
            )
          }
          resolve({...exit, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr)})
        })
        if (!input) return channel.end(options.input instanceof Readable ? undefined : (options.input ?? undefined))
        // Stop the command rather than end its stdin, which would pass a truncated input for a
        // whole one (where the signal cannot reach, it sees EOF: what it reads must be verifiable).
        onInputError = () => {
          killRemote(this.client, channel)
          channel.close()
        }
        if (inputError) return onInputError()
        input.pipe(channel)
      })
    })
  }
}

/**
 * Sends SIGKILL to the command's process group at once where sshd allows it (non-root logins;
 * the remote `timeout` covers root). ssh2's public
 * `channel.signal()` is a no-op once stdin was closed (always, here), so this speaks to its
 * protocol object directly (ssh2 1.x).
 */
function killRemote(client: Client, channel: ClientChannel): void {
  const protocol = (client as unknown as {_protocol?: {signal(id: number, name: string): void}})._protocol
  const outgoing = (channel as unknown as {outgoing?: {id: number; state: string}}).outgoing
  if (!protocol || !outgoing || (outgoing.state !== 'open' && outgoing.state !== 'eof')) return
  try {
    protocol.signal(outgoing.id, 'KILL')
  } catch {
    // the connection is going away anyway
  }
}

/** A retryable failure to reach the host (refused, timed out, reset), as opposed to a refusal. */
class RetryableConnectError extends Error {
  constructor(readonly reason: string) {
    super(reason)
  }
}

/** Commands are shown to operators trimmed; env values are never part of them. */
function describe(command: string): string {
  const oneLine = command.replace(/\s+/g, ' ').trim()
  return `\`${oneLine.length > 160 ? `${oneLine.slice(0, 157)}...` : oneLine}\``
}

function readPrivateKey(target: SshTarget): Buffer {
  try {
    return readFileSync(target.privateKeyPath)
  } catch (error) {
    throw new XclusterError(`Cannot read the SSH private key ${target.privateKeyPath} (for ${target.name}).`, {
      code: 'SSH_KEY_UNREADABLE',
      exit: ExitStatus.precondition,
      suggestion: 'Point the cluster spec at an existing private key file readable by this user.',
      details: {host: target.name, path: target.privateKeyPath, reason: (error as NodeJS.ErrnoException).code},
    })
  }
}

function unreachableError(target: SshTarget, attempts: number, reason: string): XclusterError {
  const where = `${target.address}:${target.port ?? 22}`
  return new XclusterError(`Cannot reach ${target.name} over SSH at ${where} after ${attempts} attempt(s): ${reason}.`, {
    code: 'SSH_UNREACHABLE',
    exit: ExitStatus.precondition,
    suggestion: `Check that ${target.name} is powered on, has the address ${target.address} and runs sshd.`,
    details: {host: target.name, address: target.address, port: target.port ?? 22, attempts, reason},
  })
}

function authError(target: SshTarget, pin: HostKeyPin): XclusterError {
  return new XclusterError(`${target.name} (${target.address}) refused the SSH key ${target.privateKeyPath} for user ${target.user}.`, {
    code: 'SSH_AUTH_FAILED',
    exit: ExitStatus.precondition,
    suggestion: `Add the matching public key (${target.privateKeyPath}.pub) to ~${target.user}/.ssh/authorized_keys on ${target.name}.`,
    details: {host: target.name, address: target.address, user: target.user, hostKey: pin.presented},
  })
}

function commandFailedError(target: SshTarget, command: string, result: ExecResult): XclusterError {
  const tail = result.stderr.trim().split('\n').slice(-10).join('\n')
  const how = result.code === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited with ${result.code}`
  return new XclusterError(`${describe(command)} on ${target.name} ${how}${tail ? `:\n${tail}` : '.'}`, {
    code: 'SSH_COMMAND_FAILED',
    details: {host: target.name, command: describe(command), code: result.code, signal: result.signal, stderr: tail},
  })
}

function inputFailedError(target: SshTarget, command: string, error: Error): XclusterError {
  return new XclusterError(`Could not send the input of ${describe(command)} to ${target.name}: ${error.message}.`, {
    code: 'SSH_INPUT_FAILED',
    details: {host: target.name, command: describe(command)},
    cause: error,
  })
}

function downloadError(target: SshTarget, path: string, reason: string): XclusterError {
  return new XclusterError(`Could not read ${path} on ${target.name}: ${reason || 'unknown error'}.`, {
    code: 'SSH_DOWNLOAD_FAILED',
    details: {host: target.name, path},
  })
}

function assertAbsolute(path: string): void {
  if (!path.startsWith('/') || path.includes('\0')) throw usageError(`Remote path ${JSON.stringify(path)} must be absolute.`, 'Pass a path starting with /.')
}

function sftpCall<T>(fn: (cb: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value as T))))
}
