import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {dryRunFlag} from '../flags.js'
import {settings} from '../lib/settings.js'
import {writeExampleSpec, type InitResult} from '../lib/spec/example.js'

export default class Init extends BaseCommand<typeof Init> {
  static summary = 'Write a commented example cluster spec (xcluster.yaml) to start from.'
  static description =
    'The example declares a 6-node cluster on 10.0.0.0/24 and explains every field. Edit it, check it with `config validate`, then store it in etcd with `config apply`. An existing file is never overwritten without --force.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Write ./xcluster.yaml.'},
    {command: '<%= config.bin %> <%= command.id %> -f lab.yaml --force', description: 'Write lab.yaml, replacing it if it exists.'},
    {command: '<%= config.bin %> <%= command.id %> -f lab.yaml --dry-run', description: 'Say what would be written, write nothing.'},
  ]

  static flags = {
    file: Flags.string({char: 'f', summary: 'Where to write the spec.', default: settings.specFile}),
    force: Flags.boolean({summary: 'Overwrite the file if it exists.'}),
    ...dryRunFlag,
  }

  async run(): Promise<InitResult> {
    const result = writeExampleSpec(this.flags.file, {force: this.flags.force, dryRun: this.dryRun})
    if (result.dryRun) this.say(`Dry run: would write ${result.file}${result.overwritten ? ' (replacing it)' : ''}; nothing was written.`)
    else this.say(`Wrote ${result.file}. Edit it, then run: xcluster config validate -f ${result.file}`)
    return result
  }
}
