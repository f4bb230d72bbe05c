import {Flags} from '@oclif/core'

/**
 * Flags a command declares only when it honours them: `...confirmFlag` on a command that asks
 * before a destructive step, `...dryRunFlag` on one that can show what it would change and
 * change nothing (test/etcd/dry-run.test.ts runs every such command and checks just that).
 */
export const confirmFlag = {
  yes: Flags.boolean({char: 'y', summary: 'Answer yes to the confirmation prompt.'}),
}

export const dryRunFlag = {
  'dry-run': Flags.boolean({summary: 'Show what would change, and change nothing (in etcd or on any host).'}),
}
