import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../../etcd-command.js'
import {confirmFlag, dryRunFlag} from '../../../flags.js'
import {planRestore, type RestoreResult} from '../../../lib/etcd/snapshot.js'
import {settings} from '../../../lib/settings.js'

export default class EtcdSnapshotRestore extends EtcdCommand<typeof EtcdSnapshotRestore> {
  static summary = "Restore one etcd member's data dir from a snapshot, offline (the disaster-recovery path)."
  static description = `Checks the snapshot first (FILE.sha256 when present, the SHA-256 etcd embedded, etcdctl's read of the database) and refuses a damaged one. Then creates --data-dir with \`etcdctl snapshot restore\` (Debian etcd-client), checks it holds the snapshot's revision, and renames it into place; an existing data dir is never written into. Without --data-dir it is refused: exit 3 while the cluster at --etcd runs with quorum (restoring would throw away every write since the snapshot), exit 2 otherwise; either way it prints the commands below for each member. Asks first unless --yes.

Restoring the whole cluster (this command does not reach the other members for you):
  1. Copy FILE and FILE.sha256 to every etcd member (the core nodes).
  2. On every member: systemctl stop xcluster-serve.service etcd-member.service
  3. On every member: mv ${settings.etcdMember.dataDir} ${settings.etcdMember.dataDir}.before-restore
  4. On each member, with its own --name and peer URL and the same --initial-cluster:
     xcluster etcd snapshot restore FILE --data-dir ${settings.etcdMember.dataDir} --name s1 --initial-cluster s1=https://10.0.0.2:2380,s2=https://10.0.0.3:2380,s3=https://10.0.0.4:2380 --initial-advertise-peer-urls https://10.0.0.2:2380 --yes
  5. On every member: systemctl start etcd-member.service xcluster-serve.service
  6. Check: xcluster etcd health`
  static examples = [
    {
      command:
        '<%= config.bin %> <%= command.id %> backup.db --data-dir /var/lib/xcluster/etcd --name s1 --initial-cluster s1=https://10.0.0.2:2380,s2=https://10.0.0.3:2380,s3=https://10.0.0.4:2380 --initial-advertise-peer-urls https://10.0.0.2:2380 --dry-run',
      description: 'On core node s1, etcd stopped and its old data dir moved aside: check the snapshot and show the plan; change nothing.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> backup.db --data-dir /var/lib/xcluster/etcd --name s1 --initial-cluster s1=https://10.0.0.2:2380,s2=https://10.0.0.3:2380,s3=https://10.0.0.4:2380 --initial-advertise-peer-urls https://10.0.0.2:2380 --yes',
      description: "Restore s1's data dir; then the same on s2 and s3, and start etcd on all three.",
    },
    {command: '<%= config.bin %> <%= command.id %> backup.db', description: 'Check the snapshot and print the per-member commands (refused: no --data-dir).'},
  ]
  static args = {file: Args.string({description: 'The snapshot (from `xcluster etcd snapshot save` or `etcdctl snapshot save`).', required: true})}
  static flags = {
    'data-dir': Flags.string({
      summary: "The member data dir to create (must not exist; a core node's is " + settings.etcdMember.dataDir + ').',
      dependsOn: ['name', 'initial-cluster', 'initial-advertise-peer-urls'],
    }),
    name: Flags.string({summary: "This member's name, as in --initial-cluster.", dependsOn: ['data-dir']}),
    'initial-cluster': Flags.string({summary: 'Every member of the restored cluster, NAME=PEER_URL comma-separated.', dependsOn: ['data-dir']}),
    'initial-advertise-peer-urls': Flags.string({summary: "This member's peer URL(s).", dependsOn: ['data-dir']}),
    'initial-cluster-token': Flags.string({summary: "The restored cluster's token (default: the cluster name, as xcluster's member config sets it).", dependsOn: ['data-dir']}),
    ...confirmFlag,
    ...dryRunFlag,
  }

  async run(): Promise<RestoreResult> {
    const f = this.flags
    const target = f['data-dir']
      ? {
          dataDir: f['data-dir'],
          name: f.name!,
          initialCluster: f['initial-cluster']!,
          initialAdvertisePeerUrls: f['initial-advertise-peer-urls']!,
          initialClusterToken: f['initial-cluster-token'] ?? this.etcdConnection().cluster,
        }
      : undefined
    const plan = await planRestore(this.etcdConnection(), this.args.file, target)
    const show = (head: string, lines: string[]) => [head, ...lines.map((l) => `  - ${l}`)].forEach((l) => this.say(l))
    if (this.dryRun) {
      show('Dry run: the snapshot checked out; nothing was changed. The restore would:', plan.result.steps)
      show('Then:', plan.result.nextSteps)
      return plan.result
    }
    await this.confirm(`Create ${plan.result.target.dataDir} from ${plan.result.snapshot.file} (revision ${plan.result.snapshot.revision}) for member ${plan.result.target.name}?`)
    const result = await plan.commit()
    show(`Restored ${result.target.dataDir} (revision ${result.snapshot.revision}, ${result.snapshot.keys} keys) for member ${result.target.name}. Next:`, result.nextSteps)
    return result
  }
}
