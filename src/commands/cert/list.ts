import {EtcdCommand} from '../../etcd-command.js'
import {listCertificates, type CertificateView} from '../../lib/certs/operator.js'

export default class CertList extends EtcdCommand<typeof CertList> {
  static summary = 'The certificates recorded in etcd: name, SANs, profile, expiry, days left, status and who issued them.'
  static description =
    'Read from etcd; soonest to expire first. Never a private key: KEY says only whether its key is kept, sealed. STATUS: ok, due (renewed by cert renew --all), expired or revoked. FROM is the cluster CA, or acme and the host of the ACME directory.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Every certificate, soonest to expire first.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as JSON: [{name, commonName, sans, profile, serial, notAfter, daysLeft, fingerprint, hasKey, source?, ...}].'},
  ]

  async run(): Promise<CertificateView[]> {
    const certs = await listCertificates(this.store())
    this.table(
      [
        {header: 'name', get: (c) => c.name},
        {header: 'sans', get: (c) => c.sans.join(',') || '-'},
        {header: 'profile', get: (c) => c.profile ?? '-'},
        {header: 'not after', get: (c) => c.notAfter},
        {header: 'days left', get: (c) => String(c.daysLeft)},
        {header: 'status', get: (c) => c.status},
        {header: 'key', get: (c) => (c.hasKey ? 'sealed' : 'no')},
        {header: 'from', get: (c) => (c.source ? `acme ${new URL(c.source.directory).host}` : 'cluster CA')},
      ],
      certs,
    )
    return certs
  }
}
