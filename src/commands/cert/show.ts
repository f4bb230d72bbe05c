import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {showCertificate} from '../../lib/certs/operator.js'

export default class CertShow extends EtcdCommand<typeof CertShow> {
  static summary = "One certificate's facts and PEM (never its private key)."
  static description = 'Subject, issuer, SANs, profile, serial, validity, SHA-256 fingerprint, then the certificate in PEM, as openssl reads it.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> web', description: 'The facts, then the PEM.'},
    {command: '<%= config.bin %> <%= command.id %> web --json | jq -r .certPem | openssl x509 -noout -text', description: 'Read it with openssl.'},
  ]
  static args = {name: Args.string({description: 'Certificate name.', required: true})}

  async run(): Promise<Awaited<ReturnType<typeof showCertificate>>> {
    const c = await showCertificate(this.store(), this.args.name)
    this.say(`name:        ${c.name}`)
    this.say(`subject:     ${c.subject}`)
    this.say(`issuer:      ${c.issuer}`)
    this.say(`sans:        ${c.sans.join(', ') || '-'}`)
    this.say(`profile:     ${c.profile ?? '-'}`)
    this.say(`serial:      ${c.serial}`)
    this.say(`valid:       ${c.notBefore} to ${c.notAfter} (${c.daysLeft} days left)`)
    this.say(`sha256:      ${c.fingerprint}`)
    this.say(`key:         ${c.hasKey ? 'sealed in etcd' : 'not kept'}`)
    this.say(c.certPem.trimEnd())
    return c
  }
}
