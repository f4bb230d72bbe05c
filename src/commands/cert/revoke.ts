import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag} from '../../flags.js'
import {REVOCATION_REASONS, type RevocationReason} from '../../lib/certs/crl.js'
import {revokeNamedCertificate} from '../../lib/certs/operator.js'
import type {RevokeResult} from '../../lib/certs/revocation.js'

export default class CertRevoke extends EtcdCommand<typeof CertRevoke> {
  static summary = 'Revoke a certificate: record it and sign a CRL that lists it, in one transaction.'
  static description = `The certificate stays in etcd, marked revoked, and its serial joins the cluster CA's revocation list (CRL), which is signed afresh with a higher number: clients that check the CRL (nginx with ssl_crl, openssl -crl_check) refuse it from then on. Needs the cluster secret (the CRL is signed by the CA). Asks first unless --yes. Replace it with: xcluster cert renew NAME.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> web --reason key-compromise', description: 'Revoke a certificate whose key leaked (asks first).'},
    {command: '<%= config.bin %> <%= command.id %> old-agent --reason cessation-of-operation --yes', description: 'Revoke without asking.'},
  ]
  static args = {name: Args.string({description: 'The certificate name (as in xcluster cert list).', required: true})}
  static flags = {
    reason: Flags.string({summary: 'Why (RFC 5280 reason code).', options: Object.keys(REVOCATION_REASONS), default: 'unspecified'}),
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true}),
    ...confirmFlag,
  }

  async run(): Promise<RevokeResult> {
    await this.confirm(`Revoke the certificate ${this.args.name}? Clients that check the CRL will refuse it.`)
    const result = await revokeNamedCertificate(this.store(), this.args.name, this.flags.reason as RevocationReason, this.flags['secret-file'])
    this.say(`Revoked ${result.name} (serial ${result.serial}, ${result.reason}); CRL ${result.crl.number} lists ${result.crl.revoked} serial(s), valid until ${result.crl.nextUpdate}.`)
    return result
  }
}
