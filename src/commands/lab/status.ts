import {BaseCommand} from '../../base-command.js'
import {ExitStatus, XclusterError} from '../../lib/errors.js'
import {labStatus, type LabStatus} from '../../lib/lab/status.js'

const show = (v: boolean | null) => (v === null ? '-' : v ? 'yes' : 'NO')

export default class LabStatusCommand extends BaseCommand<typeof LabStatusCommand> {
  static summary = 'Show every lab host: namespace, MAC, address, systemd state, sshd and etcd health.'
  static description = 'Exits 3 when the lab is not up or any host is unhealthy.'
  static examples = [
    {command: 'sudo <%= config.bin %> <%= command.id %>', description: 'A table of hosts.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> --json', description: 'The same as JSON ({healthy, hosts:[...]}).'},
  ]

  async run(): Promise<LabStatus> {
    const status = await labStatus()
    this.table(
      [
        {header: 'name', get: (h) => h.name},
        {header: 'kind', get: (h) => h.kind},
        {header: 'netns', get: (h) => h.netns},
        {header: 'mac', get: (h) => h.mac},
        {header: 'ip', get: (h) => h.ip ?? '-'},
        {header: 'systemd', get: (h) => h.systemd ?? '-'},
        {header: 'sshd', get: (h) => show(h.sshd)},
        {header: 'etcd', get: (h) => show(h.etcd)},
      ],
      status.hosts,
    )
    if (!status.healthy) {
      const bad = status.hosts.filter((h) => !h.healthy).map((h) => h.name)
      throw new XclusterError(`Unhealthy lab hosts: ${bad.join(', ')}.`, {
        code: 'LAB_UNHEALTHY',
        exit: ExitStatus.precondition,
        suggestion: 'Rebuild the lab: sudo xcluster lab up',
        details: status,
      })
    }
    return status
  }
}
