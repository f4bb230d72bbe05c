import {join, resolve} from 'node:path'

import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {dryRunFlag} from '../../flags.js'
import {EXPORT_FILES, planInventoryExport, writeInventoryExport, type InventoryExport, type KnownHostEntry} from '../../lib/inventory/index.js'
import {inventoryAccessFlags} from '../inventory.js'

const keysState = (h: KnownHostEntry): string => {
  switch (h.status) {
    case 'written':
      return `${h.written.length} pinned key${h.written.length > 1 ? 's' : ''}`
    case 'mismatch':
      return `REFUSED: presents ${h.refused.join(', ')}, pinned ${h.pinned.join(', ')}`
    case 'unreachable':
      return 'not reached: no key written'
    case 'unpinned':
      return 'no pin (not provisioned): no key written'
  }
}

export default class InventoryExportCommand extends EtcdCommand<typeof InventoryExportCommand> {
  static summary = 'Write what Ansible needs to work on the cluster: ansible.cfg, the xcluster inventory plugin and its source, and known_hosts with the host keys pinned in etcd.'
  static description = `Into DIR (created if missing): ansible.cfg (the plugin enabled, host_key_checking on, ssh checking keys against DIR/known_hosts only, StrictHostKeyChecking=yes), ${EXPORT_FILES.source} (how the plugin runs this CLI against this etcd: endpoints, TLS files, --ssh-key), ${EXPORT_FILES.plugin}, and known_hosts.

etcd pins host keys as fingerprints, and known_hosts needs the keys: each pinned node's keys are fetched with ssh-keyscan (the key exchange only, no login) and written only where the fingerprint is pinned. A node that presents another key, that cannot be reached, or that has no pin gets no line, so Ansible refuses it; the table says which. Export again after \`xcluster node repin\`.

A file is replaced only if an earlier export wrote it; anything else in DIR is left alone.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> ansible', description: 'Write ./ansible, then: cd ansible && ansible all -m ping'},
    {command: '<%= config.bin %> <%= command.id %> ansible --dry-run', description: 'Show the files and host keys it would write; write nothing.'},
    {
      command: '<%= config.bin %> <%= command.id %> ansible --json',
      description: 'The result as JSON: {dir, cluster, revision, dryRun, files: [{path, action, mode, content}], hosts: [{node, address, status, pinned, written, refused}]}.',
    },
    {command: 'ANSIBLE_CONFIG=ansible/ansible.cfg ansible-playbook -l state_ready site.yml', description: 'Use it from anywhere, on the ready nodes only.'},
  ]

  static args = {dir: Args.string({description: 'Directory for the Ansible files (created if missing).', required: true})}
  static flags = {...inventoryAccessFlags, ...dryRunFlag}

  async run(): Promise<InventoryExport> {
    const plan = await planInventoryExport(this.store(), {
      dir: this.args.dir,
      connection: this.etcdConnection(),
      executable: join(this.config.root, 'bin', 'run.js'),
      access: {sshKey: this.flags['ssh-key'] && resolve(this.flags['ssh-key']), lanInterface: this.flags['lan-interface']},
    })
    if (!this.dryRun) writeInventoryExport(plan)
    const changed = plan.files.filter((f) => f.action !== 'unchanged')
    if (this.dryRun) {
      this.say(`Dry run: would write ${changed.length} of ${plan.files.length} files in ${plan.dir} (cluster ${plan.cluster}, etcd revision ${plan.revision}); nothing was written.`)
      for (const f of changed.filter((f) => f.path !== EXPORT_FILES.plugin)) this.say(`--- ${join(plan.dir, f.path)} (${f.action})\n${f.content.trimEnd()}`)
    } else {
      this.say(`${changed.length === 0 ? 'No changes' : `Wrote ${changed.length} of ${plan.files.length} files`} in ${plan.dir} (cluster ${plan.cluster}, etcd revision ${plan.revision}).`)
    }
    this.table(
      [
        {header: 'file', get: (f) => f.path},
        {header: 'action', get: (f) => f.action},
      ],
      plan.files,
    )
    this.say()
    this.table(
      [
        {header: 'node', get: (h) => h.node},
        {header: 'address', get: (h) => h.address},
        {header: 'known_hosts', get: (h) => (h.status === 'written' ? keysState(h) : this.color.yellow(keysState(h)))},
      ],
      plan.hosts,
    )
    const refused = plan.hosts.filter((h) => h.status !== 'written').map((h) => h.node)
    if (refused.length > 0) this.say(`Ansible will refuse ${refused.join(', ')} (no pinned key in known_hosts).`)
    if (!this.dryRun) this.say(`Use it: cd ${plan.dir} && ansible all -m ping   (or ANSIBLE_CONFIG=${join(plan.dir, EXPORT_FILES.config)})`)
    return {...plan, dryRun: this.dryRun}
  }
}
