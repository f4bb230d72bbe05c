import {EtcdCommand} from '../../etcd-command.js'
import {specToYaml} from '../../lib/spec/document.js'
import {readStoredSpec} from '../../lib/spec/store.js'
import type {ClusterSpec} from '../../lib/spec/types.js'

export default class ConfigShow extends EtcdCommand<typeof ConfigShow> {
  static summary = 'Print the cluster spec stored in etcd.'
  static description =
    "Shows the spec as the last `config apply` stored it, in the spec file's own form (canonical MACs; `type:` only where the name does not imply it), so the output can be applied again. --json returns the stored, resolved spec (every node's type included). Exits 3 when no spec is stored yet."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Print the stored spec as YAML (save it with > xcluster.yaml).'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'Print it as JSON.'},
  ]

  async run(): Promise<ClusterSpec> {
    const spec = await readStoredSpec(this.store())
    this.say(specToYaml(spec).trimEnd())
    return spec
  }
}
