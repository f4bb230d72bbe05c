/**
 * `xcluster inventory export DIR`: everything Ansible needs to work on the cluster the way
 * xcluster does, rendered from templates/ansible/: ansible.cfg (the plugin enabled, host keys
 * checked against DIR/known_hosts only), cluster.xcluster.yml (the plugin's source: how to run
 * the CLI against this etcd), the plugin itself, and known_hosts with the pinned keys.
 *
 * Planned first, written after: the plan is the same for a dry run and a real one, which only
 * adds the writes. A file is replaced only if an earlier export wrote it (it carries the marker),
 * so an operator's own ansible.cfg is never overwritten.
 */
import {existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'

import {ExitStatus, XclusterError, usageError} from '../errors.js'
import type {EtcdConnection, EtcdStore} from '../etcd/store.js'
import {renderTemplate} from '../render/template.js'
import {pinnedKnownHosts, sshKeyscan, type HostKeyScanner, type KnownHostEntry} from './known-hosts.js'
import type {InventoryAccess} from './inventory.js'
import {readInventory} from './read.js'

/** In every file the export writes: how a later export knows the file is its own to replace. */
export const EXPORT_MARKER = 'Written by `xcluster inventory export`'

/** The files, relative to the export directory. */
export const EXPORT_FILES = {
  config: 'ansible.cfg',
  source: 'cluster.xcluster.yml',
  plugin: 'inventory_plugins/xcluster.py',
  knownHosts: 'known_hosts',
} as const

export interface ExportOptions {
  dir: string
  /** How the plugin reaches etcd: the connection this export used (endpoints, cluster, TLS files). */
  connection: EtcdConnection
  /** The xcluster CLI the plugin runs. */
  executable: string
  /** `sshKey` only when the operator gave one: the plugin passes it on (else the spec's key applies). */
  access: InventoryAccess
  /** How the nodes' host keys are fetched (default: ssh-keyscan). */
  scanner?: HostKeyScanner
  now?: number
}

export type ExportFileAction = 'create' | 'replace' | 'unchanged'

export interface ExportFile {
  /** Relative to the export directory. */
  path: string
  action: ExportFileAction
  mode: number
  content: string
}

/** The `--json` of `inventory export`: what was (or, with dryRun, would be) written, and each node's host keys. */
export interface InventoryExport {
  dir: string
  cluster: string
  /** The etcd revision the nodes and pins were read at. */
  revision: string
  dryRun: boolean
  files: ExportFile[]
  /** Per node: whether known_hosts holds its pinned keys, and why not. */
  hosts: KnownHostEntry[]
}

/**
 * Characters a path may hold to go into ansible.cfg unquoted: ssh_args is split on spaces and ssh
 * expands %, `inventory` is split on commas and `inventory_plugins` on colons.
 */
const PLAIN_PATH = /^[\w./@+-]+$/

/** A YAML scalar for any string: a JSON string is a valid double-quoted YAML scalar. */
const yaml = (value: string | undefined): string | undefined => (value === undefined ? undefined : JSON.stringify(value))

/** Files named in the plugin's source are read from wherever Ansible runs: absolute paths. */
const absolute = (path: string | undefined): string | undefined => (path === undefined ? undefined : resolve(path))

/** The export directory as an absolute path that can go into ansible.cfg; a usage error otherwise. */
export function checkExportDir(dir: string): string {
  const path = resolve(dir)
  if (!PLAIN_PATH.test(path)) {
    throw usageError(
      `${JSON.stringify(path)} cannot go into ansible.cfg's ssh_args: it holds spaces, quotes, % or other special characters.`,
      'Choose a directory whose path has only letters, digits and . _ - / (e.g. ./ansible).',
    )
  }
  if (existsSync(path) && !statSync(path).isDirectory()) throw usageError(`${path} exists and is not a directory.`, 'Give a new or existing directory for the Ansible files.')
  return path
}

/** What the files are rendered from. */
export interface ExportInput {
  /** Absolute (see checkExportDir). */
  dir: string
  revision: string
  connection: EtcdConnection
  executable: string
  access: InventoryAccess
  /** known_hosts lines (see pinnedKnownHosts). */
  knownHosts: readonly string[]
}

/** Every file of the export, rendered from templates/ansible/. Pure. */
export function renderExportFiles(input: ExportInput): {path: string; content: string}[] {
  const cluster = input.connection.cluster
  const base = {marker: EXPORT_MARKER, cluster, dir: input.dir}
  return [
    {path: EXPORT_FILES.config, content: renderTemplate('ansible/ansible.cfg', {...base, files: EXPORT_FILES})},
    {
      path: EXPORT_FILES.source,
      content: renderTemplate('ansible/cluster.xcluster.yml', {
        ...base,
        yaml: {
          cluster: yaml(cluster),
          executable: yaml(input.executable),
          etcd: yaml(input.connection.endpoints.join(',')),
          etcdCa: yaml(absolute(input.connection.ca)),
          etcdCert: yaml(absolute(input.connection.cert)),
          etcdKey: yaml(absolute(input.connection.key)),
          sshKey: yaml(absolute(input.access.sshKey)),
          lanInterface: yaml(input.access.lanInterface),
        },
      }),
    },
    {path: EXPORT_FILES.plugin, content: renderTemplate('ansible/inventory_plugins/xcluster.py', base)},
    {path: EXPORT_FILES.knownHosts, content: renderTemplate('ansible/known_hosts', {...base, revision: input.revision, lines: input.knownHosts})},
  ]
}

/**
 * What writing `rendered` into `dir` would do to each file: create, replace or leave it. Refuses
 * (EXPORT_FILE_FOREIGN, nothing written) when a file there was not written by an export.
 */
export function planExportFiles(dir: string, rendered: readonly {path: string; content: string}[]): ExportFile[] {
  const foreign: string[] = []
  const files = rendered.map(({path, content}): ExportFile => {
    const target = join(dir, path)
    if (!existsSync(target)) return {path, action: 'create', mode: 0o644, content}
    const current = statSync(target).isFile() ? readFileSync(target, 'utf8') : undefined
    if (current === undefined || !current.includes(EXPORT_MARKER)) foreign.push(target)
    return {path, action: current === content ? 'unchanged' : 'replace', mode: 0o644, content}
  })
  if (foreign.length > 0) {
    throw new XclusterError(`Not replacing ${foreign.join(', ')}: ${foreign.length > 1 ? 'they were' : 'it was'} not written by xcluster inventory export. Nothing was written.`, {
      code: 'EXPORT_FILE_FOREIGN',
      exit: ExitStatus.precondition,
      suggestion: 'Export into a new directory (e.g. xcluster inventory export ./ansible-xcluster), or move those files away first.',
      details: {files: foreign},
    })
  }
  return files
}

/** Reads the cluster (one revision), fetches the pinned keys and renders every file; writes nothing. */
export async function planInventoryExport(store: EtcdStore, options: ExportOptions): Promise<Omit<InventoryExport, 'dryRun'>> {
  const dir = checkExportDir(options.dir)
  const read = await readInventory(store, options.access, {pins: true, now: options.now})
  const targets = Object.entries(read.inventory._meta.hostvars).map(([name, vars]) => ({name, address: vars.ansible_host, pinned: read.pins.get(name)?.fingerprints ?? []}))
  const scan = options.scanner ?? sshKeyscan()
  const presented = await scan([...new Set(targets.filter((t) => t.pinned.length > 0).map((t) => t.address))])
  const knownHosts = pinnedKnownHosts(targets, presented)
  const rendered = renderExportFiles({dir, revision: read.revision, connection: options.connection, executable: options.executable, access: options.access, knownHosts: knownHosts.lines})
  return {dir, cluster: options.connection.cluster, revision: read.revision, files: planExportFiles(dir, rendered), hosts: knownHosts.hosts}
}

/** Writes the planned files that differ (each atomically: a temporary file renamed over it). */
export function writeInventoryExport(plan: Pick<InventoryExport, 'dir' | 'files'>): void {
  for (const file of plan.files) {
    if (file.action === 'unchanged') continue
    const target = join(plan.dir, file.path)
    mkdirSync(dirname(target), {recursive: true, mode: 0o755})
    const temporary = join(dirname(target), `.${file.path.split('/').at(-1)}.${process.pid}.tmp`)
    writeFileSync(temporary, file.content, {mode: file.mode})
    renameSync(temporary, target)
  }
}
