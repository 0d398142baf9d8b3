/** Every default timeout and limit in one place; units are in the names. */
export const DEFAULTS = {
  /**
   * shared_buffers of the embedded PGlite store. PostgreSQL's 128MB default is zeroed at every
   * open (~130 ms and ~130 MB of RSS per command); the OS page cache keeps the store's pages
   * anyway, and large scans use a small ring whatever the pool (bench/process-cost.ts).
   */
  embeddedSharedBuffers: '8MB',
  /** Hard limit for a whole run, sandbox included. */
  runTimeoutMs: 60 * 60_000,
  /**
   * One Docker engine call at teardown and when reaping (remove a container or a volume, list
   * leftovers, a failed sandbox's log tail): an engine that does not answer within this fails
   * the call, the run is recorded, and the reaper removes what is left at the next start.
   * Generous: removing a volume that holds a large restored database takes a while.
   */
  engineCallTimeoutMs: 60_000,
  /** Waiting for the sandboxed server to accept connections. */
  readinessTimeoutMs: 120_000,
  /** Physical PostgreSQL backups: how long WAL replay may take. */
  recoveryTimeoutMs: 30 * 60_000,
  /** One probe. */
  probeTimeoutMs: 5 * 60_000,
  /** Files younger than this may still be written and are skipped. */
  settleMs: 60_000,
  /** expect: cron: how long a scheduled backup may run before it counts as missing. */
  expectGraceMs: 60 * 60_000,
  /** Retries of an S3 request or a dropped transfer. */
  s3MaxRetries: 4,
  /** One S3 request answering, or a transfer stalling. */
  s3RequestTimeoutMs: 60_000,
  /** First retry delay; doubled each time, with jitter. */
  retryBaseDelayMs: 250,
  /** restic check --read-data-subset before each restore. */
  resticCheckSubset: '5%',
  /** borg check before each restore: the chosen archive's metadata and chunk list. */
  borgCheck: 'archive' as const,
  /** How long borg waits for a lock held by a running backup. */
  borgLockWaitMs: 10_000,
  sandboxMemoryBytes: 2 * 1024 ** 3,
  sandboxCpus: 2,
  sandboxPids: 512,
  sandboxShmBytes: 256 * 1024 ** 2,
  sandboxTmpBytes: 512 * 1024 ** 2,
  /** Bytes of a tool's stderr/stdout kept for evidence. */
  outputTailBytes: 16 * 1024,
  /** Characters of one reason, and of a sandbox's log tail, kept in a run's record. */
  reasonMaxChars: 2_000,
  /** A run's record that the store does not take as the run ends: retried after these waits, then journaled. */
  finalizeRetryDelaysMs: [1_000, 2_000, 4_000, 8_000] as readonly number[],
  /**
   * The embedded store shared through its holder's socket (evidence/store-socket.ts): how long a
   * command waits for a holder that is still opening the store (or closing it) to let it in.
   */
  storeJoinWaitMs: 15_000,
  /** How long a holder closing the store waits for the other processes using it to finish. */
  storeHostDrainMs: 60_000,
  /** A client silent this long inside a transaction on the holder's store is rolled back. */
  storeTxIdleMs: 30_000,
  logTailMaxChars: 8_000,
  /** Reading a failed sandbox's log tail at teardown; given up after this (a hung engine). */
  logTailTimeoutMs: 10_000,
  /** Read size from storage. */
  readChunkBytes: 1024 * 1024,
  postgresImage: 'backproof/postgres:15',
  mysqlImage: 'backproof/mariadb',
  /** File archives and SQLite; also the helper container that runs http probes. */
  filesImage: 'backproof/files',
  /** kind files: expanded bytes, entries and expanded/compressed ratio before extraction stops. */
  filesMaxBytes: 20 * 1024 ** 3,
  filesMaxEntries: 500_000,
  filesMaxRatio: 200,
  /** The ratio limit applies only past this many expanded bytes (small archives of zeros are fine). */
  filesRatioFloorBytes: 256 * 1024 ** 2,
  /** kind files: the comparison with the last passing run (files.ransomware). */
  filesRansomware: { minFiles: 20, maxRenamed: 0.2, maxRewritten: 0.5, maxDisappeared: 0.5, maxRandomRise: 0.2 },
  /** randomValues probe: how much the share of random-looking values may rise; values sampled per column. */
  randomValuesMaxRise: 0.2,
  randomValuesSample: 200,
  /** encryptedLooking probe: share of documents that may look random. */
  encryptedMaxShare: 0.1,
  /** Size check against history: fail below this percentage of the median of the last runs. */
  /** Retention coverage: every restore point proven once in this, one older point per run. */
  coverageEveryMs: 30 * 24 * 3600_000,
  coveragePoints: 1,
  sizeAnomalyMinPercent: 50,
  sizeAnomalyLastRuns: 10,
  sizeAnomalyMinHistory: 3,
  /** kind vm: QEMU boots of restored disk images. */
  vm: {
    image: 'backproof/qemu',
    memoryBytes: 1024 ** 3,
    cpus: 2,
    maxDiskBytes: 64 * 1024 ** 3,
    /** TCG (no KVM) boots a minimal Linux in ~30-45 s; Windows takes minutes. */
    bootTimeoutMs: 10 * 60_000,
    stallTimeoutMs: 2 * 60_000,
    screenshotEveryMs: 2_000,
    /** Room the sandbox needs beyond the guest's memory: QEMU itself, its caches, OCR. */
    overheadBytes: 512 * 1024 ** 2,
  },
  /** Alert deliveries (email, webhook). */
  alert: {
    /** Attempts per delivery, the first included. */
    maxAttempts: 4,
    /** First retry delay; doubled each time, with jitter. */
    retryBaseDelayMs: 1_000,
    retryMaxDelayMs: 30_000,
    /** A Retry-After longer than this ends the delivery instead of waiting. */
    maxRetryAfterMs: 120_000,
    /** One webhook request, body included. */
    webhookTimeoutMs: 10_000,
    smtpConnectionTimeoutMs: 10_000,
    smtpGreetingTimeoutMs: 10_000,
    /** SMTP inactivity. */
    smtpSocketTimeoutMs: 30_000,
    /** An open condition is notified again after this long. */
    reminderAfterMs: 24 * 60 * 60_000,
    /** A delivery that failed every attempt is tried again at each check for this long. */
    retryForMs: 24 * 60 * 60_000,
    /** One heartbeat ping. */
    heartbeatTimeoutMs: 10_000,
  },
  /** backproof daemon. */
  daemon: {
    concurrency: 2,
    perClient: 1,
    catchUp: true,
    /** First signal: how long running runs may finish before they are cancelled. */
    shutdownGraceMs: 10 * 60_000,
    /** Stale/missing/overdue checks, reminders and delivery retries between runs. */
    checkEveryMs: 5 * 60_000,
    timezone: 'UTC',
    /** A scheduled run not started within this is overdue. */
    overdueGraceMs: 60 * 60_000,
    livenessHost: '127.0.0.1',
    /** How often the daemon verifies what was sealed since the last evidence checkpoint and signs a new one. */
    evidenceCheckpointEveryMs: 24 * 60 * 60_000,
  },
  /** evidence.witness: where and how long published chain heads are kept, and how often the daemon publishes. */
  witness: {
    prefix: 'backproof-witness/',
    /** About 13 months: a year of evidence and its audit. */
    retainMs: 400 * 24 * 60 * 60_000,
    everyMs: 60 * 60_000,
  },
  dataDir: '.backproof',
  configFile: 'backproof.yaml',
  schema: 'backproof',
} as const;
