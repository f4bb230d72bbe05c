import {Flags} from '@oclif/core'

import {bootstrapCluster, continueBootstrap, type BootstrapResult} from '../lib/actions/bootstrap.js'
import {usageError} from '../lib/errors.js'
import {describeRun} from '../lib/output/run-summary.js'
import {settings} from '../lib/settings.js'
import {assertRunSucceeded} from '../lib/tasks/runner.js'
import {TaskCommand} from '../task-command.js'

export default class Bootstrap extends TaskCommand<typeof Bootstrap> {
  static summary = 'Turn plain Debian machines into the running cluster, from the admin host.'
  static description = `From the spec: starts the bootstrap services on this admin host (NTP, DNS/TFTP with iPXE, HTTP, the package cache, Ansible: a Docker Compose bundle, or processes with --native), checks every core node, authorizes the cluster's SSH key on them, provisions the first core node (the seed: Node.js and xcluster, etcd, the cluster's certificates), forms a TLS etcd with client-certificate authentication and RBAC there, and moves the cluster's state into it in one verified copy. The seed then carries the run on by itself (this host may go away): its peers are provisioned and join etcd one by one, and every core node runs xcluster serve (DHCP, elections), keepalived with the admin VIP, DNS/TFTP and the package cache.

Afterwards every command on this host uses the cluster (endpoints and TLS files are left beside the cluster secret, in ${settings.certs.adminDir}/<cluster>). Every step checks before it changes: a re-run reports No changes. A failed run prints its id; --resume ID continues it, from here or from the seed.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --accept-new-host-key', description: "Bootstrap, pinning each core node's host key on first contact."},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --native --dry-run', description: 'Show every change on the admin host and the core nodes; change nothing.'},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --native', description: "Run the admin host's services as processes (no container engine here)."},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --resume 20261201-101500-3fa2c1', description: 'Continue a run that failed.'},
  ]

  static flags = {
    file: Flags.string({char: 'f', summary: 'The cluster spec.', default: settings.specFile}),
    native: Flags.boolean({summary: "Run the admin host's bootstrap services as processes here instead of a Compose bundle."}),
    continue: Flags.string({summary: "Carry the admin host's run RUN on, on the seed (started by bootstrap itself).", hidden: true, exclusive: ['resume', 'file']}),
  }

  async run(): Promise<BootstrapResult> {
    const options = {...this.taskOptions(), native: this.flags.native, specFile: this.flags.file}
    let result: BootstrapResult
    if (this.flags.continue) {
      if (this.dryRun) throw usageError('--continue carries a real run on; it has no dry run.', 'Plan the whole bootstrap from the admin host: xcluster bootstrap -f xcluster.yaml --dry-run')
      result = await continueBootstrap(this.store(), {...options, continueRun: this.flags.continue})
    } else {
      result = await bootstrapCluster(this.store(), options)
    }
    for (const line of describeRun(result.run)) this.say(line)
    assertRunSucceeded(result.run)
    if (!this.dryRun && result.role === 'admin') this.say(`Cluster ${result.cluster} is up: etcd at ${result.endpoints.join(', ')}. Try: xcluster node list`)
    return result
  }
}
