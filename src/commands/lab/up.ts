import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {PACKAGE_ROOT} from '../../lib/lab/paths.js'
import {labUp, type LabUpResult} from '../../lib/lab/up.js'
import {settings} from '../../lib/settings.js'
import {join} from 'node:path'

export default class LabUp extends BaseCommand<typeof LabUp> {
  static summary = 'Build a local lab: real nodes (systemd-nspawn containers) in network namespaces, an admin host with etcd and a package proxy.'
  static description =
    'Needs root. Any previous lab is removed first. Each node boots systemd and sshd in its own namespace xc-<node>, joined by a bridge; the admin host (the spec\'s gateway address) lives in xc-admin. The root namespace gets no lab address or route.'
  static examples = [
    {command: 'sudo <%= config.bin %> <%= command.id %>', description: 'Six nodes from templates/xcluster.yaml.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> --nodes 20', description: 'The same plus compute nodes c2..c21.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> -f my-cluster.yaml --json', description: 'From your own spec; the lab state as JSON.'},
  ]

  static flags = {
    file: Flags.string({char: 'f', summary: 'Cluster spec to build the lab from.', default: join(PACKAGE_ROOT, settings.lab.defaultSpec)}),
    nodes: Flags.integer({summary: 'Extra compute nodes c2..c(N+1), with fixed addresses from .100 up.', default: 0, min: 0, max: 99}),
  }

  async run(): Promise<LabUpResult> {
    const progress = this.jsonEnabled() ? 'silent' : process.stderr.isTTY ? 'tty' : 'plain'
    const result = await labUp({specFile: this.flags.file, extraNodes: this.flags.nodes, progress})
    this.say(`Lab up in ${result.seconds.toFixed(1)} s: ${result.state.hosts.length} hosts, etcd ${result.state.etcdEndpoint}, state in ${result.state.dir}`)
    this.say(`Try: sudo ${this.config.bin} lab exec s1 -- hostname`)
    return result
  }
}
