/** Defaults and timeouts: one place for every tunable number. */
export const settings = {
  cluster: 'xcluster',
  etcdEndpoints: ['http://127.0.0.1:2379'],
  /** Per-call deadline for etcd requests. */
  etcdCallTimeoutMs: 5000,
  /** How long to keep retrying an UNAVAILABLE etcd before reporting it unreachable. */
  etcdUnavailableRetryMs: 3000,
  /** How long a failing etcd member is skipped before it is tried again. */
  etcdMemberBackoffMs: 200,
  sshConnectTimeoutMs: 5000,
  sshConnectRetries: 5,
  sshCommandTimeoutMs: 120_000,
  specFile: 'xcluster.yaml',
  /** Hosts worked on at once within a phase (`--concurrency`). */
  taskConcurrency: 20,
  /**
   * etcd's per-transaction limit (its --max-txn-ops flag, default 128), for compares and for
   * operations alike. `config apply` refuses a larger plan rather than split it: an apply is
   * all-or-nothing. Raise both together if etcd runs with a higher limit.
   */
  etcdMaxTxnOps: 128,
} as const

export const env = {
  etcd: 'XCLUSTER_ETCD',
  cluster: 'XCLUSTER_CLUSTER',
  etcdCa: 'XCLUSTER_ETCD_CA',
  etcdCert: 'XCLUSTER_ETCD_CERT',
  etcdKey: 'XCLUSTER_ETCD_KEY',
  labDir: 'XCLUSTER_LAB_DIR',
} as const
