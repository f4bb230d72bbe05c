import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {renderKeepalivedConfig} from '../../src/lib/election/keepalived.js'
import {namespaceAddresses} from '../../src/lib/election/vip.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {NamespaceLan} from './netns-lan.js'
import {requireTool} from './tools.js'

const ip = (...args: string[]): string => execFileSync('ip', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})

/** One keepalived in its own namespace `<prefix><node>`, on a bridge shared with its peers. */
export interface VrrpNode {
  node: string
  namespace: string
  address: string
  healthFile: string
  proc?: ChildProcess
  /** keepalived's VRRP child (its -r pid file): a crash kills both. */
  vrrpPid(): number | undefined
}

/**
 * Real keepalived (VRRP) in network namespaces bridged together, using the config xcluster
 * renders. Everything lives in namespaces named `<prefix>*`; nothing touches the root namespace.
 */
export class VrrpLab {
  readonly nodes: VrrpNode[]
  readonly lan: NamespaceLan

  constructor(
    readonly spec: ClusterSpec,
    readonly prefix: string,
    readonly dir: string,
    nodeNames: string[],
    /**
     * vip: the address VRRP moves (default: the spec's admin VIP), e.g. a service's VIP;
     * advertInt: keepalived's advert_int for every node (default: what xcluster renders).
     */
    readonly options: {vip?: string; advertInt?: number} = {},
  ) {
    requireTool('keepalived', 'keepalived')
    this.nodes = nodeNames.map((node) => {
      const n = spec.nodes.find((x) => x.name === node)
      return {
        node,
        namespace: `${prefix}${node}`,
        address: n?.ip ?? '',
        healthFile: join(dir, `${node}.healthy`),
        vrrpPid: () => readPid(join(dir, node, 'vrrp.pid')),
      }
    })
    this.lan = new NamespaceLan(
      prefix,
      this.nodes.map((n) => ({name: n.node, address: n.address})),
      Number(spec.network.subnet.split('/')[1]),
    )
  }

  setUp(): void {
    this.tearDown()
    mkdirSync(this.dir, {recursive: true})
    this.lan.setUp()
    for (const n of this.nodes) writeFileSync(n.healthFile, 'ok\n')
  }

  start(node: string): void {
    const n = this.get(node)
    const dir = join(this.dir, node)
    mkdirSync(dir, {recursive: true})
    // A crashed instance leaves its pid files; if a new process got that pid, keepalived would
    // believe it is already running and exit.
    for (const f of ['keepalived.pid', 'vrrp.pid', 'checkers.pid']) rmSync(join(dir, f), {force: true})
    const conf = join(dir, 'keepalived.conf')
    const {vip, advertInt} = this.options
    writeFileSync(conf, renderKeepalivedConfig(this.spec, {node, trackScript: `/usr/bin/test -e ${n.healthFile}`, ...(vip ? {vip} : {}), ...(advertInt ? {advertInt} : {})}))
    const out = openSync(join(dir, 'keepalived.log'), 'a')
    n.proc = spawn(
      'ip',
      [
        'netns',
        'exec',
        n.namespace,
        'keepalived',
        '--dont-fork',
        '--log-console',
        '--vrrp',
        '-f',
        conf,
        '-p',
        join(dir, 'keepalived.pid'),
        '-r',
        join(dir, 'vrrp.pid'),
        '-c',
        join(dir, 'checkers.pid'),
      ],
      {stdio: ['ignore', out, out]},
    )
    closeSync(out)
  }

  /** A crash: SIGKILL keepalived and its VRRP child. The VIP stays behind on the interface. */
  async crash(node: string): Promise<void> {
    const n = this.get(node)
    const child = n.vrrpPid()
    const exited = n.proc && n.proc.exitCode === null ? new Promise((r) => n.proc?.once('exit', r)) : Promise.resolve()
    // The VRRP child first: killed after its parent, it may get the parent-death SIGTERM in
    // between and give the VIP up cleanly, which is not what a crashed node does.
    if (child) killQuietly(child, 'SIGKILL')
    n.proc?.kill('SIGKILL')
    await exited
  }

  async stop(node: string): Promise<void> {
    const n = this.get(node)
    if (!n.proc || n.proc.exitCode !== null) return
    const exited = new Promise((r) => n.proc?.once('exit', r))
    n.proc.kill('SIGTERM')
    await exited
  }

  /** What the harness does after a crash: remove the VIP the dead keepalived left behind. */
  removeLeftover(node: string, vip: string): boolean {
    const n = this.get(node)
    const prefixLength = this.spec.network.subnet.split('/')[1]
    try {
      ip('-n', n.namespace, 'addr', 'del', `${vip}/${prefixLength}`, 'dev', 'eth0')
      return true
    } catch {
      return false
    }
  }

  async holders(vip: string): Promise<string[]> {
    const held = await Promise.all(this.nodes.map(async (n) => ((await namespaceAddresses(n.namespace)).includes(vip) ? n.node : undefined)))
    return held.filter((x): x is string => x !== undefined)
  }

  setHealthy(node: string, healthy: boolean): void {
    const n = this.get(node)
    if (healthy) writeFileSync(n.healthFile, 'ok\n')
    else rmSync(n.healthFile, {force: true})
  }

  tearDown(): void {
    for (const n of this.nodes) {
      n.proc?.kill('SIGKILL')
      const child = n.vrrpPid()
      if (child) killQuietly(child, 'SIGKILL')
      const parent = readPid(join(this.dir, n.node, 'keepalived.pid'))
      if (parent) killQuietly(parent, 'SIGKILL')
    }
    this.lan.tearDown()
  }

  private get(node: string): VrrpNode {
    const n = this.nodes.find((x) => x.node === node)
    if (!n) throw new Error(`no VRRP node ${node}`)
    return n
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim())
    return pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}
