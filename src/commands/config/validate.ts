import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import type {NodeType} from '../../lib/nodes/record.js'
import {settings} from '../../lib/settings.js'
import {loadSpecFile} from '../../lib/spec/parse.js'
import {countByType} from '../../lib/spec/summary.js'

export interface ValidateResult {
  valid: true
  file: string
  nodes: Record<NodeType, number>
}

export default class ConfigValidate extends BaseCommand<typeof ConfigValidate> {
  static summary = 'Check a cluster spec file without touching etcd.'
  static description = 'Reports every problem at once, each as FILE:LINE:COL, the path inside the file (e.g. nodes[3].mac), what is wrong and how to fix it. Exits 2 when the spec is invalid.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml', description: 'Check the spec and count its nodes by type.'},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --json', description: "The same as {valid, file, nodes}; problems go to the error's details."},
  ]

  static flags = {
    file: Flags.string({char: 'f', summary: 'The spec file to check.', default: settings.specFile}),
  }

  async run(): Promise<ValidateResult> {
    const spec = loadSpecFile(this.flags.file)
    const nodes = countByType(spec)
    const counts = Object.entries(nodes)
      .map(([type, n]) => `${n} ${type}`)
      .join(', ')
    this.say(`OK: ${this.flags.file} is a valid spec for cluster ${spec.cluster}: ${spec.nodes.length} nodes (${counts}).`)
    return {valid: true, file: this.flags.file, nodes}
  }
}
