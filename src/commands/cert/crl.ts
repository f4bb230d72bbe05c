import {Flags} from '@oclif/core'
import {writeFileSync} from 'node:fs'

import {EtcdCommand} from '../../etcd-command.js'
import {revocationList} from '../../lib/certs/operator.js'
import type {StoredCrl} from '../../lib/certs/revocation.js'

export default class CertCrl extends EtcdCommand<typeof CertCrl> {
  static summary = "The cluster CA's certificate revocation list (PEM): print it, write it, or sign it afresh."
  static description = `The CRL is public: it lists revoked serials, signed by the cluster CA, with a number that only grows and a next-update time after which clients refuse it. Every cert revoke signs a new one, and so does cert renew --all when it is past half its life; --refresh signs one now (and the first one, before anything was revoked), which needs the cluster secret.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --out /etc/nginx/xcluster-ca.crl', description: 'Write the CRL where nginx (ssl_crl) reads it.'},
    {command: '<%= config.bin %> <%= command.id %> --refresh', description: 'Sign a fresh CRL now.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'Its number, validity, how many serials it lists, and the PEM.'},
  ]
  static flags = {
    out: Flags.file({summary: 'Write the PEM to this file instead of printing it.'}),
    refresh: Flags.boolean({summary: 'Sign a fresh CRL first (needs the cluster secret).'}),
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true, dependsOn: ['refresh']}),
  }

  async run(): Promise<StoredCrl> {
    const crl = await revocationList(this.store(), {refresh: this.flags.refresh, secretFile: this.flags['secret-file']})
    if (this.flags.out) {
      writeFileSync(this.flags.out, crl.pem, {mode: 0o644})
      this.say(`Wrote CRL ${crl.number} (${crl.revoked} serial(s), valid until ${crl.nextUpdate}) to ${this.flags.out}.`)
    } else if (!this.jsonEnabled()) process.stdout.write(crl.pem)
    return crl
  }
}
