import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {dryRunFlag} from '../../flags.js'
import {renewNamedCertificates} from '../../lib/certs/operator.js'
import {parseThreshold, type RenewResult} from '../../lib/certs/renewal.js'
import {settings} from '../../lib/settings.js'

export default class CertRenew extends EtcdCommand<typeof CertRenew> {
  static summary = 'Reissue certificates from the cluster CA: the named ones, or every one that is due.'
  static description = `A renewed certificate keeps its name, SANs and profile and gets a new key and serial, for the validity it had (or --days); the record in etcd is replaced only if nobody changed it meanwhile. With --all: every certificate with less than --before left (default ${settings.certs.renewBeforeDays}d), except revoked ones and those whose key lives only on their host (provisioning renews those), and the CRL is signed afresh when past half its life. Nodes pick renewed certificates up from etcd.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> web', description: 'Renew one certificate now, due or not (a revoked one gets its replacement).'},
    {command: '<%= config.bin %> <%= command.id %> --all --before 30d --dry-run', description: 'Show what is due within 30 days; change nothing.'},
    {command: '<%= config.bin %> <%= command.id %> --all', description: 'Renew everything that is due.'},
  ]
  static strict = false
  static args = {name: Args.string({description: 'Certificate names (or --all).'})}
  static flags = {
    all: Flags.boolean({summary: 'Every certificate that is due (see --before).'}),
    before: Flags.string({summary: `With --all: renew what has less than this left (30d, 12h, 90m; default ${settings.certs.renewBeforeDays}d).`, dependsOn: ['all']}),
    days: Flags.integer({summary: 'The new validity in days (default: the old one).', min: 1}),
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true}),
    ...dryRunFlag,
  }

  async run(): Promise<RenewResult> {
    const {all, before, days, 'secret-file': secretFile} = this.flags
    const {argv} = await this.parse(CertRenew)
    const names = argv as string[]
    const result = await renewNamedCertificates(this.store(), {names, all: all === true, beforeMs: before === undefined ? undefined : parseThreshold(before), days, dryRun: this.dryRun}, secretFile)
    this.table(
      [
        {header: 'name', get: (c) => c.name},
        {header: 'action', get: (c) => c.action},
        {header: 'not after', get: (c) => c.notAfter ?? c.oldNotAfter},
        {header: 'serial', get: (c) => c.serial ?? c.oldSerial},
        {header: 'why', get: (c) => c.reason ?? '-'},
      ],
      result.certificates,
    )
    if (result.crl) this.say(`CRL: ${result.crl.action}${result.crl.number ? ` (number ${result.crl.number}, valid until ${result.crl.nextUpdate})` : ''}.`)
    if (this.dryRun) this.say('Dry run: nothing was changed.')
    return result
  }
}
