import {Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {renderFrontendFiles, type RenderResult} from '../../lib/frontend/registry.js'

export default class FrontendRender extends EtcdCommand<typeof FrontendRender> {
  static summary = "What a node gets for the public endpoints: a frontend's nginx site and Rathole server, a core node's Rathole clients."
  static description =
    'Rendered from templates/frontend/ and the state in etcd (endpoints, nodes, certificates, the spec’s service VIPs). A frontend node gets nginx-site.conf and rathole-server.toml; a core node one rathole-client-<frontend>.toml per ready frontend. Printed with every Rathole token redacted; --out writes the files whole, mode 0600.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --node f1', description: "Print frontend f1's nginx site and Rathole server (tokens redacted)."},
    {command: '<%= config.bin %> <%= command.id %> --node s1 --out /tmp/s1-rathole', description: "Write core node s1's Rathole clients, tokens in, mode 0600."},
  ]
  static flags = {
    node: Flags.string({summary: 'The node to render for (a frontend or a core node).', required: true}),
    out: Flags.directory({summary: 'Write the files into this directory (mode 0600, tokens in) instead of printing them.'}),
  }

  async run(): Promise<RenderResult> {
    const result = await renderFrontendFiles(this.store(), this.flags.node, {outDir: this.flags.out})
    if (result.files.length === 0) this.say(`Nothing for ${result.node}: no frontend node is ready to connect to.`)
    for (const f of result.files) this.say(f.path ? `Wrote ${f.path} (0600).` : `# ==> ${f.name} <==\n${f.content}`)
    return result
  }
}
