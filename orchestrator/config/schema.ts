/**
 * The one zod schema for the config file (version 1). Parsing the file's data through
 * `configSchema` yields the resolved types of types.ts with defaults applied and durations and
 * sizes turned into numbers. Left to load.ts, which sees the whole file: `file`, `secrets`,
 * absolute `source.path` and `daemon.liveness.file` values, and unique client and policy names
 * across the file. The daemon's parts (daemon:, alerts:, schedules, heartbeats, alert routing)
 * are in daemon-schema.ts; the shared building blocks in schema-helpers.ts.
 *
 * Messages: every issue raised here carries both what is wrong and what to do, joined by
 * `FIX_SEPARATOR` (see `say`); load.ts splits them into a ConfigProblem's `problem` and `fix`.
 */
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { addProblem, identifier, isRecordPayload, matching, nonEmptyText, say, sizeText, typeError } from './schema-helpers.js';
import { alertRouting, alertsSchema, checkChannelNames, daemonSchema, heartbeatSchema, resolveClient, scheduleSchema, type ClientDraft, type PolicyDraft } from './daemon-schema.js';
import { checkReportsChannel, clientReportsSchema, reportsSchema, resolveReports } from './reports-schema.js';
import { secret } from './secret-schema.js';
import { vmSchema } from './vm-schema.js';
import { RESTORE_KINDS, type RestoreKind } from '../core/config-types.js';
import type { ClientConfig, ResolvedConfig } from '../core/config-types.js';
import { coverage, custom, files, mysql, postgres, sandbox, sizeAnomaly, sqlite, targets } from './kind-schema.js';
import { probe, PROBES_OF_KIND, type ProbeKey } from './probe-schema.js';
import { source } from './source-schema.js';
import { evidence } from './evidence-schema.js';

// The file's parts by topic: source-schema.ts (sources, selectors), kind-schema.ts (targets,
// sandbox, kinds' blocks), probe-schema.ts (probes), daemon-schema.ts and alerts-schema.ts,
// reports-schema.ts, vm-schema.ts; this file puts policies, clients and the file together.
export { cronProblem } from './source-schema.js';
export { PROBES_OF_KIND } from './probe-schema.js';

/** What the schema produces; load.ts adds `file` and `secrets` and absolutises source paths. */
export type ConfigFromSchema = Omit<ResolvedConfig, 'file' | 'secrets'>;

// The building blocks live in schema-helpers.ts (so daemon-schema.ts can use them without a cycle).
export { addProblem, compactDuration, durationKey, FIX_SEPARATOR, identifier, isRecordPayload, isTimeZone, matching, nonEmptyText, parseSize, quote, say, timezone, typeError } from './schema-helpers.js';

// ---- Policies, clients, file -----------------------------------------------------------------

const LABEL = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;
/** Worker labels as a policy requires them; `kvm: true` and `kvm: "true"` are the same label. */
export const workerLabels = z.record(
  z.string().regex(LABEL, { error: say('is not a label name', 'use letters, digits, ".", "_" and "-", e.g. site or kvm') }),
  z
    .union([z.string().regex(LABEL), z.boolean(), z.number()], { error: typeError('a label value', () => 'write a word, number or true/false, e.g. site: berlin, kvm: true') })
    .transform((v) => String(v)),
);

const KINDS = RESTORE_KINDS;

const policy = z
  .strictObject({
    name: identifier('policy').describe('Policy id, unique across all clients: lowercase letters, digits, ".", "_", "-".'),
    kind: z
      .enum(KINDS, { error: typeError('a supported kind', () => `use one of ${KINDS.join(', ')}`) })
      .describe('What the backups are: postgres (pg_dump output), mysql (mysqldump/mariadb-dump), files (tar or zip archives), sqlite (database files), custom (any image and commands), vm (whole-machine disk images, booted).'),
    source,
    targets: targets.prefault({}),
    sandbox: sandbox.prefault({}),
    postgres: postgres.optional(),
    mysql: mysql.optional(),
    files: files.optional(),
    sqlite: sqlite.optional(),
    custom: custom.optional(),
    vm: vmSchema.optional(),
    sizeAnomaly,
    coverage: coverage.optional(),
    probes: z.array(probe).default([]).describe('Checks run on the restored data, in order. Default none.'),
    schedule: scheduleSchema.optional(),
    heartbeat: heartbeatSchema.optional(),
    alerts: alertRouting('policy').optional(),
    requires: workerLabels
      .default({})
      .describe('Labels a worker must carry to run this policy in cluster mode (backproof worker --label site=berlin), e.g. { site: berlin, kvm: true }. Default none: any worker.'),
  })
  .superRefine((value, ctx) => {
    const kind = value.kind as RestoreKind;
    if (!(KINDS as readonly string[]).includes(kind)) return;
    // Each kind's block has the kind's name.
    for (const block of KINDS) {
      if (block !== kind && (value as Record<string, unknown>)[block] !== undefined) {
        addProblem(ctx, `${block} applies only to kind: ${block}`, `remove it, or set kind: ${block}`, [block]);
      }
    }
    const driver = (value.source as { driver?: unknown } | undefined)?.driver;
    if ((driver === 'pgbackrest' || driver === 'barman') && kind !== 'postgres') {
      addProblem(ctx, `a ${driver === 'barman' ? 'barman server' : 'pgBackRest repository'} holds PostgreSQL clusters, not kind: ${kind} backups`, 'set kind: postgres, or use another source driver', ['source', 'driver']);
    }
    if (driver === 'mariabackup' && kind !== 'mysql') {
      addProblem(ctx, `mariadb-backup folders hold MariaDB data directories, not kind: ${kind} backups`, 'set kind: mysql, or use another source driver', ['source', 'driver']);
    }
    const recovery = (value.postgres as { recovery?: unknown } | undefined)?.recovery;
    if (recovery !== undefined && recovery !== 'latest' && driver !== 'pgbackrest' && driver !== 'barman') {
      addProblem(ctx, 'postgres.recovery applies to physical backups (source driver pgbackrest or barman); a dump restores as it was taken', 'remove postgres.recovery, or use source driver pgbackrest or barman', ['postgres', 'recovery']);
    }
    const mysqlRecovery = (value.mysql as { recovery?: unknown } | undefined)?.recovery;
    if (mysqlRecovery !== undefined && mysqlRecovery !== 'latest' && mysqlRecovery !== 'immediate') {
      if (driver !== 'mariabackup') {
        addProblem(ctx, 'mysql.recovery applies to mariadb-backup backups (source driver mariabackup) with binary logs; a dump restores as it was taken', 'remove mysql.recovery, or use source driver mariabackup with source.binlogs', ['mysql', 'recovery']);
      } else if ((value.source as { binlogs?: unknown } | undefined)?.binlogs === undefined) {
        addProblem(ctx, 'mysql.recovery to a time (or sampled) replays binary logs, and this source ships none', 'set source.binlogs to the folder of the archived binary logs, or remove mysql.recovery', ['mysql', 'recovery']);
      }
    }
    if (kind === 'custom' && value.custom === undefined) {
      addProblem(ctx, 'kind: custom needs a custom block', 'add custom: { image, restore: [command...] } (and ready:, services: as needed)', ['custom']);
    }
    if (kind === 'vm') {
      const guest = value.vm?.memoryBytes ?? DEFAULTS.vm.memoryBytes;
      const limit = value.sandbox?.memoryBytes ?? DEFAULTS.sandboxMemoryBytes;
      if (limit < guest + DEFAULTS.vm.overheadBytes) {
        addProblem(ctx, `sandbox.memory (${sizeText(limit)}) leaves no room for QEMU beside the guest's ${sizeText(guest)}`, `set sandbox.memory to at least ${sizeText(guest + DEFAULTS.vm.overheadBytes)}, or lower vm.memory`, ['sandbox', 'memory']);
      }
    }
    const allowed = PROBES_OF_KIND[kind];
    (Array.isArray(value.probes) ? value.probes : []).forEach((p, i) => {
      if (typeof p !== 'object' || p === null) return;
      const type = (p as { type?: string }).type as ProbeKey | undefined;
      if (type && !allowed.includes(type)) {
        addProblem(ctx, `a ${type} probe does not apply to kind: ${kind}`, `use one of ${allowed.join(', ')} for kind: ${kind}`, ['probes', i]);
      }
    });
    const services = value.custom?.services ?? [];
    (Array.isArray(value.probes) ? value.probes : []).forEach((p, i) => {
      const wanted = (p as { service?: string } | null)?.service;
      if (wanted !== undefined && !services.some((s) => s.name === wanted)) {
        addProblem(ctx, `there is no service "${wanted}"`, services.length ? `use one of ${services.map((s) => s.name).join(', ')}, or remove service to run in the main container` : 'services exist only under kind: custom; remove service', ['probes', i, 'service']);
      }
    });
  }, { when: isRecordPayload })
  .transform(({ schedule, heartbeat, alerts, ...value }): Omit<PolicyDraft, 'client'> => ({
    ...value,
    ...(schedule !== undefined ? { schedule } : {}),
    ...(heartbeat !== undefined ? { heartbeat } : {}),
    ...(alerts !== undefined ? { alerts } : {}),
    postgres: value.postgres ?? kindDefaults().postgres,
    mysql: value.mysql ?? kindDefaults().mysql,
    files: value.files ?? kindDefaults().files,
    sqlite: value.sqlite ?? kindDefaults().sqlite,
    ...(value.kind === 'vm' ? { vm: value.vm ?? kindDefaults().vm } : {}),
  }))
  .describe('What to verify and how.');

/**
 * Each kind's options parsed from nothing, made once and shared by every policy that does not
 * set them (frozen: nothing may change one policy's defaults through another). Parsing them per
 * policy was 40,000 objects for 10,000 policies.
 */
const makeKindDefaults = () =>
  deepFreeze({ postgres: postgres.parse({}), mysql: mysql.parse({}), files: files.parse({}), sqlite: sqlite.parse({}), vm: vmSchema.parse({}) });
let defaultsOfKinds: ReturnType<typeof makeKindDefaults> | undefined;
function kindDefaults(): ReturnType<typeof makeKindDefaults> {
  defaultsOfKinds ??= makeKindDefaults();
  return defaultsOfKinds;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const client = z
  .strictObject({
    name: identifier('client').describe('Client id, unique: lowercase letters, digits, ".", "_", "-".'),
    displayName: nonEmptyText('displayName').optional().describe('Name shown in reports. Default: name.'),
    alerts: alertRouting('client').optional(),
    policies: z
      .array(policy)
      .min(1, { error: say('client has no policies', 'add at least one policy under policies:') })
      .describe('The client\'s policies; at least one.'),
    reports: clientReportsSchema.optional(),
    budget: z
      .strictObject({
        monthly: z.number().min(0).describe('The most the client\'s verification may spend on storage (requests, egress, retrieval) in a UTC month, as estimated from the sources\' prices.'),
        currency: z.string().regex(/^[A-Z]{3}$/, { error: say('is not a currency code', 'write three capital letters, e.g. USD or EUR') }).default('USD').describe('The currency of monthly; only costs in it count. Default USD.'),
      })
      .optional()
      .describe('Storage budget: once the month\'s estimated spend reaches it, no more coverage runs are planned that month (the newest backups are still verified); the monthly report shows spend against it. Optional.'),
  })
  .transform((value): ClientDraft & Pick<ClientConfig, 'reports' | 'budget'> => ({
    name: value.name,
    displayName: value.displayName ?? value.name,
    alerts: value.alerts ?? {},
    policies: value.policies.map((p): PolicyDraft => ({ ...p, client: value.name, ...(value.budget ? { budget: value.budget } : {}) })),
    ...(value.reports !== undefined ? { reports: value.reports } : {}),
    ...(value.budget !== undefined ? { budget: value.budget } : {}),
  }))
  .describe('A client (tenant) and its policies.');

const database = z
  .strictObject({
    url: secret(
      z.string().refine(isPostgresUrl, { error: say('not a postgres:// URL', 'write postgres://user:password@host:5432/dbname, or remove it to use the embedded store') }),
      'url',
    )
      .optional()
      .describe('PostgreSQL URL of the evidence store, e.g. ${env:DATABASE_URL}. Default: DATABASE_URL, else an embedded store.'),
    schema: matching(/^[a-z_][a-z0-9_]{0,62}$/, 'a plain schema name', 'use lowercase letters, digits and "_", starting with a letter or "_"')
      .default(DEFAULTS.schema)
      .describe(`Schema holding backproof's tables. Default "${DEFAULTS.schema}".`),
  })
  .describe('Evidence store. Optional.');

export function isPostgresUrl(url: string): boolean {
  try {
    const parsed = new URL(url);
    return (parsed.protocol === 'postgres:' || parsed.protocol === 'postgresql:') && parsed.host !== '';
  } catch {
    return false;
  }
}

const pem = (what: string, example: string) =>
  matching(/-----BEGIN [A-Z ]+-----/, `a PEM ${what}`, `write the file's contents through a reference: ${example}`);

const docker = z
  .strictObject({
    host: matching(/^(unix|npipe|tcp|http|https|ssh):\/\/./, 'a Docker host address', 'use unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host')
      .optional()
      .describe('Docker daemon address, e.g. unix:///var/run/docker.sock. Default: DOCKER_HOST or the local socket.'),
    tls: z
      .strictObject({
        ca: pem('CA certificate', '${file:docker-tls/ca.pem}').describe('CA that signed the engine\'s certificate: ${file:docker-tls/ca.pem}.'),
        cert: pem('client certificate', '${file:docker-tls/cert.pem}').describe('Client certificate: ${file:docker-tls/cert.pem}.'),
        key: secret(pem('private key', '${file:docker-tls/key.pem}').describe('Client key: ${file:docker-tls/key.pem}; never logged.')),
      })
      .optional()
      .describe('TLS for a tcp:// engine started with dockerd --tlsverify (the files docker calls ca.pem, cert.pem, key.pem).'),
    sshKey: secret(pem('private key', '${file:~/.ssh/id_ed25519}')).optional().describe('Private key for an ssh:// engine; default: the SSH agent (SSH_AUTH_SOCK).'),
  })
  .describe('Docker daemon the sandboxes run on. Optional.');

/** `database:` and `evidence:` alone (loadStoreSettings: what opening the evidence store takes). */
export const storeSettingsSchema = z.object({ database: database.prefault({}), evidence: evidence.optional() });

/** Keys a policy inherits from `defaults:` unless it sets them (objects merge key by key; lists and values are replaced). */
export const DEFAULTABLE_POLICY_KEYS = ['targets', 'sandbox', 'sizeAnomaly', 'coverage', 'alerts', 'requires', 'schedule'] as const;

const policyDefaults = z
  .strictObject({
    targets: targets.optional(),
    sandbox: sandbox.optional(),
    sizeAnomaly: sizeAnomaly.optional(),
    coverage: coverage.optional(),
    alerts: alertRouting('policy').optional(),
    requires: workerLabels.optional().describe('Labels a worker must carry to run a policy in cluster mode, for every policy that sets no requires of its own.'),
    schedule: scheduleSchema.optional(),
  })
  .describe(`What every policy inherits unless it sets it: ${DEFAULTABLE_POLICY_KEYS.join(', ')}. Mappings merge key by key (a policy's sandbox: { memory: 4g } keeps the default timeout); lists and single values are replaced.`);

export const configSchema = z
  .strictObject({
    version: z
      .literal(1, { error: typeError('a supported version', () => 'set version: 1 (the only version for now) or remove it') })
      .optional()
      .describe('Config file format version; 1.'),
    database: database.prefault({}),
    docker: docker.prefault({}),
    evidence: evidence.optional(),
    daemon: daemonSchema.prefault({}),
    alerts: alertsSchema.prefault({}),
    clients: z
      .array(client)
      .min(1, { error: say('no clients', 'add at least one client under clients:, each with name and policies') })
      .describe('The clients (tenants) whose backups are verified; at least one.'),
    reports: reportsSchema.optional(),
    defaults: policyDefaults.optional(),
  })
  .superRefine((value, ctx) => checkChannelNames(value, ctx), { when: isRecordPayload })
  .superRefine((value, ctx) => checkReportsChannel(value, ctx), { when: isRecordPayload })
  .transform((value): ConfigFromSchema => {
    // Policies cannot see daemon: and alerts:; their schedules and alert routing are completed here.
    const clients = value.clients.map((c) => ({ ...resolveClient(c, value.daemon, value.alerts), ...(c.reports !== undefined ? { reports: c.reports } : {}), ...(c.budget !== undefined ? { budget: c.budget } : {}) }));
    return {
      database: value.database.url !== undefined ? { url: value.database.url, schema: value.database.schema } : { schema: value.database.schema },
      docker: {
        ...(value.docker.host !== undefined ? { host: value.docker.host } : {}),
        ...(value.docker.tls !== undefined ? { tls: value.docker.tls } : {}),
        ...(value.docker.sshKey !== undefined ? { sshKey: value.docker.sshKey } : {}),
      },
      ...(value.evidence !== undefined ? { evidence: value.evidence } : {}),
      daemon: value.daemon,
      alerts: value.alerts,
      clients,
      policies: clients.flatMap((c) => c.policies),
      ...(value.reports !== undefined ? { reports: resolveReports(value.reports, value.alerts) } : {}),
    };
  })
  .meta({ title: 'backproof configuration', description: 'backproof.yaml: the clients, policies and probes backproof verifies.' });

let jsonSchemaCache: Record<string, unknown> | undefined;

/** JSON Schema of the file as written (input side), for editors' completion and validation. */
export function configJsonSchema(): Record<string, unknown> {
  jsonSchemaCache ??= z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return structuredClone(jsonSchemaCache);
}
