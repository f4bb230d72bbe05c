import {ExitStatus, XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {SshHost} from '../ssh/index.js'
import {shellQuote} from '../ssh/shell.js'

/**
 * Which Ceph a cluster runs (spec `ceph.backend`): MicroCeph's snap (`microceph.ceph`,
 * `microceph.rbd`), the production default, or Debian's packages (`ceph`, `rbd`). Everything
 * xcluster asks of either goes through the same arguments; only the binaries differ.
 */
export const CEPH_BACKENDS = ['microceph', 'ceph'] as const
export type CephBackend = (typeof CEPH_BACKENDS)[number]
export const DEFAULT_CEPH_BACKEND: CephBackend = 'microceph'

export type CephTool = 'ceph' | 'rbd'

const BINARIES: Readonly<Record<CephBackend, Readonly<Record<CephTool, string>>>> = {
  microceph: {ceph: 'microceph.ceph', rbd: 'microceph.rbd'},
  ceph: {ceph: 'ceph', rbd: 'rbd'},
}

export const cephBinary = (backend: CephBackend, tool: CephTool): string => BINARIES[backend][tool]

/** A shell test that the backend's Ceph is on the node and configured for a cluster. */
const PRESENT: Readonly<Record<CephBackend, string>> = {
  // MicroCeph writes the cluster's config into the snap's data when it bootstraps or joins.
  microceph: 'command -v microceph.ceph >/dev/null && [ -e /var/snap/microceph/current/conf/ceph.conf ]',
  ceph: 'command -v ceph >/dev/null && { [ -n "$CEPH_CONF" ] || [ -e /etc/ceph/ceph.conf ]; }',
}

/** One call of the ceph or rbd CLI, as arguments (never a shell string until it is sent). */
export interface CephCall {
  tool: CephTool
  args: string[]
}

/** Maps a failed call's output to a precise error, or undefined for the generic one. */
export type Explain = (output: string) => XclusterError | undefined

/** What a CephCli needs of a host: SshHost, or a recording fake in unit tests. */
export type CephHost = Pick<SshHost, 'name' | 'exec'>

/**
 * The ceph and rbd CLIs of one cluster node, run over its SSH connection as root, with the
 * cluster from the node's own config (/etc/ceph/ceph.conf, MicroCeph's, or CEPH_CONF). Every call
 * is bounded: a Ceph that does not answer fails the command instead of hanging it.
 */
export class CephCli {
  constructor(
    readonly host: CephHost,
    readonly backend: CephBackend,
    private readonly timeoutMs: number = settings.ceph.commandTimeoutMs,
  ) {}

  /** The exact command line a call runs on the node (what --dry-run prints). */
  line(call: CephCall): string {
    return [cephBinary(this.backend, call.tool), ...call.args].map(shellQuote).join(' ')
  }

  /**
   * Runs a call; a non-zero exit is a CEPH_COMMAND_FAILED error carrying Ceph's own words, unless
   * `explain` turns the output into a more precise error (e.g. an image that does not exist).
   */
  async run(call: CephCall, explain?: Explain): Promise<string> {
    const res = await this.exec(call)
    if (res.code !== 0) throw explain?.(res.stderr || res.stdout) ?? cephFailed(this.host.name, this.line(call), res.code, res.stderr || res.stdout)
    return res.stdout
  }

  /** Runs a call with `--format json` and parses what it prints. */
  async json<T>(call: CephCall, explain?: Explain): Promise<T> {
    const withFormat = {tool: call.tool, args: [...call.args, '--format', 'json']}
    const out = await this.run(withFormat, explain)
    try {
      return JSON.parse(out.trim() || 'null') as T
    } catch {
      throw new XclusterError(`${this.line(withFormat)} on ${this.host.name} printed something that is not JSON: ${out.trim().slice(0, 200)}`, {
        code: 'CEPH_OUTPUT_INVALID',
        details: {host: this.host.name, command: this.line(withFormat)},
      })
    }
  }

  /** Whether this node runs the backend's Ceph at all: a node without it holds no OSD. */
  async present(): Promise<boolean> {
    return (await this.host.exec(PRESENT[this.backend], {timeoutMs: this.timeoutMs})).code === 0
  }

  /** Like run, but a non-zero exit is returned, not thrown (for probes and "does it exist" reads). */
  exec(call: CephCall): Promise<{code: number | null; stdout: string; stderr: string}> {
    return this.host.exec(this.line(call), {sudo: true, timeoutMs: this.timeoutMs})
  }
}

function cephFailed(host: string, line: string, code: number | null, output: string): XclusterError {
  const lines = output.trim().split('\n').filter(Boolean)
  const reason = lines.at(-1) ?? `exit status ${code}`
  // The shell's "command not found": this node has no such CLI (the wrong backend, or no Ceph).
  const missing = code === 127
  return new XclusterError(`${line} failed on ${host}: ${reason}`, {
    code: missing ? 'CEPH_CLI_MISSING' : 'CEPH_COMMAND_FAILED',
    exit: missing ? ExitStatus.precondition : ExitStatus.failure,
    suggestion: missing
      ? `Check that Ceph runs on ${host} and that the spec's ceph.backend names the right one (microceph or ceph): ${commandLine(['config', 'show'])}`
      : `See Ceph's own view from that node: ${commandLine(['ceph', 'status', '--node', host])}`,
    details: {host, command: line, output: lines.slice(-5)},
  })
}
