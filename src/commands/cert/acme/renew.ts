import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../../etcd-command.js'
import {renewAcmeCertificate, type AcmeIssueResult} from '../../../lib/certs/acme.js'
import {env} from '../../../lib/settings.js'

export default class CertAcmeRenew extends EtcdCommand<typeof CertAcmeRenew> {
  static summary = 'Obtain a new certificate for a stored ACME certificate (same names, same CA and account) and replace it in etcd.'
  static description = `The challenges are answered from etcd by xcluster serve --acme-http, as for cert acme issue. The new certificate has a new private key, sealed under the cluster secret; the record is replaced only once the CA has issued, and only if it did not change meanwhile. Refused with nothing written: a name not stored, a certificate from the cluster CA, a CA that cannot be reached or that refuses the order.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> app.example.org', description: 'Renew from the CA that issued it (Let’s Encrypt, say).'},
    {command: '<%= config.bin %> <%= command.id %> app.xcluster.test --ca-file pebble-tls.crt', description: 'Renew from a local Pebble, trusting the CA of its HTTPS certificate.'},
  ]
  static args = {name: Args.string({description: 'The certificate name in etcd (see cert list).', required: true})}
  static flags = {
    'ca-file': Flags.file({summary: "Also trust this CA (PEM) for the directory's HTTPS, e.g. a test CA's.", env: env.acmeCaFile, exists: true}),
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true}),
  }

  async run(): Promise<AcmeIssueResult> {
    const result = await renewAcmeCertificate(this.store(), {name: this.args.name, caFile: this.flags['ca-file'], secretFile: this.flags['secret-file']})
    const c = result.certificate!
    this.say(`Renewed ${c.name} by ${c.issuer} (serial ${c.serial}) for ${c.sans.join(', ')}, valid until ${c.notAfter} (${c.daysLeft} days); its new key is sealed in etcd.`)
    return result
  }
}
