import {posix} from 'node:path'

import {renderDnsmasqConfig} from '../dhcp/dnsmasq.js'
import {pxeSettings} from '../dhcp/pxe.js'
import {renderEnlistScript} from '../nodes/enlistment.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import {adminLayout, type AdminLayout} from './layout.js'
import {mirrorUrlPatterns, packageSettings} from './packages.js'

export const ADMIN_SERVICE_NAMES = ['ntp', 'dns-tftp', 'http', 'package-cache', 'ansible'] as const
export type AdminServiceName = (typeof ADMIN_SERVICE_NAMES)[number]

/** A port a service binds: what the preflight checks and a start waits for. */
export interface AdminPort {
  port: number
  protocol: 'tcp' | 'udp'
  address: string
}

/** One of the admin host's services, as both forms run it. */
export interface AdminService {
  name: AdminServiceName
  /** For people: `NTP (chronyd)`. */
  title: string
  /** False for Ansible: a toolbox (Compose keeps a container to exec into; --native only writes its files). */
  daemon: boolean
  /** The program and the Debian package that ships it. */
  binary: string
  debianPackage: string
  /** The foreground command (no daemonizing: the supervisor, systemd or Compose, keeps it). */
  argv: string[]
  /** A command run to completion before each start (Squid's cache directories). */
  prepare?: string[]
  ports: AdminPort[]
}

/** A rendered file, relative to the root (and to the Compose bundle's directory). */
export interface AdminFile {
  path: string
  content: string
  mode: number
  service: AdminServiceName
  /** A config the daemon reads at start: a change restarts it. Served content does not. */
  restarts: boolean
}

/** A file copied from a Debian package into the root (the iPXE binaries). */
export interface AdminCopy {
  path: string
  source: string
  debianPackage: string
  service: AdminServiceName
}

/** A directory a daemon writes, with its owner (a user its Debian package creates). */
export interface AdminDirectory {
  path: string
  owner: string
  service: AdminServiceName
}

export interface AdminServicesBundle {
  cluster: string
  /** The absolute root every rendered path is relative to. */
  root: string
  services: AdminService[]
  files: AdminFile[]
  copies: AdminCopy[]
  directories: AdminDirectory[]
  /** compose.yaml and the Dockerfile its images are built from. */
  compose: string
  dockerfile: string
}

export interface RenderAdminOptions {
  /** Where the services live (and the same path inside the containers). Default: settings.adminServices.stateDir. */
  root?: string
  /** The admin host's interface on the cluster network (holding the gateway address). Default: settings.lanInterface. */
  interface?: string
  /** Addresses of nodes without a fixed IP (e.g. their leases), for the Ansible inventory. */
  nodeAddresses?: Record<string, string>
  /** Pinned host keys (`ADDRESS[,NAME] TYPE KEY` lines) for Ansible's known_hosts. */
  knownHosts?: string[]
  /** The cluster's SSH public key: the enlist script authorizes it, so the cluster can provision the machine. */
  clusterPublicKey?: string
}

/**
 * Renders every file of the admin host's services from the spec: NTP (chrony), DNS and TFTP
 * (dnsmasq, with the iPXE binaries), HTTP (nginx: the boot script and install media), the
 * package cache (Squid, only when the nodes use the admin host's cache) and Ansible's files;
 * plus the Compose bundle that runs the same files in containers. Pure: reads and writes nothing.
 */
export function renderAdminServices(spec: ClusterSpec, options: RenderAdminOptions = {}): AdminServicesBundle {
  const tune = settings.adminServices
  const layout = adminLayout(options.root ?? tune.stateDir)
  const gateway = spec.network.gateway
  const packages = packageSettings(spec)
  const pxe = pxeSettings(spec)
  const bootPath = new URL(pxe.httpBootUrl).pathname
  const httpPort = tune.ports.http
  const baseUrl = `http://${gateway}${httpPort === 80 ? '' : `:${httpPort}`}`
  const rel = (path: string): string => posix.relative(layout.root, path)
  const config = (name: string): string => posix.join(layout.config, name)

  const services: AdminService[] = [
    {
      name: 'ntp',
      title: 'NTP (chronyd)',
      daemon: true,
      binary: 'chronyd',
      debianPackage: 'chrony',
      argv: ['chronyd', '-d', '-x', '-f', config('chrony.conf')],
      ports: [{port: tune.ports.ntp, protocol: 'udp', address: gateway}],
    },
    {
      name: 'dns-tftp',
      title: 'DNS and TFTP (dnsmasq)',
      daemon: true,
      binary: 'dnsmasq',
      debianPackage: 'dnsmasq-base',
      argv: ['dnsmasq', '--keep-in-foreground', `--conf-file=${config('dnsmasq.conf')}`],
      ports: [
        {port: tune.ports.dns, protocol: 'udp', address: gateway},
        {port: tune.ports.dns, protocol: 'tcp', address: gateway},
        {port: tune.ports.tftp, protocol: 'udp', address: gateway},
      ],
    },
    {
      name: 'http',
      title: 'HTTP (nginx)',
      daemon: true,
      binary: 'nginx',
      debianPackage: 'nginx-light',
      argv: ['nginx', '-c', config('nginx.conf')],
      ports: [{port: httpPort, protocol: 'tcp', address: gateway}],
    },
    ...(packages.adminCache
      ? [
          {
            name: 'package-cache' as const,
            title: 'package cache (squid)',
            daemon: true,
            binary: 'squid',
            debianPackage: 'squid',
            argv: ['squid', '-N', '-f', config('squid.conf')],
            prepare: ['squid', '-z', '-N', '-f', config('squid.conf')],
            ports: [{port: settings.packageProxyPort, protocol: 'tcp' as const, address: gateway}],
          },
        ]
      : []),
    {
      name: 'ansible',
      title: 'Ansible',
      daemon: false,
      binary: 'ansible-playbook',
      debianPackage: 'ansible-core',
      argv: ['sleep', 'infinity'],
      ports: [],
    },
  ]

  const file = (service: AdminServiceName, path: string, content: string, restarts = true): AdminFile => ({path: rel(path), content, mode: 0o644, service, restarts})
  const common = {cluster: spec.cluster, gateway, run: layout.run}
  const files: AdminFile[] = [
    file('ntp', config('chrony.conf'), renderTemplate('admin/chrony.conf', {...common, subnet: spec.network.subnet, port: tune.ports.ntp})),
    file('dns-tftp', config('dnsmasq.conf'), renderTemplate('admin/dnsmasq.conf', {...common, clusterConf: config('dnsmasq-cluster.conf')})),
    file('dns-tftp', config('dnsmasq-cluster.conf'), renderDnsmasqConfig(spec, {interface: options.interface ?? settings.lanInterface, tftpRoot: layout.tftpRoot, port: tune.ports.dns})),
    file(
      'http',
      config('nginx.conf'),
      renderTemplate('admin/nginx.conf', {...common, port: httpPort, httpRoot: layout.httpRoot, cache: layout.nginxCache, bootPath, bootUrl: pxe.httpBootUrl, mediaDir: tune.mediaDir}),
    ),
    file(
      'http',
      posix.join(layout.httpRoot, bootPath),
      renderTemplate('admin/boot.ipxe', {...common, bootUrl: pxe.httpBootUrl, baseUrl, mediaDir: tune.mediaDir, installerKernel: tune.installerKernel, installerInitrd: tune.installerInitrd}),
      false,
    ),
    // What a new machine runs to enlist (its installer's late command fetches it from here).
    file('http', posix.join(layout.httpRoot, settings.enlistment.scriptPath), renderEnlistScript(spec, options.clusterPublicKey), false),
    ...ansibleFiles(spec, layout, options).map((f) => file('ansible', f.path, f.content, false)),
  ]
  if (packages.adminCache) {
    const upstream = packages.upstream ? new URL(packages.upstream) : undefined
    files.push(
      file(
        'package-cache',
        config('squid.conf'),
        renderTemplate('admin/squid.conf', {
          ...common,
          port: settings.packageProxyPort,
          subnet: spec.network.subnet,
          squidRun: layout.squidRun,
          squidLog: layout.squidLog,
          cacheDir: layout.squidCache,
          cacheMb: tune.squidCacheMb,
          maxObjectMb: tune.squidMaxObjectMb,
          memoryMb: tune.squidMemoryMb,
          mirrors: mirrorUrlPatterns(packages.mirrors),
          upstream: upstream ? {host: upstream.hostname, port: Number(upstream.port || 80)} : undefined,
        }),
      ),
    )
  }

  const copies: AdminCopy[] = [
    {path: rel(posix.join(layout.tftpRoot, pxe.biosBootFile)), source: posix.join(tune.ipxeDir, tune.ipxeBios), debianPackage: 'ipxe', service: 'dns-tftp'},
    {path: rel(posix.join(layout.tftpRoot, pxe.uefiBootFile)), source: posix.join(tune.ipxeDir, tune.ipxeUefi), debianPackage: 'ipxe', service: 'dns-tftp'},
  ]
  const directories: AdminDirectory[] = [
    {path: rel(layout.run), owner: 'root', service: 'ntp'},
    {path: rel(layout.log), owner: 'root', service: 'ntp'},
    {path: rel(posix.join(layout.httpRoot, tune.mediaDir)), owner: 'root', service: 'http'},
    {path: rel(layout.nginxCache), owner: 'root', service: 'http'},
    ...(packages.adminCache ? (['squidRun', 'squidCache', 'squidLog'] as const).map((k) => ({path: rel(layout[k]), owner: 'proxy', service: 'package-cache' as const})) : []),
  ]

  const daemons = services.filter((s) => s.daemon)
  const sshKey = spec.ssh.key
  const dockerfile = renderTemplate('admin/Dockerfile', {
    cluster: spec.cluster,
    baseImage: tune.baseImage,
    servicePackages: [...new Set([...daemons.map((s) => s.debianPackage), ...copies.map((c) => c.debianPackage)])].sort().join(' '),
    ansiblePackages: tune.ansiblePackages.join(' '),
    tftpRoot: layout.tftpRoot,
    tftpFiles: copies.map((c) => ({source: c.source, path: posix.join(layout.root, c.path)})),
    directories: directories.map((d) => ({path: posix.join(layout.root, d.path), owner: d.owner})),
  })
  const compose = renderTemplate('admin/compose.yaml', {
    cluster: spec.cluster,
    gateway,
    config: layout.config,
    httpRoot: layout.httpRoot,
    ansibleDir: layout.ansible,
    squidCache: layout.squidCache,
    packageCache: packages.adminCache,
    servicesImage: tune.servicesImage,
    ansibleImage: tune.ansibleImage,
    sshKeyHost: sshKey,
    sshKeyContainer: containerKeyPath(sshKey),
  })
  return {cluster: spec.cluster, root: layout.root, services, files, copies, directories, compose, dockerfile}
}

/** The operator's key inside the Ansible container: `~/` is root's home there. */
const containerKeyPath = (key: string): string => (key.startsWith('~/') ? posix.join('/root', key.slice(2)) : key)

function ansibleFiles(spec: ClusterSpec, layout: AdminLayout, options: RenderAdminOptions): {path: string; content: string}[] {
  const types = [...new Set(spec.nodes.map((n) => n.type))]
  const groups = types
    .map((type) =>
      renderTemplate('admin/ansible/inventory-group.yaml', {
        type,
        hosts: spec.nodes
          .filter((n) => n.type === type)
          // A node without a fixed address or a known lease is named by its DNS name.
          .map((n) => ({name: n.name, address: n.ip ?? options.nodeAddresses?.[n.name] ?? `${n.name}.${spec.network.domain}`})),
      }),
    )
    .join('')
  const vars = {cluster: spec.cluster, ansibleDir: layout.ansible, sshUser: spec.ssh.user, sshKey: spec.ssh.key}
  return [
    {path: posix.join(layout.ansible, 'ansible.cfg'), content: renderTemplate('admin/ansible/ansible.cfg', vars)},
    {path: posix.join(layout.ansible, 'inventory.yaml'), content: renderTemplate('admin/ansible/inventory.yaml', {...vars, groups: groups.trimEnd()})},
    {path: posix.join(layout.ansible, 'known_hosts'), content: renderTemplate('admin/ansible/known_hosts', {cluster: spec.cluster, knownHosts: options.knownHosts ?? []})},
  ]
}
