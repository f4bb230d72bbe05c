import {chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {Listr, ListrLogger, ProcessOutput} from 'listr2'

import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import {labDown, labExists} from './down.js'
import {createLan} from './network.js'
import {bootNode, prepareNode, waitNodeReady, type NodeIdentity} from './node.js'
import {ensureHostLimits, ensureHostPackages, missingHostPackages} from './packages.js'
import {LAN_NETNS, labDir, labPaths, netnsName, PACKAGE_ROOT} from './paths.js'
import {ensureRootfs, rootfsCachePath} from './rootfs.js'
import {startEtcd, startPackageProxy} from './services.js'
import {writeLabState, type LabHost, type LabState} from './state.js'
import {must, requireRoot} from './system.js'
import {labTopology, type LabTopology} from './topology.js'

export interface LabUpOptions {
  specFile: string
  extraNodes: number
  dir?: string
  /** How progress is shown: a live task list on a terminal, plain lines on stderr, or nothing. */
  progress: 'tty' | 'plain' | 'silent'
}

export interface LabUpResult {
  state: LabState
  seconds: number
  rootfsBuilt: boolean
  installedPackages: string[]
}

interface UpContext {
  rootfs: string
  rootfsBuilt: boolean
  installedPackages: string[]
  publicKey: string
  identities: Map<string, NodeIdentity>
  squidPort: number
}

/** What `lab up --dry-run` reports: what a real `lab up` would do, found without changing anything. */
export interface LabUpPlan {
  dryRun: true
  dir: string
  /** A previous lab (state, namespaces or cgroups) that would be removed first. */
  removesPreviousLab: boolean
  installsPackages: string[]
  buildsRootfs: boolean
  hosts: {name: string; ip: string | null; netns: string}[]
  steps: string[]
}

/** `lab up --dry-run`: the spec is checked as for a real run; the host is only read. */
export async function planLabUp(options: Pick<LabUpOptions, 'specFile' | 'extraNodes' | 'dir'>): Promise<LabUpPlan> {
  const topology = labTopology(options.specFile, options.extraNodes)
  const dir = options.dir ?? labDir()
  const removesPreviousLab = await labExists(dir)
  const installsPackages = await missingHostPackages()
  const rootfs = rootfsCachePath()
  const buildsRootfs = !existsSync(join(rootfs, 'etc', 'os-release'))
  const hosts = [{name: 'admin', ip: topology.gateway, netns: netnsName('admin')}, ...topology.nodes.map((n) => ({name: n.name, ip: n.ip ?? null, netns: netnsName(n.name)}))]
  const steps = [
    ...(removesPreviousLab ? [`remove the previous lab (lab down) in ${dir}`] : []),
    ...(installsPackages.length > 0 ? [`apt-get install ${installsPackages.join(' ')}`] : []),
    buildsRootfs ? `build the node root filesystem with debootstrap in ${rootfs}` : `use the cached node root filesystem ${rootfs}`,
    `create the lab network: namespaces ${hosts.map((h) => h.netns).join(' ')} and ${LAN_NETNS}`,
    `start the package proxy and etcd on the admin host ${topology.gateway}`,
    ...topology.nodes.map((n) => `boot ${n.name} (${n.type}, ${n.mac}${n.ip ? `, ${n.ip}` : ', unaddressed'})`),
    `write the lab state to ${dir}`,
  ]
  return {dryRun: true, dir, removesPreviousLab, installsPackages, buildsRootfs, hosts, steps}
}

/** `lab up`: validate the spec, clean any previous lab, then build the lab phase by phase. */
export async function labUp(options: LabUpOptions): Promise<LabUpResult> {
  requireRoot()
  const started = Date.now()
  // Parse and validate before touching anything: bad input writes nothing.
  const topology = labTopology(options.specFile, options.extraNodes)
  const dir = options.dir ?? labDir()
  const paths = labPaths(dir)
  const adminIp = topology.gateway
  // The nodes' apt proxy is the spec's (the admin host's cache, which bootstrap starts); the lab
  // itself only provides the way out, on the upstream port.
  const proxyUrl = topology.nodeProxy ?? 'DIRECT'
  const upstreamUrl = `http://${adminIp}:${settings.lab.upstreamProxyPort}`
  const cidr = (ip: string) => `${ip}/${topology.prefixLength}`

  const tasks = new Listr<UpContext>(
    [
      {
        title: 'Clean up a previous lab',
        skip: async () => !(await labExists(dir)) && 'no previous lab',
        task: async () => void (await labDown({dir})),
      },
      {
        title: 'Prepare the host',
        task: async (ctx, task) => {
          ctx.installedPackages = await ensureHostPackages()
          const {inotifyInstances} = ensureHostLimits(topology.nodes.length)
          const packages = ctx.installedPackages.length > 0 ? `installed ${ctx.installedPackages.join(', ')}` : 'packages present'
          task.title = `Host ready: ${packages}, inotify instances ${inotifyInstances}`
        },
      },
      {
        title: 'Node root filesystem',
        task: async (ctx, task) => {
          task.output = 'debootstrap (first run only, ~1 min)'
          const {path, built} = await ensureRootfs()
          ctx.rootfs = path
          ctx.rootfsBuilt = built
          task.title = `Node root filesystem ${built ? 'built' : 'cached'}: ${path}`
        },
      },
      {
        title: 'Create the lab network',
        task: async (ctx) => {
          for (const d of [paths.dir, paths.run, paths.log, paths.bin, paths.nodes]) mkdirSync(d, {recursive: true})
          await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'xcluster-lab', '-f', paths.sshKey])
          ctx.publicKey = readFileSync(`${paths.sshKey}.pub`, 'utf8')
          ctx.identities = new Map()
          await createLan([
            {host: 'admin', mac: adminMac(), cidr: cidr(adminIp)},
            ...topology.nodes.map((n) => ({host: n.name, mac: n.mac, cidr: n.ip ? cidr(n.ip) : undefined, gateway: n.ip ? adminIp : undefined})),
          ])
        },
      },
      {
        title: 'Start the admin host and boot the nodes',
        task: (_, task) =>
          task.newListr(
            [
              {
                title: `The lab's way out for packages on ${upstreamUrl}`,
                task: async (ctx) => void (ctx.squidPort = (await startPackageProxy(paths, adminIp)).squidPort),
              },
              {title: `etcd on http://${adminIp}:2379`, task: async () => void (await startEtcd(paths, adminIp))},
              ...topology.nodes.map((node) => ({
                title: `${node.name}${node.ip ? ` (${node.ip})` : ''}`,
                task: async (ctx: UpContext) => {
                  ctx.identities.set(node.name, await prepareNode(paths, ctx.rootfs, node, topology, ctx.publicKey))
                  await bootNode(paths, node)
                  await waitNodeReady(paths, node)
                },
              })),
            ],
            {concurrent: true, exitOnError: true},
          ),
      },
      {
        title: 'Write the lab state',
        task: async (ctx) => {
          const state = buildState(dir, topology, options.specFile, ctx, adminIp, proxyUrl)
          writeLabFiles(state, topology)
          writeLabState(state)
        },
      },
    ],
    {
      renderer: options.progress === 'tty' ? 'default' : options.progress === 'plain' ? 'simple' : 'silent',
      rendererOptions: options.progress === 'plain' ? {logger: new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})} : {},
      exitOnError: true,
      registerSignalListeners: false,
      ctx: {identities: new Map()} as unknown as UpContext,
    } as never,
  )
  const ctx = await tasks.run()
  return {state: buildState(dir, topology, options.specFile, ctx, adminIp, proxyUrl), seconds: (Date.now() - started) / 1000, rootfsBuilt: ctx.rootfsBuilt, installedPackages: ctx.installedPackages}
}

/** The admin host's MAC: locally administered, outside the node MAC plan. */
const adminMac = () => '02:58:43:00:00:01'

function buildState(dir: string, topology: LabTopology, specFile: string, ctx: UpContext, adminIp: string, proxyUrl: string): LabState {
  const paths = labPaths(dir)
  const hosts: LabHost[] = [
    {name: 'admin', kind: 'admin', netns: netnsName('admin'), mac: adminMac(), ip: adminIp},
    ...topology.nodes.map((n) => ({
      name: n.name,
      kind: 'node' as const,
      netns: netnsName(n.name),
      mac: n.mac,
      ...(n.ip ? {ip: n.ip} : {}),
      type: n.type,
      ...ctx.identities.get(n.name),
    })),
  ]
  return {
    dir,
    cluster: topology.cluster,
    specFile: paths.spec,
    sshKey: paths.sshKey,
    sshUser: topology.sshUser,
    etcdEndpoint: `http://${adminIp}:2379`,
    adminIp,
    proxyUrl,
    upstreamProxyUrl: `http://${adminIp}:${settings.lab.upstreamProxyPort}`,
    hosts,
    rootfs: ctx.rootfs,
    squidPort: ctx.squidPort,
    createdAt: new Date().toISOString(),
  }
}

/** known_hosts (pinned keys for StrictHostKeyChecking=yes), the effective spec and the CLI shim. */
function writeLabFiles(state: LabState, topology: LabTopology): void {
  const paths = labPaths(state.dir)
  const knownHosts = state.hosts
    .filter((h) => h.ip && h.hostPublicKey)
    .map((h) => `${h.ip},${h.name} ${h.hostPublicKey}`)
    .join('\n')
  writeFileSync(paths.knownHosts, `${knownHosts}\n`)
  writeFileSync(paths.spec, topology.effectiveSpecYaml)
  const shim = join(paths.bin, 'xcluster')
  writeFileSync(shim, renderTemplate('lab/xcluster-shim.sh', {node: process.execPath, bin: join(PACKAGE_ROOT, 'bin', 'run.js')}))
  chmodSync(shim, 0o755)
}
