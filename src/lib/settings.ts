/** Defaults and timeouts: one place for every tunable number. */
export const settings = {
  cluster: 'xcluster',
  etcdEndpoints: ['http://127.0.0.1:2379'],
  /** Per-call deadline for etcd requests. */
  etcdCallTimeoutMs: 5000,
  /** How long to keep retrying an UNAVAILABLE etcd before reporting it unreachable. */
  etcdUnavailableRetryMs: 3000,
  sshConnectTimeoutMs: 5000,
  sshConnectRetries: 5,
  /** First pause between SSH connect attempts; doubles per attempt up to the max. */
  sshConnectBackoffMs: 250,
  sshConnectBackoffMaxMs: 4000,
  /** SSH keepalives notice a silently dead host: interval x count. */
  sshKeepaliveIntervalMs: 5000,
  sshKeepaliveCountMax: 3,
  /** A timed-out command is killed on the host itself this long after we report the timeout. */
  sshRemoteKillGraceMs: 500,
  sshCommandTimeoutMs: 120_000,
  specFile: 'xcluster.yaml',
} as const

export const env = {
  etcd: 'XCLUSTER_ETCD',
  cluster: 'XCLUSTER_CLUSTER',
  etcdCa: 'XCLUSTER_ETCD_CA',
  etcdCert: 'XCLUSTER_ETCD_CERT',
  etcdKey: 'XCLUSTER_ETCD_KEY',
  labDir: 'XCLUSTER_LAB_DIR',
} as const
