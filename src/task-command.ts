import type {Command} from '@oclif/core'

import {EtcdCommand} from './etcd-command.js'
import {dryRunFlag} from './flags.js'
import type {NodeActionOptions} from './lib/actions/node-run.js'
import {taskFlags} from './task-flags.js'

/** A command that runs a task list over SSH: the task flags (--dry-run among them) and the options they make. */
export abstract class TaskCommand<T extends typeof Command> extends EtcdCommand<T> {
  static baseFlags = {...EtcdCommand.baseFlags, ...taskFlags, ...dryRunFlag}

  protected taskOptions(): NodeActionOptions {
    const flags = this.flags as typeof this.flags & {
      'ssh-key'?: string
      'accept-new-host-key': boolean
      'lan-interface': string
      concurrency: number
      resume?: string
    }
    return {
      keyPath: flags['ssh-key'],
      acceptNewHostKey: flags['accept-new-host-key'],
      lanInterface: flags['lan-interface'],
      dryRun: this.dryRun,
      concurrency: flags.concurrency,
      resume: flags.resume,
      progress: this.progressMode(),
      args: this.argv,
    }
  }
}
