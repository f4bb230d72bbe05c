import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag} from '../../flags.js'
import {planUnexpose, type FrontendView} from '../../lib/frontend/registry.js'

export default class FrontendUnexpose extends EtcdCommand<typeof FrontendUnexpose> {
  static summary = 'Stop publishing an endpoint: remove it from etcd (asks first unless --yes).'
  static description =
    'Removes the endpoint and its Rathole token in one transaction, refused if it changed since it was read. The frontends drop it at their next render. Its certificate stays (see cert list).'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> shop', description: 'Remove endpoint shop (asks first).'},
    {command: '<%= config.bin %> <%= command.id %> shop --yes --json', description: 'Remove it without asking; print what was removed.'},
  ]
  static args = {name: Args.string({description: 'Endpoint name.', required: true})}
  static flags = {...confirmFlag}

  async run(): Promise<FrontendView> {
    const plan = await planUnexpose(this.store(), this.args.name)
    const f = plan.frontend
    await this.confirm(`Stop publishing ${f.name} (port ${f.port} to ${f.to}) on ${f.servedBy.length} frontend node(s)?`)
    const removed = await plan.commit()
    this.say(`Unexposed ${removed.name}; the frontends drop it at their next render.`)
    return removed
  }
}
