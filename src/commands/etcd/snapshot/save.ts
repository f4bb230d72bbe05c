import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../../etcd-command.js'
import {humanBytes} from '../../../lib/etcd/maintenance.js'
import {withEtcdRoot} from '../../../lib/certs/root-access.js'
import {saveSnapshot, type SnapshotSaveResult} from '../../../lib/etcd/snapshot.js'

export default class EtcdSnapshotSave extends EtcdCommand<typeof EtcdSnapshotSave> {
  static summary = "Save a snapshot of the cluster's etcd (every key, lease and member) to FILE, checked, with FILE.sha256 beside it."
  static description =
    "Streams the snapshot from a healthy member to FILE.part, fsyncs it, checks the SHA-256 etcd embeds in it and (with Debian's etcd-client installed) reads its revision and key count with etcdctl, then renames it to FILE and writes FILE.sha256. A failed save leaves FILE as it was and no FILE.part. Restore it with `xcluster etcd snapshot restore`."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> /var/backups/xcluster-etcd.db', description: 'Save a snapshot (refused if the file exists).'},
    {command: '<%= config.bin %> <%= command.id %> etcd-$(date +%F).db --force --json', description: 'Replace an existing file; the revision, keys and SHA-256 as JSON.'},
  ]
  static args = {file: Args.string({description: 'Where to write the snapshot.', required: true})}
  static flags = {force: Flags.boolean({summary: 'Replace FILE if it exists.'})}

  async run(): Promise<SnapshotSaveResult> {
    const r = await saveSnapshot(this.etcdConnection(), this.args.file, {force: this.flags.force, progress: this.progressMode(), asRoot: withEtcdRoot})
    this.say(
      `Saved ${r.file} (${humanBytes(r.bytes)}${r.revision === null ? '' : `, revision ${r.revision}, ${r.keys} keys`}) from ${r.member} in ${r.seconds.toFixed(1)} s; sha256 ${r.sha256} in ${r.sha256File}.`,
    )
    return r
  }
}
