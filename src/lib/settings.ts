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
  /** The admin host's NIC on the cluster LAN (`--lan-interface`). */
  lanInterface: 'eth0',
  /** The package cache (Squid) on the bootstrap host, at the spec's gateway address. */
  packageProxyPort: 3128,
  etcdClientPort: 2379,
  packageInstallTimeoutMs: 600_000,
  ceph: {
    /** How long `node drain` waits for Ceph to move data off a node's OSDs, polling this often. */
    drainTimeoutMs: 30 * 60_000,
    drainPollMs: 1000,
    /** The rbd CLI election daemons and checks use (env XCLUSTER_RBD; MicroCeph: microceph.rbd). */
    rbd: 'rbd',
    commandTimeoutMs: 10_000,
  },
  /** Hosts worked on at once within a phase (`--concurrency`). */
  taskConcurrency: 20,
  /**
   * etcd's per-transaction limit (its --max-txn-ops flag, default 128), for compares and for
   * operations alike. `config apply` refuses a larger plan rather than split it: an apply is
   * all-or-nothing. Raise both together if etcd runs with a higher limit.
   */
  etcdMaxTxnOps: 128,
  /**
   * Keys per page of a prefix read: a range response must stay under the client's 4 MiB gRPC
   * message limit (500 keys leave ~8 KiB per value).
   */
  etcdPageSize: 500,
  /** A cache following etcd (src/lib/etcd/follow.ts) retries a lost watch or a reload this soon, doubling to max. */
  etcdFollowBackoffMs: {min: 100, max: 5000},
  /** How long stopping a watch may wait for etcd to confirm the cancel. */
  etcdWatchCancelTimeoutMs: 1000,
  dhcp: {
    /** Lease for a known node (seconds); T1/T2 are the RFC 2131 defaults of 50% and 87.5%. */
    leaseSeconds: 3600,
    /**
     * A REQUEST for a lease younger than this fraction of its lifetime is ACKed with the time
     * left, without a write (Kea's cache-threshold); older leases are extended in etcd.
     */
    leaseCacheThreshold: 0.25,
    /** Short lease for an unknown MAC: long enough to PXE boot into enlistment. */
    discoveryLeaseSeconds: 300,
    /** How long an address a client DECLINEd (in use by someone else) is kept out of the pool. */
    declineHoldSeconds: 600,
    /** An OFFER holds its address in memory this long before another client may get it. */
    offerHoldMs: 10_000,
    /** How often the daemon logs its counters (dropped packets by reason, replies). */
    statsLogIntervalMs: 60_000,
    /** The last-seen time of a discovered MAC is written at most this often (etcd write load). */
    discoveredTouchIntervalMs: 60_000,
    /**
     * Packets being answered at once; beyond this, new ones are dropped (counted as overload).
     * DISCOVERs start only below half of it, so REQUESTs for offers made find room.
     */
    maxInFlight: 1024,
    /** Datagrams waiting to be looked at; beyond this, new ones are dropped (receive-queue-full). */
    receiveQueueLength: 2048,
    /** Datagrams handled per event-loop turn, and the time one turn may take at most. */
    receiveBatch: 64,
    receiveBatchMs: 5,
    /** A packet that waited longer than this in the queue is not answered (stale): the client has moved on. */
    maxQueueWaitMs: 1000,
    /**
     * Overload: a DISCOVER starts an exchange only while lease writes take less than
     * admitDiscoverBelowWriteMs (a moving average, queueing included) and fewer than
     * admitMaxPendingLeases leases are on their way (writes in flight, OFFERs of the last
     * offerAnswerWindowMs awaiting their REQUEST); else it waits in a queue of
     * discoverQueueLength for at most maxDiscoverWaitMs, then is shed (the client retries).
     * The wait is short: an OFFER later than ~1 s is lost for many clients (perfdhcp too).
     */
    admitDiscoverBelowWriteMs: 250,
    admitMaxPendingLeases: 1024,
    offerAnswerWindowMs: 1000,
    discoverQueueLength: 256,
    maxDiscoverWaitMs: 250,
    /** How soon waiting DISCOVERs are looked at again when the pipeline had no room. */
    discoverRetryMs: 5,
    /** Requests queued per client MAC (the one being answered included); retransmissions beyond are dropped. */
    maxQueuedPerClient: 2,
    /** Discovered MACs are written together, at most this long after they were first seen. */
    discoveredBatchMs: 200,
    /**
     * Unknown MACs kept under dhcp/discovered/ (and in each server's memory); beyond it the least
     * recently seen are removed. A cap rather than a TTL: it bounds etcd whatever the rate of new
     * (spoofed) MACs, needs no etcd lease kept alive, and keeps what an operator enlists now.
     */
    maxDiscovered: 4096,
    /** Discovered-MAC writes and removals per batch: a flood of new MACs costs etcd a bounded rate. */
    discoveredWritesPerFlush: 512,
    /** The longest vendor class (option 60) stored; PXE ROMs send 32 characters. */
    maxStoredVendorClass: 128,
    /** Client architectures (option 93) stored per MAC; a ROM names one. */
    maxStoredClientArchs: 4,
    /**
     * Lease writes are group-committed: up to this many transactions with etcd at once, each
     * carrying up to this many leases (the writes that came in meanwhile).
     */
    leaseWriteBatchesInFlight: 4,
    leaseWriteBatch: 32,
    /** A range found full is not scanned again for this long (unless an address in it is freed). */
    fullRangeRecheckMs: 1000,
    /** Kernel receive buffer for the DHCP socket: bursts (PXE storms, fuzzers) must not overflow it. */
    receiveBufferBytes: 4 * 1024 * 1024,
    pxe: {
      biosBootFile: 'undionly.kpxe',
      uefiBootFile: 'ipxe.efi',
      /** The boot script iPXE fetches, on the TFTP/HTTP server (the gateway unless the spec says). */
      httpBootPath: '/boot.ipxe',
    },
  },
  election: {
    /** Lease TTL when a service does not set one: etcd's floor with default timings. */
    defaultTtlSeconds: 2,
    /**
     * A leader stops its service this long before its lease could expire (counted from the
     * send time of its last acknowledged keepalive): the time a stop command may take.
     * Clamped to [min, max] as a fraction of the TTL.
     */
    safetyMarginFraction: 0.25,
    safetyMarginMinMs: 250,
    safetyMarginMaxMs: 1000,
    /** Keepalives per TTL: several may be lost before the margin is reached. */
    keepalivesPerTtl: 8,
    /** The local safety check and state machine tick. */
    tickMs: 50,
    /** History entries kept per service. */
    historyLimit: 50,
    /** How long a resign/transfer request holds others back before it lapses. */
    handoverTimeoutMs: 10_000,
    /** Per etcd call made by a campaign (the lease deadline bounds it further). */
    callTimeoutMs: 1000,
    /** How long a start or stop command may take before it is reported as failed. */
    commandTimeoutMs: 30_000,
    /** After the service stopped, how long a shutdown may spend releasing its seat and lease. */
    shutdownCleanupMs: 3000,
    /** `election check` re-samples once after this long so a handover in flight is not reported. */
    checkResampleMs: 500,
  },
  /** An etcd member on a core node (src/lib/etcd/cluster-config.ts). */
  etcdMember: {
    clientPort: 2379,
    peerPort: 2380,
    configFile: '/etc/xcluster/etcd.conf.yml',
    dataDir: '/var/lib/xcluster/etcd',
    /** Short raft timings: a lost member costs ~0.6 s instead of ~1.7 s (LAB-NOTES). */
    heartbeatMs: 50,
    electionMs: 500,
    logLevel: 'warn',
    /** A member without quorum may ignore SIGTERM: systemd sends SIGKILL after this. */
    stopTimeoutSeconds: 5,
  },
  /** The xcluster-serve systemd unit on a node (src/lib/election/units.ts). */
  serveUnit: {
    bin: '/usr/local/bin/xcluster',
    envFile: '/etc/xcluster/serve.env',
    stopTimeoutSeconds: 35,
    restartSeconds: 1,
  },
  keepalived: {
    interface: 'eth0',
    /** VRRP virtual router id of the admin VIP (1-255, unique on the LAN). */
    routerId: 54,
    topPriority: 150,
    priorityStep: 10,
    /** Exit 0 while this node's admin services are healthy (the admin election's view). */
    trackScript: '/usr/local/bin/xcluster-admin-healthy',
  },
  lab: {
    stateDir: '/var/lib/xcluster/lab',
    cacheDir: '/var/cache/xcluster/lab',
    /** Relative to the package root. */
    defaultSpec: 'templates/xcluster.yaml',
    suite: 'bookworm',
    rootfsInclude: ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'iproute2', 'ca-certificates', 'python3', 'sudo', 'procps', 'etcd-server'],
    /** Where each node sees this checkout (read-only bind mount): the node's xcluster runs it. */
    repoMount: '/opt/xcluster',
    hostPackages: ['etcd-server', 'etcd-client', 'debootstrap', 'systemd-container', 'socat', 'squid', 'iproute2', 'busybox', 'isc-dhcp-client', 'openssh-client'],
    proxyPort: 3128,
    etcdClientPort: 2379,
    /** Extra compute nodes (`--nodes`) get fixed addresses from here up, outside every DHCP range. */
    extraNodeFirstHost: 100,
    extraNodeMacPrefix: '02:58:43:00:02',
    nodeBootTimeoutMs: 60_000,
    /** fs.inotify.max_user_instances floor: base + per node (see ensureHostLimits). */
    inotifyInstancesBase: 256,
    inotifyInstancesPerNode: 64,
    serviceStartTimeoutMs: 20_000,
    nodeStopTimeoutMs: 10_000,
    daemonStopTimeoutMs: 5000,
    rootfsBuildTimeoutMs: 15 * 60_000,
  },
} as const

export const env = {
  etcd: 'XCLUSTER_ETCD',
  cluster: 'XCLUSTER_CLUSTER',
  etcdCa: 'XCLUSTER_ETCD_CA',
  etcdCert: 'XCLUSTER_ETCD_CERT',
  etcdKey: 'XCLUSTER_ETCD_KEY',
  labDir: 'XCLUSTER_LAB_DIR',
  lanInterface: 'XCLUSTER_LAN_INTERFACE',
  sshKey: 'XCLUSTER_SSH_KEY',
  rbd: 'XCLUSTER_RBD',
} as const
