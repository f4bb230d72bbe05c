import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {ROOT} from './cli.js'
import {requireTool} from './tools.js'

/**
 * A real host to run commands against that records every byte written to it: sshd on port 22 of
 * the given addresses, inside namespaces of its own (network, mount, UTS, PID), where every
 * directory of the machine's root filesystem is an overlay whose writes land in a tmpfs upper
 * layer. So a command that should change nothing can be checked by what a user would see (the
 * files, the hostname), and a command that does change something changes only the sandbox.
 * The machine's own /etc, packages and hostname are never touched.
 */
export interface SandboxHost {
  /** The network namespace (its name carries the test's tag). */
  ns: string
  hostFingerprint: string
  clientKeyPath: string
  /** Prefix for the CLI helper's `wrap`: run a process inside the sandbox's namespaces. */
  wrap: string[]
  /** Every path written in the sandbox (under the overlays), with a hash of what is there now. */
  snapshot(): Record<string, string>
  hostname(): string
  /** SIGSTOP / SIGCONT sshd: it accepts TCP connections but answers nothing while frozen. */
  freezeSshd(): void
  thawSshd(): void
  stop(): Promise<void>
}

/** sshd's own login accounting (not anything a command did), left out of snapshots. */
const SESSION_ACCOUNTING = ['var/log/wtmp', 'var/log/btmp', 'var/log/lastlog', 'run/utmp']

export async function startSandboxHost(options: {tag: string; addresses: string[]; setEnv?: Record<string, string>}): Promise<SandboxHost> {
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['unshare', 'util-linux'],
    ['nsenter', 'util-linux'],
    ['sshd', 'openssh-server'],
    ['ssh-keygen', 'openssh-client'],
  ])
    requireTool(tool, pkg)
  const ns = `xct-${options.tag}`
  const ip = (...args: string[]) => execFileSync('ip', args, {stdio: ['ignore', 'pipe', 'pipe']})
  try {
    ip('netns', 'del', ns)
  } catch {
    // none left over
  }
  ip('netns', 'add', ns)
  ip('-n', ns, 'link', 'set', 'lo', 'up')
  for (const address of options.addresses) ip('-n', ns, 'addr', 'add', `${address}/32`, 'dev', 'lo')

  // Keys and config live on the real filesystem (read through the overlays); the upper layers
  // live in a tmpfs outside every overlaid directory.
  const keys = mkdtempSync(join(tmpdir(), `${ns}-`))
  chmodSync(keys, 0o755)
  const layers = mkdtempSync(join('/dev/shm', `${ns}-`))
  const hostKey = join(keys, 'ssh_host_ed25519_key')
  const clientKeyPath = join(keys, 'client_ed25519')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'xct-sandbox-host', '-f', hostKey])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'xct-sandbox-client', '-f', clientKeyPath])
  writeFileSync(join(keys, 'authorized_keys'), readFileSync(`${clientKeyPath}.pub`), {mode: 0o644})
  const hostFingerprint = execFileSync('ssh-keygen', ['-lf', `${hostKey}.pub`], {encoding: 'utf8'}).split(' ')[1]
  writeFileSync(
    join(keys, 'sshd_config'),
    [
      'Port 22',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(keys, 'authorized_keys')}`,
      'PidFile none',
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      // The environment of every session (e.g. CEPH_CONF for a test Ceph cluster).
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

  // Every real directory of the root filesystem gets an overlay (not /proc, /sys, /dev).
  const rootDevice = lstatSync('/').dev
  const overlaid = readdirSync('/').filter((name) => {
    const st = lstatSync(join('/', name))
    return st.isDirectory() && st.dev === rootDevice && name !== 'lost+found'
  })
  const emptyHome = join(keys, 'root-home')
  mkdirSync(emptyHome, {mode: 0o700})
  const sshd = requireTool('sshd', 'openssh-server')
  const script = [
    'set -e',
    // root's home starts empty, as on a freshly installed node (this machine's shell profile
    // would otherwise write on every SSH login).
    ...overlaid.map(
      (d) =>
        `mkdir -p ${layers}/${d}/up ${layers}/${d}/work && mount -t overlay overlay -o lowerdir=${d === 'root' ? emptyHome : `/${d}`},upperdir=${layers}/${d}/up,workdir=${layers}/${d}/work /${d}`,
    ),
    // No cgroup of the machine is visible (or removable) in here.
    'mount -t tmpfs tmpfs /sys/fs/cgroup',
    'hostname xct-sandbox',
    'mkdir -p /run/sshd',
    `exec ${sshd} -D -e -f ${join(keys, 'sshd_config')}`,
  ].join('\n')
  writeFileSync(join(keys, 'start.sh'), script)
  const proc: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--uts', '--pid', '--fork', '--kill-child', '--mount-proc', 'sh', join(keys, 'start.sh')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  proc.stderr?.on('data', (d) => (log += d))
  for (const deadline = Date.now() + 10_000; !/Server listening on/.test(log); await new Promise((r) => setTimeout(r, 25))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`the sandbox's sshd did not start: ${log}`)
    }
  }
  // The sandbox's PID 1 (sshd, exec'd by the start script) is unshare's child.
  const sshdPid = Number(readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(/\s+/)[0])
  if (!sshdPid) throw new Error('no sandbox process found')
  const enter = ['nsenter', '-t', String(sshdPid), '-n', '-m', '-u', '-p', `--wd=${ROOT}`]

  const hashOf = (path: string): string => {
    const st = lstatSync(path)
    const meta = `${st.mode.toString(8)} ${st.uid}:${st.gid}`
    if (st.isSymbolicLink()) return `${meta} -> ${readlinkSync(path)}`
    if (st.isFile()) return `${meta} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`
    if (st.isCharacterDevice()) return `${meta} whiteout`
    return `${meta} ${st.isDirectory() ? 'dir' : 'other'}`
  }
  return {
    ns,
    hostFingerprint,
    clientKeyPath,
    wrap: enter,
    snapshot() {
      const out: Record<string, string> = {}
      const walk = (dir: string, rel: string) => {
        for (const entry of readdirSync(dir)) {
          const path = join(dir, entry)
          const relPath = `${rel}/${entry}`
          if (SESSION_ACCOUNTING.includes(relPath.slice(1))) continue
          out[relPath] = hashOf(path)
          if (lstatSync(path).isDirectory()) walk(path, relPath)
        }
      }
      for (const d of overlaid) {
        mkdirSync(join(layers, d, 'up'), {recursive: true})
        walk(join(layers, d, 'up'), `/${d}`)
      }
      return out
    },
    hostname: () => execFileSync('nsenter', ['-t', String(sshdPid), '-u', 'hostname'], {encoding: 'utf8'}).trim(),
    freezeSshd: () => process.kill(sshdPid, 'SIGSTOP'),
    thawSshd: () => process.kill(sshdPid, 'SIGCONT'),
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        try {
          process.kill(sshdPid, 'SIGCONT')
        } catch {
          // gone
        }
        proc.kill('SIGKILL')
        await exited
      }
      try {
        ip('netns', 'del', ns)
      } catch {
        // already gone
      }
      // The overlays were mounted in the sandbox's own mount namespace: they went with it.
      rmSync(layers, {recursive: true, force: true})
      rmSync(keys, {recursive: true, force: true})
    },
  }
}
