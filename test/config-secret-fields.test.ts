import { generateKeyPairSync } from 'node:crypto';
import t from 'tap';
import { z } from 'zod';
import { parseConfigText } from '../orchestrator/config/load.js';
import { ConfigError } from '../orchestrator/core/errors.js';
import { configSchema } from '../orchestrator/config/schema.js';
import { policySecrets } from '../orchestrator/config/secret-fields.js';
import { fieldsOf, secret, secretsIn } from '../orchestrator/config/secret-schema.js';

// Secret fields are declared by the schema that defines them (orchestrator/config/secret-schema.ts);
// the redactor learns every declared field's value, written in the file or through a reference.

const FILE = '/etc/backproof/backproof.yaml';

/**
 * Keys that look like credentials but are not, each with the reason. Every other credential-looking
 * key of the config must be declared secret: a plug-in's new `token` or `password` is caught here.
 */
const NOT_SECRET: Record<string, string> = {
  'clients[].policies[].source.select.timestamp.key': 'the name of the metadata entry that holds the backup time, not a credential',
};
const CREDENTIAL_LIKE = /(password|passphrase|secret|token|credential|apikey|api_key|private|key)$/i;

t.test('every credential-looking key of the config is declared secret, or listed as not secret with its reason', async (t) => {
  const fields = fieldsOf(configSchema);
  t.ok(fields.length > 200, `the walk sees the whole schema (${fields.length} keys)`);
  const suspicious = fields.filter((f) => CREDENTIAL_LIKE.test(f.path.split('.').pop()!));
  t.ok(suspicious.length >= 8, 'the pattern finds the known credentials');
  for (const f of suspicious) {
    if (f.path in NOT_SECRET) t.notOk(f.secret, `${f.path}: ${NOT_SECRET[f.path]}`);
    else t.ok(f.secret, `${f.path} is declared secret`);
  }
  const declared = fields.filter((f) => f.secret).map((f) => f.path);
  for (const p of [
    'database.url',
    'docker.tls.key',
    'docker.sshKey',
    'evidence.signingKey',
    'alerts.channels[].password',
    'alerts.channels[].url',
    'alerts.channels[].headers',
    'clients[].policies[].source.credentials.accessKeyId',
    'clients[].policies[].source.credentials.secretAccessKey',
    'clients[].policies[].source.credentials.sessionToken',
    'clients[].policies[].source.sseCustomerKey',
    'clients[].policies[].source.password',
    'clients[].policies[].heartbeat.url',
    'clients[].policies[].heartbeat.failUrl',
  ]) {
    t.ok(declared.includes(p), `${p} is declared secret`);
  }
});

const SSE = 'k'.repeat(43) + '=';
const SIGNING = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const SSH = '-----BEGIN OPENSSH PRIVATE KEY-----\nssh-key-body-written-inline\n-----END OPENSSH PRIVATE KEY-----\n';
const TLS_KEY = '-----BEGIN PRIVATE KEY-----\ntls-key-body-written-inline\n-----END PRIVATE KEY-----\n';

/** Every declared secret written in the file itself, none through a reference. */
function inlineConfig(extraPolicy = ''): string {
  const indent = (pem: string, n: number): string => pem.trimEnd().split('\n').join(`\n${' '.repeat(n)}`);
  return `version: 1
database:
  url: postgres://app:db-inline-pw@db.internal:5432/evidence
docker:
  host: tcp://engine:2376
  tls:
    ca: |
      -----BEGIN CERTIFICATE-----
      not-secret-ca
      -----END CERTIFICATE-----
    cert: |
      -----BEGIN CERTIFICATE-----
      not-secret-cert
      -----END CERTIFICATE-----
    key: |
      ${indent(TLS_KEY, 6)}
evidence:
  signingKey: |
    ${indent(SIGNING, 4)}
alerts:
  channels:
    - name: mail
      type: email
      host: smtp.example.com
      user: alerts
      password: smtp-inline-pw
      from: alerts@example.com
    - name: hook
      type: webhook
      url: https://hooks.example.com/services/T000/B000/hook-token-inline-0123456789
      headers: { Authorization: "Bearer header-token-inline" }
clients:
  - name: acme
    policies:
      - name: acme-s3
        kind: postgres
        source:
          driver: s3
          bucket: acme-backups
          credentials: { accessKeyId: AKIAINLINEKEYID, secretAccessKey: s3-secret-inline, sessionToken: s3-session-inline }
          sseCustomerKey: "${SSE}"
        heartbeat: https://hc-ping.example.com/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9
      - name: acme-restic
        kind: files
        source: { driver: restic, repository: /srv/restic, password: restic-inline-pw, file: /var/backups/share.tar }
${extraPolicy}`;
}

const INLINE = [
  'db-inline-pw',
  'postgres://app:db-inline-pw@db.internal:5432/evidence',
  TLS_KEY,
  SIGNING,
  'smtp-inline-pw',
  'hook-token-inline-0123456789',
  'Bearer header-token-inline',
  'header-token-inline',
  'AKIAINLINEKEYID',
  's3-secret-inline',
  's3-session-inline',
  SSE,
  'restic-inline-pw',
  '0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9',
];

t.test('secrets written in the file are known to the redactor, as references are', async (t) => {
  const config = parseConfigText(inlineConfig(), FILE, {});
  for (const s of INLINE) t.ok(config.secrets.includes(s.trimEnd()) || config.secrets.includes(s), `secret: ${s.slice(0, 40).replace(/\n/g, '\\n')}`);
  for (const notSecret of ['acme-backups', 'smtp.example.com', 'alerts@example.com', 'not-secret-ca', '/srv/restic']) {
    t.notOk(config.secrets.some((s) => s === notSecret), `not a secret: ${notSecret}`);
  }
  // An SSH key is collected too (an ssh:// engine and TLS exclude each other in one file).
  const ssh = parseConfigText(
    `docker:\n  host: ssh://root@engine\n  sshKey: |\n    ${SSH.trimEnd().split('\n').join('\n    ')}\nclients:\n  - name: a\n    policies:\n      - name: a-db\n        kind: postgres\n        source: { driver: local, path: /srv }\n`,
    FILE,
    {},
  );
  t.ok(ssh.secrets.some((s) => s.includes('ssh-key-body-written-inline')), 'docker.sshKey');
});

t.test('a source secret the run records are cleaned of is one the config declares (policySecrets cannot drift from the schema)', async (t) => {
  const config = parseConfigText(inlineConfig(), FILE, {});
  for (const policy of config.policies) {
    for (const s of policySecrets(policy)) t.ok(config.secrets.includes(s), `${policy.name}: ${s} is declared in the schema`);
  }
  t.strictSame(policySecrets(config.policies.find((p) => p.name === 'acme-restic')!), ['restic-inline-pw']);
});

t.test('with problems elsewhere in the file, the declared secrets are still known and never shown', async (t) => {
  const bad = inlineConfig(`      - name: acme-broken\n        kind: postgres\n        source: { driver: s3, bucket: "Not A Bucket", credentials: { accessKeyId: AKIABROKENKEY, secretAccessKey: broken-secret-inline } }\n        targets: { rpo: soon }\n`);
  try {
    parseConfigText(bad, FILE, {});
    t.fail('the file has problems');
  } catch (err) {
    t.ok(err instanceof ConfigError, 'a ConfigError');
    const text = (err as Error).message;
    for (const s of ['broken-secret-inline', 's3-secret-inline', 'restic-inline-pw', 'smtp-inline-pw']) t.notOk(text.includes(s), `${s} is not in the problems`);
  }
  // The walk itself never throws on data of the wrong shape.
  t.strictSame(secretsIn(configSchema, { clients: 'nope', alerts: { channels: [null, 3, { password: 7 }] } }), []);
  t.strictSame(secretsIn(configSchema, null), []);
});

t.test('the walk skips only what cannot hold a secret: a field declared later, a recursive schema, a union', async (t) => {
  // secretsIn remembers per schema whether a secret lies below it; a field declared secret after
  // a walk (as a late plug-in would) is found by the next walk.
  const token = z.string();
  const later = z.strictObject({ name: z.string(), token: token.optional() });
  t.strictSame(secretsIn(later, { name: 'a', token: 'not-yet-secret' }), [], 'nothing declared yet');
  secret(token);
  t.strictSame(secretsIn(later, { name: 'a', token: 'now-a-secret-value' }), ['now-a-secret-value'], 'declared later: found');

  // A recursive schema: a secret at any depth.
  interface Node {
    password?: string;
    children?: Node[];
  }
  const node: z.ZodType<Node> = z.lazy(() => z.strictObject({ password: secret(z.string()).optional(), children: z.array(node).optional() }));
  t.strictSame(secretsIn(node, { children: [{ children: [{ password: 'deep-down-secret' }] }] }), ['deep-down-secret']);

  // One alternative of a union holds a secret, the other none.
  const either = z.union([z.strictObject({ kind: z.literal('plain'), note: z.string() }), z.strictObject({ kind: z.literal('keyed'), key: secret(z.string()) })]);
  t.strictSame(secretsIn(z.array(either), [{ kind: 'plain', note: 'hello' }, { kind: 'keyed', key: 'union-branch-secret' }]), ['union-branch-secret']);
});
