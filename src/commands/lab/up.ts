import {join} from 'node:path'

import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {dryRunFlag} from '../../flags.js'
import {PACKAGE_ROOT} from '../../lib/lab/paths.js'
import {labUp, planLabUp, type LabUpPlan, type LabUpResult} from '../../lib/lab/up.js'
import {settings} from '../../lib/settings.js'

export default class LabUp extends BaseCommand<typeof LabUp> {
  static summary = 'Build a local lab: real nodes (systemd-nspawn containers) in network namespaces, an admin host with etcd and a package proxy.'
  static description =
    "Needs root. Any previous lab is removed first. Each node boots systemd and sshd in its own namespace xc-<node>, joined by a bridge; the admin host (the spec's gateway address) lives in xc-admin. The root namespace gets no lab address or route."
  static examples = [
    {command: 'sudo <%= config.bin %> <%= command.id %>', description: 'Six nodes from templates/xcluster.yaml.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> --nodes 20', description: 'The same plus compute nodes c2..c21.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> -f my-cluster.yaml --json', description: 'From your own spec; the lab state as JSON.'},
    {command: '<%= config.bin %> <%= command.id %> --dry-run', description: 'Check the spec and list what would be built, installed or removed; change nothing.'},
  ]

  static flags = {
    file: Flags.string({char: 'f', summary: 'Cluster spec to build the lab from.', description: `Default: ${settings.lab.defaultSpec} in the xcluster package.`}),
    nodes: Flags.integer({summary: 'Extra compute nodes c2..c(N+1), with fixed addresses from .100 up.', default: 0, min: 0, max: 99}),
    ...dryRunFlag,
  }

  async run(): Promise<LabUpResult | LabUpPlan> {
    // The default is this installation's own template: computed here, not baked into the manifest.
    const specFile = this.flags.file ?? join(PACKAGE_ROOT, settings.lab.defaultSpec)
    if (this.dryRun) {
      const plan = await planLabUp({specFile, extraNodes: this.flags.nodes})
      this.say('Dry run: nothing was changed. lab up would:')
      for (const step of plan.steps) this.say(`  - ${step}`)
      return plan
    }
    const progress = this.jsonEnabled() ? 'silent' : process.stderr.isTTY ? 'tty' : 'plain'
    const result = await labUp({specFile, extraNodes: this.flags.nodes, progress})
    this.say(`Lab up in ${result.seconds.toFixed(1)} s: ${result.state.hosts.length} hosts, etcd ${result.state.etcdEndpoint}, state in ${result.state.dir}`)
    this.say(`Try: sudo ${this.config.bin} lab exec s1 -- hostname`)
    return result
  }
}
