import {Flags} from '@oclif/core'

import {confirmFlag} from '../../../flags.js'
import {rotateCa, type CaRotateResult} from '../../../lib/actions/ca-rotate.js'
import {operatorSecret} from '../../../lib/certs/operator.js'
import {usageError} from '../../../lib/errors.js'
import {describeRun} from '../../../lib/output/run-summary.js'
import {TaskCommand} from '../../../task-command.js'

export default class CertCaRotate extends TaskCommand<typeof CertCaRotate> {
  static summary = 'Replace the cluster CA: a new CA trusted beside the old one until every certificate is reissued, then the old one dropped.'
  static description = `Without --finish it begins the rotation (or carries on one that stopped): the new CA signs from now on, and a task list over SSH gives each core node, one at a time, a trust file with both CAs (its etcd member and serve restart to read it, each waited for until healthy), then new etcd and serve certificates from the new CA. The operator's own certificate and every certificate etcd keeps the key of are reissued too; frontends get the new trust file from the certs leader. With --finish, once nothing comes from the old CA any more, each node's trust file is narrowed to the new CA alone (members restarted in turn) and the old CA is dropped. Needs the cluster secret. Asks first unless --yes.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --dry-run', description: 'Show what beginning a rotation would change on each core node; change nothing.'},
    {command: '<%= config.bin %> <%= command.id %> --yes', description: 'Begin the rotation (or carry on one that stopped part-way).'},
    {command: '<%= config.bin %> <%= command.id %> --finish --yes', description: 'Stop trusting the old CA once every certificate comes from the new one.'},
  ]
  static flags = {
    finish: Flags.boolean({summary: 'Drop the old CA (refused while anything still comes from it).'}),
    days: Flags.integer({summary: "The new CA's validity in days (default 3650).", min: 1}),
    'secret-file': Flags.file({summary: "The cluster secret (default: the admin host's, beside the operator's credentials).", exists: true}),
    ...confirmFlag,
  }

  async run(): Promise<CaRotateResult> {
    if (this.flags.finish && this.flags.days !== undefined)
      throw usageError('--days applies to the new CA, which --finish does not make.', 'Give --days when the rotation begins: xcluster cert ca rotate --days 3650')
    if (!this.dryRun) {
      await this.confirm(
        this.flags.finish
          ? 'Stop trusting the old cluster CA? Each core node restarts its etcd member and serve in turn.'
          : 'Rotate the cluster CA? Each core node restarts its etcd member and serve in turn, and gets new certificates.',
      )
    }
    const store = this.store()
    const result = await rotateCa(store, {...this.taskOptions(), finish: this.flags.finish, days: this.flags.days, secret: () => operatorSecret(store, this.flags['secret-file'])})
    this.say(`CA rotation ${result.step}: the cluster CA is ${result.ca.current.fingerprint}${result.ca.previous ? `; ${result.ca.previous.fingerprint} is still trusted beside it` : ''}.`)
    for (const c of result.reissued) this.say(`Reissued ${c.name} from the new CA (serial ${c.oldSerial} -> ${c.serial}).`)
    for (const path of result.operator) this.say(`Rewrote ${path}.`)
    if (result.run) for (const line of describeRun(result.run)) this.say(line)
    if (result.step === 'begun' || result.step === 'carried on') {
      this.say(
        result.ca.stale.length > 0
          ? `Still from the old CA: ${result.ca.stale.map((c) => c.name).join(', ')} (their keys are not kept in etcd): replace them, then finish.`
          : 'Everything now comes from the new CA. Once clients outside the cluster trust it too (xcluster cert ca show --bundle), finish: xcluster cert ca rotate --finish',
      )
    }
    return result
  }
}
