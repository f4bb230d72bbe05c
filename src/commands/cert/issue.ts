import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {PROFILES, type CertificateProfile} from '../../lib/certs/authority.js'
import {issueNamedCertificate, type IssueResult} from '../../lib/certs/operator.js'
import {settings} from '../../lib/settings.js'

export default class CertIssue extends EtcdCommand<typeof CertIssue> {
  static summary = 'Issue a certificate from the cluster CA and record it in etcd (its private key sealed).'
  static description = `The CA key is opened with the cluster secret on this host (beside the operator's credentials, or --secret-file). The certificate is NAME (its common name) with the SANs given; server and peer certificates need at least one. It is recorded in etcd with its private key sealed under the cluster secret; --out also writes NAME.crt, NAME.key (mode 0600) and ca.crt to a directory. The private key is never printed, not even with --json. Refused with nothing written: a name already taken, no SAN for a server or peer, a validity past the CA's.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> web --san www.example.org --san 10.0.0.80 --out /etc/xcluster/tls', description: 'A server certificate for a year, written beside the CA.'},
    {command: '<%= config.bin %> <%= command.id %> backup-agent --profile client --days 30', description: 'A client certificate for 30 days, its key only sealed in etcd.'},
  ]
  static args = {name: Args.string({description: 'Certificate name and common name (lower-case letters, digits, ., _, -).', required: true})}
  static flags = {
    san: Flags.string({summary: 'A DNS name or IP address the certificate is for (repeat for more).', multiple: true, default: []}),
    profile: Flags.string({summary: 'server (serverAuth), client (clientAuth) or peer (both).', options: [...PROFILES], default: 'server'}),
    days: Flags.integer({summary: `Validity in days (default ${settings.certs.leafDays}).`, min: 1}),
    out: Flags.directory({summary: 'Also write NAME.crt, NAME.key (0600) and ca.crt into this directory.'}),
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true}),
  }

  async run(): Promise<IssueResult> {
    const {san, profile, days, out, 'secret-file': secretFile} = this.flags
    const result = await issueNamedCertificate(this.store(), {name: this.args.name, sans: san, profile: profile as CertificateProfile, days, outDir: out, secretFile})
    const c = result.certificate
    this.say(`Issued ${c.name} (${c.profile}, serial ${c.serial}) for ${c.sans.join(', ') || c.commonName}, valid until ${c.notAfter} (${c.daysLeft} days); its key is sealed in etcd.`)
    if (result.files) this.say(`Wrote ${result.files.cert}, ${result.files.key} (0600) and ${result.files.ca}.`)
    return result
  }
}
