import {Command, Flags, type Interfaces} from '@oclif/core'
import type {ChalkInstance} from 'chalk'

import {ExitStatus, XclusterError} from './lib/errors.js'
import {makeColor} from './lib/output/color.js'
import {commandLine} from './lib/output/command-line.js'
import {renderTable, type Column} from './lib/output/table.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * The one base every xcluster command extends: --json and --color, confirmation prompts, tables,
 * and an error printer that gives each failure a code, an exit status and a next step. `run()`
 * returns the command's typed result, which is exactly its `--json` output. Commands that talk
 * to etcd extend EtcdCommand; `--yes` and `--dry-run` are flags a command declares itself
 * (src/flags.ts), only when it honours them.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static enableJsonFlag = true

  static baseFlags = {
    color: Flags.boolean({
      summary: 'Colour the output (NO_COLOR is honoured too).',
      helpGroup: 'GLOBAL',
      allowNo: true,
      default: true,
    }),
  }

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  protected color!: ChalkInstance

  public async init(): Promise<void> {
    await super.init()
    const {args, flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    this.color = makeColor(this.flags.color && !this.jsonEnabled())
  }

  /** True when the command declares --dry-run and it was given. */
  protected get dryRun(): boolean {
    return (this.flags as {'dry-run'?: boolean})['dry-run'] === true
  }

  /** Human output only: silent under --json so stdout carries nothing but the result. */
  protected say(message = ''): void {
    if (!this.jsonEnabled()) this.log(message)
  }

  /** How long operations show progress: live on a terminal, plain lines otherwise, nothing under --json. */
  protected progressMode(): 'live' | 'plain' | 'silent' {
    if (this.jsonEnabled()) return 'silent'
    return process.stdout.isTTY ? 'live' : 'plain'
  }

  /** Human output only; under --json not even rendered (cli-table3 takes ~0.5 ms a row: seconds at 5,000 nodes). */
  protected table<R>(columns: Column<R>[], rows: R[]): void {
    if (!this.jsonEnabled()) this.say(renderTable(columns, rows))
  }

  /**
   * Ask before a destructive step (the command declares --yes). `--yes` answers for the operator;
   * without a TTY (CI, pipes) we refuse rather than guess, and say how to proceed. Ctrl-C at the
   * prompt is an interruption (exit 130), not a crash.
   */
  protected async confirm(question: string): Promise<void> {
    if ((this.flags as {yes?: boolean}).yes) return
    if (!process.stdin.isTTY || !process.stdout.isTTY || this.jsonEnabled()) {
      throw new XclusterError(`${question} Refusing without confirmation: no terminal to ask on.`, {
        code: 'CONFIRMATION_REQUIRED',
        exit: ExitStatus.usage,
        suggestion: `Re-run with --yes to confirm: ${this.commandLine('--yes')}`,
      })
    }
    const {confirm} = await import('@inquirer/prompts')
    let ok: boolean
    try {
      ok = await confirm({message: question, default: false})
    } catch (error) {
      if ((error as Error)?.name === 'ExitPromptError') {
        throw new XclusterError('Interrupted at the prompt; nothing was changed.', {code: 'INTERRUPTED', exit: ExitStatus.interrupted, suggestion: `Run it again when ready: ${this.commandLine()}`})
      }
      throw error
    }
    if (!ok) throw new XclusterError('Cancelled by the operator; nothing was changed.', {code: 'CANCELLED', exit: ExitStatus.failure, suggestion: `Run it again when ready: ${this.commandLine()}`})
  }

  /** This invocation as a command line to paste back (shell-quoted), with `extra` appended. */
  protected commandLine(...extra: string[]): string {
    return commandLine([...this.id!.split(':'), ...this.argv, ...extra])
  }

  protected async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    const error = toXclusterError(err, this.id)
    if (this.jsonEnabled()) {
      this.logJson({error: error.toJSON()})
    } else {
      const color = this.color ?? makeColor(false)
      process.stderr.write(`${color.red('Error')} [${error.code}]: ${error.message}\n`)
      if (error.suggestion) process.stderr.write(`${color.bold('Try this:')} ${error.suggestion}\n`)
    }
    process.exitCode = error.exit
    return this.exit(error.exit)
  }
}

/** Map anything thrown into an operator-facing error; oclif's parse errors become usage errors. */
export function toXclusterError(err: unknown, commandId?: string): XclusterError {
  const help = commandId ? `xcluster ${commandId.replaceAll(':', ' ')} --help` : 'xcluster --help'
  if (err instanceof XclusterError) {
    // oclif prefixes errors thrown while parsing a flag's value; keep ours readable.
    const parsed = /^Parsing --(\S+) \n\t([\s\S]*?)\nSee more help with --help$/.exec(err.message)
    return parsed ? new XclusterError(`--${parsed[1]}: ${parsed[2]}`, {code: err.code, exit: err.exit, suggestion: err.suggestion, details: err.details, cause: err.cause}) : err
  }
  const e = err as Error & {oclif?: {exit?: number}; code?: string; name?: string}
  if (e?.oclif?.exit === 0) return new XclusterError('', {code: 'EXIT', exit: ExitStatus.ok})
  const flagValue = /^Parsing --(\S+) \n\t([\s\S]*?)\nSee more help with --help$/.exec(e?.message ?? '')
  if (flagValue) {
    return new XclusterError(`--${flagValue[1]}: ${flagValue[2]}`, {
      code: 'FLAG_INVALID',
      exit: ExitStatus.usage,
      suggestion: `Fix the value given to --${flagValue[1]} (or its environment variable); see: ${help}`,
    })
  }
  const parseLike = ['CLIError', 'RequiredArgsError', 'RequiredFlagError', 'NonExistentFlagsError', 'UnexpectedArgsError', 'FailedFlagValidationError']
  if (e && (parseLike.includes(e.name ?? '') || e.oclif?.exit === 2 || /flag|argument/i.test(e.name ?? ''))) {
    return new XclusterError(e.message.replace(/\nSee more help with --help$/, ''), {
      code: 'USAGE',
      exit: ExitStatus.usage,
      suggestion: `See the command's flags and examples: ${help}`,
    })
  }
  return new XclusterError(e?.message ?? String(err), {code: 'INTERNAL', exit: ExitStatus.failure, cause: err})
}
