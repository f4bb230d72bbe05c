import {usageError} from '../errors.js'

/** Quotes one word for a POSIX shell: everything inside single quotes is literal. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word
  return `'${word.replaceAll("'", `'\\''`)}'`
}

/** `KEY=VALUE` lines (a probe's output, `systemctl show`) as a record; a value may hold '='. */
export function parseKeyValueLines(output: string): Record<string, string> {
  return Object.fromEntries(
    output
      .trim()
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  )
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export interface RemoteCommandOptions {
  /** Run as root through `sudo -n` when the login user is not root. */
  sudo?: boolean
  env?: Record<string, string>
  /**
   * Kill the command's whole process group after this long, on the host itself. Needed because
   * sshd does not forward signals for root logins and closing the channel leaves commands running.
   */
  killAfterMs?: number
}

/**
 * The exact string sent to the remote side for `command`. Environment values are exported in
 * the command itself (sshd drops most `env` requests unless AcceptEnv allows them) and inside
 * the sudo'd shell so sudo's env reset does not drop them. `sudo -n` fails instead of prompting.
 * The deadline (`timeout`, which kills its process group) runs inside sudo so it may kill root's processes.
 */
export function remoteCommand(command: string, user: string, options: RemoteCommandOptions = {}): string {
  const exports = Object.entries(options.env ?? {}).map(([name, value]) => {
    if (!ENV_NAME.test(name)) throw usageError(`Invalid environment variable name ${JSON.stringify(name)}.`, 'Use letters, digits and underscores only.')
    return `export ${name}=${shellQuote(value)}; `
  })
  const inner = `${exports.join('')}${command}`
  const sudo = options.sudo === true && user !== 'root'
  if (options.killAfterMs === undefined) return sudo ? `sudo -n -- sh -c ${shellQuote(inner)}` : inner
  const seconds = Number((Math.max(options.killAfterMs, 1) / 1000).toFixed(3))
  return `${sudo ? 'sudo -n -- ' : ''}timeout -s KILL ${seconds} sh -c ${shellQuote(inner)}`
}
