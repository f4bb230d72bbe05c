import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {randomUUID} from 'node:crypto'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {freePort} from './etcd.js'
import {requireTool} from './tools.js'

/** A real single-host Ceph cluster (1 mon, 1 mgr, memstore OSDs) on loopback, for one test file. */
export interface TestCeph {
  /** Its ceph.conf: `ceph -c CONF` or CEPH_CONF=CONF. */
  conf: string
  dir: string
  ceph(args: string[]): string
  cephJson<T>(args: string[]): T
  stop(): Promise<void>
}

export interface CephOptions {
  /** CRUSH host of each OSD, in OSD id order: e.g. ['s4', 's5', 's5']. */
  osdHosts: string[]
  /** An empty directory to keep the cluster in (default: a new one under the temp dir); removed by stop(). */
  dir?: string
  /**
   * A network namespace to run every daemon and CLI call in (`ip netns exec`), e.g. a sandbox
   * host's: its loopback is where the cluster then answers, for the sandbox's own sshd sessions.
   */
  netns?: string
  /** The address the monitor listens on (default 127.0.0.1): a namespace's own, for clients beyond its loopback. */
  address?: string
}

/**
 * The recipe from LAB-NOTES: memstore OSDs (no disks), pool size 1 and OSD-level placement, so a
 * few OSDs on one machine behave like OSDs on several hosts. Daemons run in the foreground as
 * children of the test, so nothing outlives it.
 */
export async function startCeph(options: CephOptions): Promise<TestCeph> {
  for (const tool of ['ceph-mon', 'ceph-mgr', 'ceph-osd']) requireTool(tool, tool)
  requireTool('ceph', 'ceph-common')
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'xct-ceph-'))
  // `ip netns exec` execs the command itself: the child's pid is the daemon's, for the kill.
  const inNs = (cmd: string, args: string[]): [string, string[]] => (options.netns ? ['ip', ['netns', 'exec', options.netns, cmd, ...args]] : [cmd, args])
  const fsid = randomUUID()
  const address = options.address ?? '127.0.0.1'
  const [v2, v1] = [await freePort(), await freePort()]
  const conf = join(dir, 'ceph.conf')
  for (const sub of ['run', 'log', 'mon.a', 'mgr.x']) mkdirSync(join(dir, sub))
  writeFileSync(
    conf,
    `[global]
fsid = ${fsid}
mon host = [v2:${address}:${v2},v1:${address}:${v1}]
keyring = ${dir}/keyring
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
osd objectstore = memstore
memstore device bytes = 268435456
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
mon data avail crit = 0
mon data avail warn = 0
auth allow insecure global id reclaim = false
[client]
# One socket per client process, as Ceph's default is: a shared one owned by a frozen client (a
# paused leader's rbd call) made every new client wait ~10 s for that owner to answer.
admin socket = ${dir}/run/$cluster-$name.$pid.$cctid.asok
[mon]
mon data = ${dir}/mon.$id
[mgr]
mgr data = ${dir}/mgr.$id
keyring = ${dir}/mgr.$id/keyring
[osd]
osd data = ${dir}/osd.$id
keyring = ${dir}/osd.$id/keyring
`,
  )
  const procs: ChildProcess[] = []
  const run = (cmd: string, args: string[]) => execFileSync(...inNs(cmd, args), {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000})
  const ceph = (args: string[]) => run('ceph', ['-c', conf, '--connect-timeout', '20', ...args])
  const daemon = (cmd: string, args: string[]) => {
    const p = spawn(...inNs(cmd, ['-f', '-c', conf, ...args]), {stdio: ['ignore', 'ignore', 'pipe']})
    procs.push(p)
    return p
  }
  const stop = async () => {
    await Promise.all(
      procs.map((p) => {
        if (p.exitCode !== null || p.signalCode !== null) return undefined
        const exited = new Promise((r) => p.once('exit', r))
        p.kill('SIGKILL')
        return exited
      }),
    )
    rmSync(dir, {recursive: true, force: true})
  }
  try {
    const monKeyring = join(dir, 'mon.keyring')
    run('ceph-authtool', ['--create-keyring', monKeyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *'])
    run('ceph-authtool', [
      '--create-keyring',
      join(dir, 'keyring'),
      '--gen-key',
      '-n',
      'client.admin',
      '--cap',
      'mon',
      'allow *',
      '--cap',
      'osd',
      'allow *',
      '--cap',
      'mgr',
      'allow *',
      '--cap',
      'mds',
      'allow *',
    ])
    run('ceph-authtool', [monKeyring, '--import-keyring', join(dir, 'keyring')])
    run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:${address}:${v2},v1:${address}:${v1}]`, join(dir, 'monmap')])
    run('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', monKeyring])
    daemon('ceph-mon', ['-i', 'a'])
    ceph(['auth', 'get-or-create', 'mgr.x', 'mon', 'allow profile mgr', 'osd', 'allow *', 'mds', 'allow *', '-o', join(dir, 'mgr.x', 'keyring')])
    daemon('ceph-mgr', ['-i', 'x'])
    for (const host of options.osdHosts) {
      const uuid = randomUUID()
      const id = ceph(['osd', 'new', uuid]).trim()
      const data = join(dir, `osd.${id}`)
      mkdirSync(data)
      run('ceph-osd', ['-c', conf, '-i', id, '--mkfs', '--mkkey', '--osd-uuid', uuid, '--no-mon-config'])
      ceph(['auth', 'add', `osd.${id}`, 'osd', 'allow *', 'mon', 'allow profile osd', 'mgr', 'allow profile osd', '-i', join(data, 'keyring')])
      // Where CRUSH puts it: the OSD registers itself under this host bucket on start.
      daemon('ceph-osd', ['-i', id, '--crush-location', `root=default host=${host}`])
    }
    const deadline = Date.now() + 60_000
    while (JSON.parse(ceph(['osd', 'stat', '--format', 'json'])).num_up_osds !== options.osdHosts.length) {
      if (Date.now() > deadline) throw new Error(`Ceph OSDs did not come up: ${ceph(['osd', 'tree'])}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  } catch (err) {
    await stop()
    throw err
  }
  return {
    conf,
    dir,
    ceph,
    cephJson: <T>(args: string[]) => JSON.parse(ceph([...args, '--format', 'json'])) as T,
    stop,
  }
}

/**
 * A one-OSD Ceph with an `rbd` pool, made the cluster of this process and its children
 * (CEPH_CONF: the serve daemons, the CLI, RbdCli): the elections' RBD tests. The caller deletes
 * CEPH_CONF when it stops the cluster.
 */
export async function startRbdCeph(): Promise<TestCeph> {
  const ceph = await startCeph({osdHosts: ['s4']})
  ceph.ceph(['osd', 'pool', 'create', 'rbd', '8', '8'])
  ceph.ceph(['osd', 'pool', 'application', 'enable', 'rbd', 'rbd'])
  process.env.CEPH_CONF = ceph.conf
  return ceph
}
