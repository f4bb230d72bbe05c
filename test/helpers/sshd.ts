import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {freePort} from './etcd.js'
import {requireTool} from './tools.js'

/** A real OpenSSH server on a loopback port with its own host key, for one test file. */
export interface TestSshd {
  port: number
  /** `SHA256:...` as printed by `ssh-keygen -lf` for the server's host key. */
  hostFingerprint: string
  /** The host key's public line (`ssh-ed25519 AAAA...`). */
  hostPublicKey: string
  hostPublicKeyPath: string
  clientKeyPath: string
  user: string
  dir: string
  pid: number
  /** sshd's log so far (LogLevel VERBOSE: shows every authentication attempt). */
  log(): string
  /** Kills the per-connection sshd processes (not the listener): every client sees a dropped connection. */
  dropConnections(): void
  stop(): Promise<void>
}

export interface SshdOptions {
  /** Login user whose authorized key is the generated client key (default root). */
  user?: string
  /** sshd LogLevel (default VERBOSE). */
  logLevel?: string
  /** Environment of every session (sshd's SetEnv), e.g. CEPH_CONF for a test Ceph cluster. */
  setEnv?: Record<string, string>
}

export async function startSshd(options: SshdOptions = {}): Promise<TestSshd> {
  const sshd = requireTool('sshd', 'openssh-server')
  const keygen = requireTool('ssh-keygen', 'openssh-client')
  const user = options.user ?? 'root'
  // Readable by a non-root login user: sshd reads AuthorizedKeysFile as that user.
  const dir = mkdtempSync(join(tmpdir(), 'xc-sshd-'))
  chmodSync(dir, 0o755)
  mkdirSync('/run/sshd', {recursive: true})
  const hostKey = join(dir, 'ssh_host_ed25519_key')
  const clientKeyPath = join(dir, 'client_ed25519')
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'xc-test-host', '-f', hostKey])
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'xc-test-client', '-f', clientKeyPath])
  const authorizedKeys = join(dir, 'authorized_keys')
  writeFileSync(authorizedKeys, readFileSync(`${clientKeyPath}.pub`), {mode: 0o644})
  const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim()
  const hostFingerprint = execFileSync(keygen, ['-lf', `${hostKey}.pub`], {encoding: 'utf8'}).split(' ')[1]
  const port = await freePort()
  const config = join(dir, 'sshd_config')
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      `AllowUsers ${user}`,
      'Subsystem sftp internal-sftp',
      `LogLevel ${options.logLevel ?? 'VERBOSE'}`,
      // One line: sshd takes the first SetEnv line and ignores the rest.
      ...(options.setEnv
        ? [
            `SetEnv ${Object.entries(options.setEnv)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}`,
          ]
        : []),
      '',
    ].join('\n'),
  )
  const proc: ChildProcess = spawn(sshd, ['-D', '-e', '-f', config], {stdio: ['ignore', 'ignore', 'pipe']})
  let log = ''
  proc.stderr?.on('data', (d) => (log += d))
  const deadline = Date.now() + 10_000
  while (!(await listening(port))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`sshd did not start: ${log}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  const pid = proc.pid!
  return {
    port,
    hostFingerprint,
    hostPublicKey,
    hostPublicKeyPath: `${hostKey}.pub`,
    clientKeyPath,
    user,
    dir,
    pid,
    log: () => log,
    dropConnections() {
      for (const child of childrenOf(pid)) {
        try {
          process.kill(child, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGTERM')
        await exited
      }
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** PIDs whose parent is `pid` (read from /proc, so only our own sshd's sessions). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid
      } catch {
        return false
      }
    })
    .map(Number)
}
