import {Args, Flags} from '@oclif/core'

import {operatorSecret} from '../../lib/certs/operator.js'
import {syncFrontends, type FrontendSyncResult} from '../../lib/frontend/sync.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {TaskCommand} from '../../task-command.js'

export default class FrontendSync extends TaskCommand<typeof FrontendSync> {
  static summary = 'Put what etcd says onto the frontend nodes over SSH: certificates and keys, the nginx site, the Rathole server; reload nginx.'
  static description = `A task list on each frontend (every ready one, or those named): the files are compared with etcd first, and only changed ones are staged, swapped in and checked with nginx -t. nginx refusing them puts every file back as it was, so nginx keeps serving the old certificate and is not reloaded; otherwise nginx reloads gracefully (open connections finish). The certificates' keys are opened with the cluster secret on this host (--secret-file, default the admin host's) and are never printed. Run it after cert renew, frontend expose or unexpose.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Sync every ready frontend node.'},
    {command: '<%= config.bin %> <%= command.id %> f1 --dry-run', description: "Show which of f1's files differ from etcd; change nothing."},
    {command: '<%= config.bin %> <%= command.id %> --secret-file /etc/xcluster/pki/cluster.secret', description: 'From a core node, with its copy of the cluster secret.'},
  ]
  static strict = false
  static args = {node: Args.string({description: 'Frontend node names (default: every ready frontend).'})}
  static flags = {
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true}),
  }

  async run(): Promise<FrontendSyncResult> {
    const {argv} = await this.parse(FrontendSync)
    const store = this.store()
    const result = await syncFrontends(store, argv as string[], {...this.taskOptions(), secret: () => operatorSecret(store, this.flags['secret-file'])})
    for (const n of result.nodes) {
      const verb = this.dryRun ? 'would change' : 'changed'
      this.say(n.changed.length === 0 ? `${n.node}: up to date.` : `${n.node}: ${verb} ${n.changed.join(', ')}${n.reloaded ? '; nginx reloaded' : ''}.`)
    }
    for (const line of describeRun(result.run)) this.say(line)
    return result
  }
}
