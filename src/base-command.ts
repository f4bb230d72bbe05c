import {Command, Flags, Interfaces} from '@oclif/core'
import type {ChalkInstance} from 'chalk'

import {ExitStatus, XclusterError} from './lib/errors.js'
import {EtcdStore, type EtcdConnection} from './lib/etcd/store.js'
import {makeColor} from './lib/output/color.js'
import {renderTable, type Column} from './lib/output/table.js'
import {env, settings} from './lib/settings.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * The one base every xcluster command extends: shared flags, the etcd connection, confirmation
 * prompts, tables, and an error printer that gives each failure a code, an exit status and a
 * next step. `run()` returns the command's typed result, which is exactly its `--json` output.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static enableJsonFlag = true

  static baseFlags = {
    etcd: Flags.string({
      summary: 'Comma-separated etcd endpoints.',
      env: env.etcd,
      helpGroup: 'GLOBAL',
      default: settings.etcdEndpoints.join(','),
    }),
    cluster: Flags.string({
      summary: 'Cluster name (the etcd key prefix).',
      env: env.cluster,
      helpGroup: 'GLOBAL',
      default: settings.cluster,
    }),
    'etcd-ca': Flags.file({summary: 'CA certificate for etcd TLS.', env: env.etcdCa, helpGroup: 'GLOBAL', exists: true}),
    'etcd-cert': Flags.file({
      summary: 'Client certificate for etcd TLS.',
      env: env.etcdCert,
      helpGroup: 'GLOBAL',
      exists: true,
      dependsOn: ['etcd-key'],
    }),
    'etcd-key': Flags.file({
      summary: 'Client key for etcd TLS.',
      env: env.etcdKey,
      helpGroup: 'GLOBAL',
      exists: true,
      dependsOn: ['etcd-cert'],
    }),
    yes: Flags.boolean({char: 'y', summary: 'Answer yes to every confirmation prompt.', helpGroup: 'GLOBAL'}),
    'dry-run': Flags.boolean({summary: 'Show what would change without changing anything.', helpGroup: 'GLOBAL'}),
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
  private etcdStore?: EtcdStore

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

  /** etcd connection options from the shared flags. */
  protected etcdConnection(): EtcdConnection {
    return {
      endpoints: this.flags.etcd.split(',').map((e) => e.trim()).filter(Boolean),
      cluster: this.flags.cluster,
      ca: this.flags['etcd-ca'],
      cert: this.flags['etcd-cert'],
      key: this.flags['etcd-key'],
    }
  }

  /** The etcd store, connected on first use and closed when the command ends. */
  protected store(): EtcdStore {
    this.etcdStore ??= new EtcdStore(this.etcdConnection())
    return this.etcdStore
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

  protected table<R>(columns: Column<R>[], rows: R[]): void {
    this.say(renderTable(columns, rows))
  }

  /**
   * Ask before a destructive step. `--yes` answers for the operator; without a TTY (CI, pipes)
   * we refuse rather than guess, and say how to proceed.
   */
  protected async confirm(question: string): Promise<void> {
    if (this.flags.yes) return
    if (!process.stdin.isTTY || !process.stdout.isTTY || this.jsonEnabled()) {
      throw new XclusterError(`${question} Refusing without confirmation: no terminal to ask on.`, {
        code: 'CONFIRMATION_REQUIRED',
        exit: ExitStatus.usage,
        suggestion: 'Re-run with --yes to confirm.',
      })
    }
    const {confirm} = await import('@inquirer/prompts')
    const ok = await confirm({message: question, default: false})
    if (!ok) throw new XclusterError('Cancelled by the operator.', {code: 'CANCELLED', exit: ExitStatus.failure})
  }

  protected async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    const error = toXclusterError(err)
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

  protected async finally(err: Error | undefined): Promise<unknown> {
    await this.etcdStore?.close()
    return super.finally(err)
  }
}

/** Map anything thrown into an operator-facing error; oclif's parse errors become usage errors. */
export function toXclusterError(err: unknown): XclusterError {
  if (err instanceof XclusterError) return err
  const e = err as Error & {oclif?: {exit?: number}; code?: string; name?: string}
  if (e?.oclif?.exit === 0) return new XclusterError('', {code: 'EXIT', exit: ExitStatus.ok})
  const parseLike = ['CLIError', 'RequiredArgsError', 'RequiredFlagError', 'NonExistentFlagsError', 'UnexpectedArgsError', 'FailedFlagValidationError']
  if (e && (parseLike.includes(e.name ?? '') || e.oclif?.exit === 2 || /flag|argument/i.test(e.name ?? ''))) {
    return new XclusterError(e.message.replace(/\nSee more help with --help$/, ''), {
      code: 'USAGE',
      exit: ExitStatus.usage,
      suggestion: 'See the command\'s help with --help.',
    })
  }
  return new XclusterError(e?.message ?? String(err), {code: 'INTERNAL', exit: ExitStatus.failure, cause: err})
}
