import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {join} from 'node:path'

import {env} from '../settings.js'
import {shellQuote} from '../ssh/shell.js'
import {labPaths, netnsName} from './paths.js'
import {findHost, labNotUp, readLabState, type LabHost, type LabState} from './state.js'
import {requireRoot} from './system.js'

export interface HostCommand {
  argv: string[]
  env: NodeJS.ProcessEnv
  /** How we reach the host, said once on stderr when it is not the usual path. */
  via: 'netns' | 'ssh' | 'nsenter'
}

/** OpenSSH from inside xc-admin with the lab key and pinned host keys (never StrictHostKeyChecking=no). */
export function sshArgv(state: LabState, host: LabHost, options: {tty: boolean}): string[] {
  const paths = labPaths(state.dir)
  return [
    'ip',
    'netns',
    'exec',
    netnsName('admin'),
    'ssh',
    '-F',
    '/dev/null',
    '-i',
    state.sshKey,
    '-o',
    `UserKnownHostsFile=${paths.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'ConnectTimeout=5',
    options.tty ? '-t' : '-T',
    '--',
    `${state.sshUser}@${host.ip}`,
  ]
}

/** The environment of a command on the lab's admin host. */
export function adminEnvironment(state: LabState): NodeJS.ProcessEnv {
  const paths = labPaths(state.dir)
  return {
    ...process.env,
    PATH: `${paths.bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    // Before bootstrap the lab's own etcd holds the state; after it, the cluster's (its
    // context, left in the admin host's PKI directory, is every command's default).
    ...(existsSync(join(paths.adminPki, state.cluster, 'context.json')) ? {} : {[env.etcd]: state.etcdEndpoint}),
    [env.cluster]: state.cluster,
    [env.labDir]: state.dir,
    // The admin host's files live in the lab, and go with it.
    [env.pkiDir]: paths.adminPki,
    [env.adminStateDir]: paths.adminServices,
    // The operator's key: the lab's nodes authorize it, as provisioned machines would.
    [env.sshKey]: state.sshKey,
  }
}

/**
 * The command line that runs `command` on a lab host: admin through its namespace (with the
 * lab's etcd and the CLI shim on PATH), an addressed node through real OpenSSH, an unaddressed
 * node by entering its container's namespaces. An empty command means an interactive shell.
 */
export function hostCommand(state: LabState, name: string, command: string[]): HostCommand {
  const host = findHost(state, name)
  const interactive = command.length === 0
  if (host.kind === 'admin') {
    return {
      argv: ['ip', 'netns', 'exec', host.netns, ...(interactive ? [process.env.SHELL || '/bin/bash', '-l'] : command)],
      env: adminEnvironment(state),
      via: 'netns',
    }
  }
  if (host.ip) {
    // ssh hands the remote shell one string: quote each word so argv survives it.
    return {argv: [...sshArgv(state, host, {tty: interactive}), ...command.map(shellQuote)], env: process.env, via: 'ssh'}
  }
  if (host.pid === undefined) throw labNotUp(state.dir, `node ${name} is not running`)
  return {
    argv: ['nsenter', '-t', String(host.pid), '-a', ...(interactive ? ['/bin/bash', '-l'] : command)],
    env: {PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', TERM: process.env.TERM ?? 'dumb', HOME: '/root'},
    via: 'nsenter',
  }
}

/** Runs a command on a lab host with our stdio; resolves to its exit code (signals as 128+n). */
export async function execOnHost(name: string, command: string[], options: {dir?: string; notice?: (msg: string) => void} = {}): Promise<number> {
  requireRoot()
  const state = readLabState(options.dir)
  const cmd = hostCommand(state, name, command)
  if (cmd.via === 'nsenter') options.notice?.(`${name} has no IP address: entering its container with nsenter instead of SSH.`)
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.argv[0], cmd.argv.slice(1), {stdio: 'inherit', env: cmd.env})
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? osSignal(signal) : 0)))
  })
}

const osSignal = (signal: NodeJS.Signals): number => ({SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15})[signal as string] ?? 1
