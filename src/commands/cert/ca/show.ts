import {Flags} from '@oclif/core'

import {EtcdCommand} from '../../../etcd-command.js'
import {showCa, type CaView} from '../../../lib/certs/operator.js'

export default class CertCaShow extends EtcdCommand<typeof CertCaShow> {
  static summary = 'The cluster CA, and during a rotation the CA being retired and what it still signs.'
  static description =
    'Subject, serial, validity and SHA-256 fingerprint of the CA that signs, of the old one while `cert ca rotate` has not finished, and the stored certificates still from the old one. --bundle prints the trust bundle instead (every CA trusted now, PEM): what clients outside the cluster should trust during a rotation. Never a private key.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Where the CAs stand.'},
    {command: '<%= config.bin %> <%= command.id %> --bundle > cluster-ca.pem', description: 'Save what clients should trust now.'},
  ]
  static flags = {bundle: Flags.boolean({summary: 'Print the trust bundle (PEM) instead of the facts.'})}

  async run(): Promise<CaView> {
    const view = await showCa(this.store())
    if (this.flags.bundle) {
      this.say(view.bundlePem.trimEnd())
      return view
    }
    const line = (label: string, ca: CaView['current']) => this.say(`${label} ${ca.subject}, serial ${ca.serial}, ${ca.notBefore} to ${ca.notAfter}, sha256 ${ca.fingerprint}`)
    line('signing CA: ', view.current)
    if (view.previous) {
      line('retiring CA:', view.previous)
      this.say(
        view.stale.length > 0 ? `still from the retiring CA: ${view.stale.map((c) => c.name).join(', ')}` : 'nothing stored comes from the retiring CA: finish with xcluster cert ca rotate --finish',
      )
    }
    return view
  }
}
