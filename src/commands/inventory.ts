import {resolve} from 'node:path'

import {Flags} from '@oclif/core'

import {EtcdCommand} from '../etcd-command.js'
import {inventoryHost, readInventory, type AnsibleInventory, type InventoryHostVars} from '../lib/inventory/index.js'
import {env, settings} from '../lib/settings.js'

/** The flags `inventory` and `inventory export` share: how every host is reached. */
export const inventoryAccessFlags = {
  'ssh-key': Flags.file({summary: "The private key every host gets as ansible_ssh_private_key_file (default: the spec's ssh.key).", env: env.sshKey, exists: true}),
  'lan-interface': Flags.string({
    summary: "This host's NIC on the cluster LAN: a node without an IPv4 address gets its IPv6 link-local address on it as ansible_host.",
    env: env.lanInterface,
    default: settings.lanInterface,
  }),
}

export default class Inventory extends EtcdCommand<typeof Inventory> {
  static summary = "Ansible's dynamic inventory of the cluster, from etcd: groups by node type and state, and every host's variables."
  static description = `Prints the JSON of Ansible's inventory script protocol: --list (the default) gives every group, \`all\` and \`_meta.hostvars\` (so Ansible never asks --host per node); --host NAME gives one host's variables. The spec, nodes and DHCP leases are read in a few range reads at one etcd revision, however many nodes.

Groups: core, storage, compute, frontend (always there), and state_<state> for each state a node is in (state_ready, state_drained, ...). Removed nodes are left out. Host variables: ansible_host (the address xcluster reaches the node at: fixed IP, else its DHCP lease, else IPv6 link-local), ansible_user and ansible_ssh_private_key_file (the spec's ssh: section, or --ssh-key), and xcluster_type, xcluster_mac, xcluster_ip, xcluster_leased_ip, xcluster_state, xcluster_reason, xcluster_ready (true only when ready).

Ansible reads it through the inventory plugin that \`xcluster inventory export DIR\` writes (with an ansible.cfg whose known_hosts holds the pinned host keys), or as a script inventory: a two-line wrapper that runs \`xcluster inventory "$@"\`.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --list', description: 'Every group and host, with all host variables under _meta.'},
    {command: '<%= config.bin %> <%= command.id %> --host s1', description: 'The variables of s1.'},
    {command: "<%= config.bin %> <%= command.id %> --list | jq -r '.state_ready.hosts[]'", description: 'The nodes that are ready.'},
    {command: 'ansible-inventory -i ansible/cluster.xcluster.yml --graph', description: 'The same through the plugin, after `xcluster inventory export ansible`.'},
  ]

  static flags = {
    list: Flags.boolean({summary: 'Every group and host, with all host variables under _meta (the default).', exclusive: ['host']}),
    host: Flags.string({summary: "One host's variables.", helpValue: 'NAME', exclusive: ['list']}),
    ...inventoryAccessFlags,
  }

  async run(): Promise<AnsibleInventory | InventoryHostVars> {
    const key = this.flags['ssh-key']
    const read = await readInventory(this.store(), {sshKey: key && resolve(key), lanInterface: this.flags['lan-interface']})
    const result = this.flags.host === undefined ? read.inventory : inventoryHost(read.inventory, this.flags.host, read.removed)
    // JSON either way: it is what Ansible reads (with --json, oclif prints the same value).
    if (!this.jsonEnabled()) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    return result
  }
}
