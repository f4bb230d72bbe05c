import {stringify} from 'yaml'

import {BaseCommand} from '../../base-command.js'
import {readStoredSpec} from '../../lib/spec/store.js'
import type {ClusterSpec} from '../../lib/spec/types.js'

export default class ConfigShow extends BaseCommand<typeof ConfigShow> {
  static summary = 'Print the cluster spec stored in etcd.'
  static description =
    'Shows the spec as the last `config apply` stored it: validated, with canonical MACs and each node\'s resolved type. Exits 3 when no spec is stored yet.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Print the stored spec as YAML.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'Print it as JSON.'},
  ]

  async run(): Promise<ClusterSpec> {
    const spec = await readStoredSpec(this.store())
    this.say(stringify(spec).trimEnd())
    return spec
  }
}
