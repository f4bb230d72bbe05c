/** Where xcluster lives on a node (src/lib/release/layout.ts). */
const XCLUSTER_BASE = '/opt/xcluster'

/** Defaults and timeouts: one place for every tunable number. */
export const settings = {
  cluster: 'xcluster',
  etcdEndpoints: ['http://127.0.0.1:2379'],
  /** Per-call deadline for etcd requests. */
  etcdCallTimeoutMs: 5000,
  /** How long to keep retrying an UNAVAILABLE etcd before reporting it unreachable. */
  etcdUnavailableRetryMs: 3000,
  /**
   * Which etcd members get calls (see MemberGate): a member whose connect does not succeed within
   * the probe timeout is down; a member that failed is skipped while another is up, for a backoff
   * that doubles per failure (a restarting member is back in about a second; a dead machine is
   * probed again every 10 s, never waited on).
   */
  etcdMemberGate: {probeTimeoutMs: 3000, backoffMs: 1000, maxBackoffMs: 10_000},
  /** A watch etcd cancelled is re-created after this long, doubling up to the max. */
  etcdWatchRetryMinMs: 100,
  etcdWatchRetryMaxMs: 2000,
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
  /** The spec's packages: section when it leaves something out. */
  packages: {
    /** Debian bookworm's own sources: the archive and the security archive. */
    mirrors: ['http://deb.debian.org/debian', 'http://deb.debian.org/debian-security'],
  },
  /** The admin host's bootstrap services (src/lib/admin-services/): NTP, DNS/TFTP, HTTP, package cache, Ansible. */
  adminServices: {
    /** Where --native keeps configs, pid files, logs and caches; the same path inside the containers. */
    stateDir: '/var/lib/xcluster/admin',
    /** Where the Compose bundle is written when no directory is given. */
    composeDir: 'xcluster-admin',
    ports: {dns: 53, tftp: 69, http: 80, ntp: 123},
    /** Squid's disk cache (MB), the largest object it keeps (a big .deb) and its memory cache. */
    squidCacheMb: 4096,
    squidMaxObjectMb: 512,
    squidMemoryMb: 64,
    /** The iPXE binaries the TFTP root serves, from Debian's ipxe package, by the spec's boot file names. */
    ipxeDir: '/usr/lib/ipxe',
    ipxeBios: 'undionly.kpxe',
    ipxeUefi: 'ipxe.efi',
    /** Install media (e.g. Debian's netboot files) under the HTTP root, and the installer's paths in it. */
    mediaDir: 'media',
    installerKernel: 'debian-installer/amd64/linux',
    installerInitrd: 'debian-installer/amd64/initrd.gz',
    /** How long a started daemon may take to hold its ports, and a stopped one to exit before SIGKILL. */
    startTimeoutMs: 15_000,
    stopTimeoutMs: 10_000,
    /** Persistent units when systemd is PID 1 (`xcluster-admin-<service>.service`). */
    unitPrefix: 'xcluster-admin-',
    unitDir: '/etc/systemd/system',
    unitRestartSeconds: 2,
    /** The Compose images: built from Debian's packages, on the official Debian image. */
    baseImage: 'debian:bookworm-slim',
    servicesImage: 'xcluster-admin-services:bookworm',
    ansibleImage: 'xcluster-admin-ansible:bookworm',
    /** Debian packages of the Ansible toolbox image. */
    ansiblePackages: ['ansible-core', 'openssh-client'],
    /** Compose project name (container and volume names start with it). */
    composeProject: 'xcluster-admin',
  },
  etcdClientPort: 2379,
  packageInstallTimeoutMs: 600_000,
  ceph: {
    /** How long `node drain` waits for Ceph to move data off a node's OSDs, polling this often. */
    drainTimeoutMs: 30 * 60_000,
    drainPollMs: 1000,
    /** The rbd CLI election daemons and checks use (env XCLUSTER_RBD; MicroCeph: microceph.rbd). */
    rbd: 'rbd',
    /** The ceph CLI the fencing leader blocklists with (env XCLUSTER_CEPH; MicroCeph: microceph.ceph). */
    ceph: 'ceph',
    /** Each rbd/ceph call of serve and check (env XCLUSTER_CEPH_TIMEOUT_MS); a fence that gets no answer fails the start. */
    commandTimeoutMs: 10_000,
    /**
     * How long a fenced client stays blocklisted. A client paused longer than this could write
     * again when it wakes, so it is far beyond any pause a machine survives (its guardian kills
     * the instance as soon as it runs again, long before).
     */
    blocklistSeconds: 7 * 24 * 3600,
    /** After a start, how long serve waits for the service's client to take the image's exclusive lock, to record it. */
    holderWaitMs: 10_000,
    holderPollMs: 100,
    /** Where the kernel lists its rbd driver once loaded (or built in): `rbdMap: auto` maps with krbd then. */
    krbdSysfs: '/sys/bus/rbd',
    /** udevd's control socket: without a running udevd, `rbd device map` is told not to wait for it (noudev). */
    udevControl: '/run/udev/control',
    /** `ceph bootstrap` / `ceph join`: how long the monitors may take to form a quorum with an active manager. */
    formTimeoutMs: 180_000,
    formPollMs: 2000,
  },
  /** `xcluster update`: the rolling update. */
  update: {
    /** Nodes per batch (`--serial`). */
    serial: 1,
    ansiblePlaybook: 'ansible-playbook',
    /** One batch's playbook run at most (package upgrades and a reboot). */
    playbookTimeoutMs: 60 * 60_000,
    /** How long a node may take to answer SSH and be healthy again after its playbook (a reboot). */
    backTimeoutMs: 15 * 60_000,
    /** How long an undrained core node's serve may take to campaign again in its elections. */
    rejoinTimeoutMs: 60_000,
    pollMs: 1000,
    /** Inventory exports (ssh-keyscan of the pinned keys) before a batch whose node did not answer the scan is given up on. */
    keyscanAttempts: 5,
  },
  /**
   * A running run holds a lock key under a lease of this TTL, kept alive by its process: a
   * `--resume` of that run elsewhere is refused while it lives, and allowed this long after the
   * process died without finishing.
   */
  runLockTtlSeconds: 10,
  /** Hosts worked on at once within a phase (`--concurrency`). */
  taskConcurrency: 20,
  /**
   * etcd's per-transaction limit (its --max-txn-ops flag, default 128), for compares and for
   * operations alike: writes of many keys go in transactions of at most this many (a stock etcd
   * is assumed; `config apply` stays all-or-nothing for readers by other means, see
   * src/lib/spec/apply.ts).
   */
  etcdMaxTxnOps: 128,
  /**
   * The largest response the etcd client accepts (gRPC's default is 4 MiB): one consistent read
   * carries the first page (etcdPageSize keys) of every prefix it reads.
   */
  etcdMaxResponseBytes: 64 * 1024 * 1024,
  /** `config apply` of a spec of any size on a stock etcd (src/lib/spec/apply.ts). */
  specApply: {
    /**
     * The spec is stored in parts of at most this many bytes (JSON), staged a few per
     * transaction: every request stays well under etcd's --max-request-bytes (default 1.5 MiB).
     */
    partBytes: 256 * 1024,
    /** Bytes of parts, or of node records and MAC bindings, written per transaction. */
    txnBytes: 1024 * 1024,
    /** Keys written per transaction of the fold (each also compared, plus the pointer): under --max-txn-ops (128). */
    foldBatchKeys: 120,
    /** Fold transactions in flight at once: etcd commits concurrent ones with one disk sync. */
    foldConcurrency: 8,
    /**
     * A spec larger than this is refused (SPEC_TOO_LARGE) before anything is written: every
     * reader of the spec reads all of it (8 MiB is some 80,000 nodes).
     */
    maxSpecBytes: 8 * 1024 * 1024,
    /**
     * The running apply's claim (and its staged parts) live under a lease of this TTL, kept alive
     * by the process: when it dies, etcd drops them this long after.
     */
    claimTtlSeconds: 10,
    /** Rounds of read, write, verify a fold tries before giving up (each round re-reads etcd). */
    foldAttempts: 8,
  },
  /**
   * A state copy (src/lib/etcd/migrate.ts) writes at most this many bytes per transaction:
   * etcd refuses requests over its --max-request-bytes (default 1.5 MiB); the rest is headroom.
   */
  etcdMigrateBatchBytes: 1024 * 1024,
  /** Keys per page when a whole cluster prefix is read. */
  etcdMigratePageKeys: 500,
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
    /**
     * Lease TTL when a service does not set one. A leader must ride out an etcd leader election
     * (no keepalive is answered meanwhile: measured 1.1-1.3 s with the raft timings xcluster
     * deploys) with its safety margin left: 3 s leaves 2.25 s. A crash fails over in well under a
     * second whatever the TTL (the dead serve's lease is revoked); a frozen or cut-off leader
     * fails over after it.
     */
    defaultTtlSeconds: 3,
    /**
     * A leader stops its service this long before its lease could expire (counted from the
     * send time of its last acknowledged keepalive): the time a stop command may take.
     * Clamped to [min, max] as a fraction of the TTL.
     */
    safetyMarginFraction: 0.25,
    safetyMarginMinMs: 250,
    safetyMarginMaxMs: 1000,
    /**
     * Keepalives per TTL, sent to every etcd member at once: an answer refreshes the lease bound
     * within a tick of the cluster being able to give one (after an etcd leader election).
     */
    keepalivesPerTtl: 20,
    keepaliveMinIntervalMs: 50,
    /**
     * The guardian kills an instance this fraction of the safety margin before the lease could
     * expire: the time a kill takes even on a loaded host. What is left of the margin is the
     * stop command's time after a demotion.
     */
    guardianKillFraction: 0.5,
    /**
     * How long a restarted serve waits for its dead predecessor's instances to die after SIGKILL
     * before it gives up on revoking the predecessor's lease (as the guardian waits, 5 s).
     */
    instanceKillWaitMs: 5000,
    /** The local safety check and state machine tick. */
    tickMs: 50,
    /** History entries kept per service. */
    historyLimit: 50,
    /** How long a resign/transfer request holds others back before it lapses. */
    handoverTimeoutMs: 10_000,
    /** Per etcd call made by a campaign (the lease deadline bounds it further). */
    callTimeoutMs: 1000,
    /** How long a start command may take before the instance is killed and the start reported failed. */
    startTimeoutMs: 30_000,
    /** How long a stop command may take (while this node still leads) before the instance is killed. */
    stopTimeoutMs: 30_000,
    /**
     * Where serve keeps its instances' output and the node lock's state (env XCLUSTER_RUN_DIR),
     * one directory per node name.
     */
    runDir: '/run/xcluster/serve',
    /** The runtime drop-in that binds a `unit:` service to the serve unit (BindsTo=). */
    bindingDropIn: '50-xcluster-serve.conf',
    /** After the service stopped, how long a shutdown may spend releasing its seat and lease. */
    shutdownCleanupMs: 3000,
    /** `election check` re-samples once after this long so a handover in flight is not reported. */
    checkResampleMs: 500,
  },
  /** `xcluster status` and `xcluster health` (src/lib/health/). */
  health: {
    /** A DHCP range this full (leased addresses / addresses it can lease, in %) warns, then fails. */
    poolWarnPercent: 80,
    poolFailPercent: 95,
    /** `--ssh`: one connect attempt per node (no retries: health reports, it does not insist). */
    sshTimeoutMs: 5000,
    /** A command run for a check (the clock read, chronyc). */
    sshCommandTimeoutMs: 5000,
    /** SSH checks run on this many nodes at once. */
    sshConcurrency: 32,
    /** A node's clock this far from this host's (beyond the measuring error) warns, then fails. */
    clockSkewWarnMs: 100,
    clockSkewFailMs: 1000,
    /** Failed runs `status` shows, newest first. */
    failedRunsShown: 5,
    /** `status --watch` redraws this often. */
    watchIntervalMs: 2000,
    /** `serve --http` (src/lib/health/http-api.ts). */
    http: {
      /** Requests within this long of a read share it: a stampede of load-balancer probes is one etcd read. */
      cacheMs: 1000,
      /** A request (headers and body) must arrive within this, or its connection is closed. */
      requestTimeoutMs: 10_000,
      /** The TLS certificate and key files are checked this often; a renewed pair is used without a restart. */
      tlsReloadPollMs: 1000,
    },
    /** The web dashboard of `serve --http` at / and its live stream /events (src/lib/health/dashboard.ts). */
    dashboard: {
      /** Browsers following /events at once, per serve: one more gets 503 until one leaves (each costs a socket and a copy of every update). */
      maxClients: 32,
      /** A change in etcd is pushed at most once per this: a burst of writes is one read and one update. */
      coalesceMs: 250,
      /** Wait this long after the first change of a burst before reading: a failover's leader key, views and history land together. */
      settleMs: 50,
      /** Re-read this often while a browser watches: what no etcd key shows (member health, leases running out). */
      refreshMs: 5000,
      /** A comment line this often keeps proxies and browsers from taking a quiet stream for a dead one. */
      keepaliveMs: 15_000,
      /** A browser that leaves this much unread is too slow to follow: it is dropped and reconnects to a fresh picture. */
      maxBufferedBytes: 4 * 1024 * 1024,
      /** The browser reconnects this long after losing the stream. */
      reconnectMs: 2000,
      /** Leadership changes shown, newest first (from each service's history in etcd). */
      changesShown: 50,
    },
  },
  /** `xcluster etcd members|health|snapshot` (src/lib/etcd/maintenance.ts, src/lib/etcd/snapshot.ts). */
  etcdMaintenance: {
    /** Each member's status and a quorum read must answer within this, or the member is reported unhealthy. */
    memberProbeTimeoutMs: 1500,
    /** A snapshot stream that sends nothing for this long is abandoned (the partial file removed). */
    snapshotIdleTimeoutMs: 30_000,
    /** etcdctl (Debian etcd-client): reads a snapshot's revision and keys, and restores a member's data dir. */
    etcdctl: 'etcdctl',
    etcdctlTimeoutMs: 10 * 60_000,
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
    /** The backend's size limit (etcd's default is 2 GiB): 4 GiB leaves room for 5,000+ nodes' records, leases and history. */
    quotaBackendBytes: 4 * 1024 * 1024 * 1024,
    /** Revisions older than this are compacted (auto-compaction-mode periodic): watches and reads need minutes, not days. */
    autoCompactionRetention: '1h',
    /** A member without quorum may ignore SIGTERM: systemd sends SIGKILL after this. */
    stopTimeoutSeconds: 5,
  },
  /** The cluster CA and the certificates it issues (src/lib/certs/). */
  certs: {
    /** ECDSA on P-256 (issue 8): the curve every TLS stack here speaks. */
    curve: 'P-256',
    hash: 'SHA-256',
    caDays: 3650,
    /** Member, serve and operator certificates. */
    leafDays: 365,
    /** A certificate with less than this left is replaced by the next provisioning run. */
    renewBeforeDays: 30,
    /** `cert ca rotate`: how long a restarted etcd member may take to be healthy again. */
    rotateMemberTimeoutMs: 60_000,
    /** `health` warns about a certificate (or the CRL) with less than this many days left, and fails below the second. */
    expiryWarnDays: 30,
    expiryFailDays: 7,
    /**
     * The CRL is signed for this long; every revoke and every `cert renew` signs a fresh one, and
     * `health` warns as it nears its end, since a client that checks an expired CRL refuses everything.
     */
    crlDays: 30,
    /** The elected service of `serve --certs` that renews certificates and the CRL (src/lib/certs/keeper.ts). */
    keeperService: 'certs',
    /** A renewal that failed is tried again after this; the keeper never sleeps longer than the second. */
    keeperRetryMs: 60_000,
    keeperMaxSleepMs: 3_600_000,
    /**
     * A failed ACME renewal waits keeperRetryMs, doubling per failure up to this, before its next
     * order: Let's Encrypt allows 5 failed validations per account and name an hour (and few
     * orders), so retrying every minute would lock the account out until long after the cause
     * (DNS, a frontend down) is fixed. Days of margin remain: renewal starts 30 days before the end.
     */
    keeperAcmeRetryMaxMs: 3_600_000,
    /** A root client certificate is minted for one RBAC run and never stored: an hour is plenty. */
    rootClientDays: 1 / 24,
    /** notBefore is backdated this much so a node whose clock lags a little still accepts a new certificate. */
    backdateMs: 5 * 60_000,
    /** Random serial numbers: 16 bytes (RFC 5280 allows up to 20; CAB forum asks for 8+ random). */
    serialBytes: 16,
    /** The cluster secret that seals private keys at rest: random bytes, base64url in a 0600 file. */
    secretBytes: 32,
    /**
     * scrypt derives the sealing key from the cluster secret (N = 2^15, r = 8, p = 1: ~0.1 s and
     * 32 MiB here). Stored beside each sealed key, so raising them later still opens old ones;
     * a sealed key asking for more than maxN is refused rather than run.
     */
    scrypt: {N: 2 ** 15, r: 8, p: 1, maxN: 2 ** 20, saltBytes: 16, maxmemBytes: 256 * 1024 * 1024},
    /** Where a node keeps its TLS files and the cluster secret (root-owned; keys and secret 0600). */
    nodeDir: '/etc/xcluster/pki',
    /** Where the admin host keeps them, per cluster, under the operator's home (XCLUSTER_PKI_DIR overrides). */
    adminDir: '.config/xcluster',
    /** ACME (RFC 8555) issuance: `xcluster cert acme issue` and the HTTP-01 responder. */
    acme: {
      /** Let's Encrypt production; --directory names another CA (staging, Pebble in the tests). */
      directory: 'https://acme-v02.api.letsencrypt.org/directory',
      /** A key authorization lives in etcd this long at most, even if the issuing process dies. */
      challengeTtlSeconds: 600,
      /** One HTTP call to the CA; a CA that does not answer in this time is a failure, not a wait. */
      requestTimeoutMs: 20_000,
      /** Calls refused by the network or answered 5xx/429 are retried this often, 1 s, 2 s... apart. */
      retryAttempts: 2,
      retryDelaySeconds: 1,
      /** Polling an authorization, challenge or order until valid: backoff from min to max, this many polls. */
      pollMinMs: 500,
      pollMaxMs: 10_000,
      pollAttempts: 12,
      /** The responder's answer to one GET; etcd slower than this is a 503 (the CA retries). */
      responderTimeoutMs: 5_000,
    },
  },
  /** What a node must offer before it is provisioned (src/lib/phases/preflight.ts). */
  preflight: {
    debian: '12',
    minFreeMiB: 512,
  },
  /** `xcluster bootstrap` (src/lib/actions/bootstrap.ts). */
  bootstrap: {
    /** The cluster's SSH key on a core node (its public half is authorized on every node). */
    nodeClusterKey: '/etc/xcluster/ssh/id_ed25519',
    /** Short-lived credentials minted from the CA for one run live under here (0700), then go. */
    mintedDirName: 'xcluster-minted',
    /** The transient unit the seed carries the bootstrap on in, after the hand-over. */
    continuationUnit: 'xcluster-bootstrap',
    /** Where the continuation leaves its summary for the admin host to read. */
    continuationSummary: '/run/xcluster/bootstrap-summary.json',
    /** How long the admin host follows the continuation before it stops waiting (the seed goes on). */
    followTimeoutMs: 30 * 60_000,
    /** A core node needs this much free space where the runtime and etcd go. */
    minFreeMiB: 1024,
    /** How long a new etcd member may take to report healthy. */
    memberHealthyTimeoutMs: 60_000,
  },
  /** DNS and TFTP on the core nodes (dnsmasq without DHCP). */
  coreDns: {
    unit: 'xcluster-dns.service',
    configFile: '/etc/xcluster/dnsmasq.conf',
    tftpRoot: '/srv/xcluster/tftp',
  },
  /**
   * xcluster on a node (src/lib/release/, src/lib/phases/release-*.ts): the Node.js runtime and
   * releases built from the admin host's installed package, under `baseDir` on the node:
   * runtime/node-<version>-<sha12>/bin/node, releases/<id>/, `current` -> releases/<id>, `libexec`
   * -> current/libexec; the wrapper on PATH is serveUnit.bin.
   */
  release: {
    baseDir: XCLUSTER_BASE,
    /** Releases kept on a node, `current` included (it is never removed). */
    keep: 3,
    /**
     * gzip level of the uploaded archives. 1: the admin's Node.js binary (99 MB) compresses in
     * ~2.5 s to 40 MB, against ~6.3 s and 36 MB at 6; the archives are cached, nodes gunzip either
     * as fast, and on a LAN the extra 4 MB cost less than the extra seconds.
     */
    compressionLevel: 1,
    /** Free space a node must keep beyond what an install writes. */
    diskHeadroomBytes: 32 * 1024 * 1024,
    /** One upload (stream, verification and extraction) may take this long. */
    uploadTimeoutMs: 10 * 60_000,
    /** Reading and verifying what a node has (a sha256sum of the runtime and the release tree). */
    probeTimeoutMs: 60_000,
    /** A staging directory an interrupted upload left behind is removed after this long. */
    staleIncomingMinutes: 60,
    /** Holds the release's sha256 on the node, written only after the upload was verified. */
    markerFile: '.xcluster-release',
    /** Every regular file of a release with its sha256 (sha256sum format), to verify what is installed. */
    sumsFile: 'SHA256SUMS',
    /** What a release holds from the package root (package-lock.json when there is one). */
    include: ['bin', 'dist', 'libexec', 'templates', 'package.json', 'package-lock.json', 'oclif.manifest.json'],
    required: ['bin/run.js', 'dist', 'package.json', 'oclif.manifest.json'],
    /** Never shipped, at any depth: VCS and CI files, caches, node-gyp build intermediates, credentials. */
    excludeNames: ['.git', '.github', '.cache', '.nyc_output', 'coverage', 'obj.target', '.deps', '.npmrc', '.env', '.DS_Store'],
    /** A dependency's own tests (at its top level), which can hold fixtures such as private keys. */
    excludePackageDirs: ['test', 'tests', '__tests__'],
    /** Under the XDG cache dir (or XCLUSTER_CACHE_DIR): built archives, keyed by their inputs. */
    cacheSubdir: 'xcluster/releases',
    /** Cached builds kept on the admin host. */
    cacheKeep: 4,
  },
  /** The xcluster-serve systemd unit on a node (src/lib/election/units.ts). */
  /** Nodes reporting their SSH host keys to the DHCP leader (src/lib/nodes/enlistment.ts). */
  enlistment: {
    /** The TCP port the DHCP leader takes reports on, on its address on the served LAN. */
    port: 4701,
    path: '/enlist',
    /** The node's side (templates/node/enlist.sh), under the admin host's HTTP root. */
    scriptPath: 'xcluster-enlist.sh',
    /** A report is a few public key lines: anything bigger is refused unread. */
    maxReportBytes: 16 * 1024,
    maxHostKeys: 8,
    /** A sender gets this long to send its report. */
    requestTimeoutMs: 5000,
    /** The elected in-process service of `serve --provision` whose leader provisions enlisted nodes. */
    provisionService: 'provision',
    /** How often its leader looks for registered nodes that enlisted (one read of dhcp/enlisted/). */
    autoProvisionPollMs: 2000,
    /** Nodes one auto-provisioning run works on at once. */
    autoProvisionConcurrency: 10,
  },
  serveUnit: {
    name: 'xcluster-serve.service',
    bin: '/usr/local/bin/xcluster',
    /** The guardian and the lease revoker on a node: the current release's, through a link (this checkout in the lab). */
    libexecDir: `${XCLUSTER_BASE}/libexec`,
    envFile: '/etc/xcluster/serve.env',
    /** Added to the computed stop budget (serveStopBudgetMs) for TimeoutStopSec. */
    stopSlackSeconds: 5,
    /** Where a core node's serve answers the health API (`serve --http :PORT`): every address, the admin VIP's too. */
    httpPort: 4702,
    /** After its services stopped, serve exits within this even if a socket keeps it alive. */
    exitGraceMs: 2000,
    restartSeconds: 1,
  },
  keepalived: {
    interface: 'eth0',
    /** VRRP virtual router id of the admin VIP (1-255, unique on the LAN). */
    routerId: 54,
    topPriority: 150,
    priorityStep: 10,
    /** Seconds between VRRP adverts: a dead holder is noticed after about 3 of them. */
    advertIntSeconds: 1,
    /** Exit 0 while this node's admin services are healthy (the admin election's view). */
    trackScript: '/usr/local/bin/xcluster-admin-healthy',
  },
  lab: {
    stateDir: '/var/lib/xcluster/lab',
    cacheDir: '/var/cache/xcluster/lab',
    /** Relative to the package root. */
    defaultSpec: 'templates/xcluster.yaml',
    suite: 'bookworm',
    /** What a preseeded Debian install leaves (the standard system plus sshd): nothing of xcluster's. */
    rootfsInclude: ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'iproute2', 'ca-certificates', 'python3', 'sudo', 'procps'],
    hostPackages: ['etcd-server', 'etcd-client', 'debootstrap', 'systemd-container', 'socat', 'squid', 'iproute2', 'busybox', 'isc-dhcp-client', 'openssh-client'],
    /**
     * The lab's way out: its Squid (root namespace), bridged to <admin IP>:<port> inside xc-admin.
     * Not 3128: that is the admin host's own package cache, which bootstrap starts, and the lab's
     * effective spec names this bridge as its upstream (packages.upstream).
     */
    upstreamProxyPort: 3129,
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
  /**
   * Public endpoints (src/lib/frontend/): nginx on each frontend node terminates TLS and proxies to
   * the local end of a Rathole tunnel, whose other end (a client on a core node) reaches the target.
   */
  frontend: {
    /** nginx's plain-HTTP port on a frontend: ACME HTTP-01 challenges (and 404 for anything else). */
    httpPort: 80,
    /** The ACME answerer on the frontend's loopback that nginx hands /.well-known/acme-challenge/ to. */
    acmePort: 8402,
    /** The Rathole server's control port on each frontend: the core nodes' clients connect to it. */
    ratholePort: 2333,
    /** Each endpoint's tunnel ends on the frontend's loopback at a port of this range, kept in its record. */
    tunnelPorts: {first: 20_000, last: 20_999},
    /** nginx reads <tlsDir>/certs/<cert>.crt and <tlsDir>/private/<cert>.key (0600) there. */
    tlsDir: '/etc/xcluster/tls',
    /** Random bytes of each endpoint's Rathole token (base64url in etcd and in the TOML). */
    tokenBytes: 32,
    /** Where `frontend sync` puts the rendered site (Debian's nginx.conf includes conf.d/*.conf) and the Rathole server's config. */
    nginxSite: '/etc/nginx/conf.d/xcluster-frontends.conf',
    ratholeServerConfig: '/etc/xcluster/frontend/rathole-server.toml',
    /**
     * Where the core node leading `certs` keeps one Rathole client config per serving frontend
     * (src/lib/frontend/rathole-clients.ts); env XCLUSTER_RATHOLE_CLIENT_DIR overrides it.
     */
    ratholeClientDir: '/etc/xcluster/frontend/clients',
    /** nginx -t, with the new files in place, gets this long before they are put back. */
    nginxTestTimeoutMs: 30_000,
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
  ceph: 'XCLUSTER_CEPH',
  /** The bound on each rbd/ceph call of serve and check (default settings.ceph.commandTimeoutMs). */
  cephTimeoutMs: 'XCLUSTER_CEPH_TIMEOUT_MS',
  runDir: 'XCLUSTER_RUN_DIR',
  /** Where serve --certs, while it leads, writes the Rathole clients' configs (default settings.frontend.ratholeClientDir). */
  ratholeClientDir: 'XCLUSTER_RATHOLE_CLIENT_DIR',
  /** Where --native keeps the admin host's services (default settings.adminServices.stateDir). */
  adminStateDir: 'XCLUSTER_ADMIN_STATE_DIR',
  pkiDir: 'XCLUSTER_PKI_DIR',
  /** A CA (PEM) to trust for ACME directories beside the system's (a test CA's): cert acme --ca-file, serve --acme-ca-file. */
  acmeCaFile: 'XCLUSTER_ACME_CA_FILE',
  cacheDir: 'XCLUSTER_CACHE_DIR',
} as const
