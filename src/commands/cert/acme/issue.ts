import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../../etcd-command.js'
import {dryRunFlag} from '../../../flags.js'
import {issueAcmeCertificate, type AcmeIssueResult} from '../../../lib/certs/acme.js'
import {env, settings} from '../../../lib/settings.js'

export default class CertAcmeIssue extends EtcdCommand<typeof CertAcmeIssue> {
  static summary = 'Obtain a certificate from an ACME CA (Let’s Encrypt by default) over HTTP-01, and record it in etcd with its key sealed.'
  static description = `Each challenge's key authorization is written to etcd (under certs/acme/challenges/TOKEN, leased ${settings.certs.acme.challengeTtlSeconds} s) and answered by xcluster serve --acme-http, to which the nginx of every frontend proxies /.well-known/acme-challenge/: every DOMAIN must resolve to the frontends. The ACME account (one per directory) is created on first use, agreeing to the CA's terms of service, and recorded with its key sealed under the cluster secret. The certificate is recorded like cert issue's (cert list, cert show), named after the first DOMAIN unless --name. The private key is never printed, not even with --json. Refused with nothing written: a bad domain or email, a name already taken, a CA that cannot be reached or that refuses the order.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> app.example.org www.example.org --email ops@example.org', description: 'One certificate for two names, from Let’s Encrypt.'},
    {
      command: '<%= config.bin %> <%= command.id %> app.example.org --email ops@example.org --directory https://acme-staging-v02.api.letsencrypt.org/directory --name app-staging',
      description: 'From Let’s Encrypt’s staging CA, under another name.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> app.xcluster.test --email ops@xcluster.test --directory https://127.0.0.1:14000/dir --ca-file pebble-tls.crt',
      description: 'From a local Pebble, trusting the CA of its HTTPS certificate.',
    },
    {command: '<%= config.bin %> <%= command.id %> app.example.org --email ops@example.org --dry-run', description: 'Check the request and show what would be done; the CA is not called.'},
  ]
  static args = {domain: Args.string({description: 'A DNS name the certificate is for (several allowed; the first is its common name).', required: true})}
  static strict = false
  static flags = {
    email: Flags.string({summary: 'The contact the CA may write to about the account.', required: true}),
    directory: Flags.string({summary: 'The ACME directory URL.', default: settings.certs.acme.directory}),
    name: Flags.string({summary: 'The certificate name in etcd (default: the first DOMAIN).'}),
    'ca-file': Flags.file({summary: "Also trust this CA (PEM) for the directory's HTTPS, e.g. a test CA's.", env: env.acmeCaFile, exists: true}),
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true}),
    ...dryRunFlag,
  }

  async run(): Promise<AcmeIssueResult> {
    const {email, directory, name, 'ca-file': caFile, 'secret-file': secretFile} = this.flags
    const {argv} = await this.parse(CertAcmeIssue)
    const domains = argv as string[]
    const result = await issueAcmeCertificate(this.store(), {domains, email, directory, name, caFile, secretFile, dryRun: this.dryRun})
    if (result.dryRun) {
      this.say(`Would (dry run, nothing written, the CA not called):`)
      for (const step of result.plan) this.say(`  - ${step}`)
      return result
    }
    const c = result.certificate!
    if (result.account?.created) this.say(`Created the ACME account ${result.account.url}${result.account.termsOfService ? ` (terms of service: ${result.account.termsOfService})` : ''}.`)
    this.say(`Issued ${c.name} by ${c.issuer} (serial ${c.serial}) for ${c.sans.join(', ')}, valid until ${c.notAfter} (${c.daysLeft} days); its key is sealed in etcd.`)
    return result
  }
}
