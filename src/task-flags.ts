import {Flags} from '@oclif/core'

import {env, settings} from './lib/settings.js'

/** Flags of every command that runs a task list over SSH. */
export const taskFlags = {
  concurrency: Flags.integer({
    summary: 'Hosts worked on at once within a phase.',
    default: settings.taskConcurrency,
    min: 1,
    max: 500,
  }),
  resume: Flags.string({summary: 'Continue a failed or interrupted run by its id, skipping what already finished.'}),
  'ssh-key': Flags.file({summary: "Private key for SSH (default: the spec's ssh.key).", env: env.sshKey, exists: true}),
  'lan-interface': Flags.string({
    summary: "This host's NIC on the cluster LAN; nodes without an IPv4 address are reached over IPv6 link-local on it.",
    env: env.lanInterface,
    default: settings.lanInterface,
  }),
  'accept-new-host-key': Flags.boolean({
    summary: 'Pin the key a host presents on first contact (never replaces a pin).',
    description: 'Without it, a host with no pinned key is refused. A changed key is always refused: re-pin it with `xcluster node repin`.',
  }),
}
