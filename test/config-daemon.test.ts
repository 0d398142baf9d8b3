import path from 'node:path';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import { configJsonSchema } from '../orchestrator/config/schema.js';
import type { ClientConfig, PolicyConfig, ResolvedConfig } from '../orchestrator/core/config-types.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import { formatConfigProblem } from '../orchestrator/core/errors.js';
import { problemAt, problemsOf } from './helpers/config-problems.js';

// daemon:, alerts:, and each client's and policy's alerts, schedule and heartbeat, as users write them.

const FILE = '/etc/backproof/backproof.yaml';
const ALL_CONDITIONS = ['fail', 'error', 'recovery', 'stale', 'missing', 'size_anomaly', 'rto_exceeded', 'overdue', 'delivery_failed', 'no_worker', 'coverage'];

function parse(text: string, env: NodeJS.ProcessEnv = {}): ResolvedConfig {
  return parseConfigText(text, FILE, env);
}

/** `top` (top-level keys) and one client with one policy; `client` and `policy` lines are added to each. */
function config(o: { top?: string; client?: string; policy?: string } = {}): string {
  return `${o.top ?? ''}
clients:
  - name: acme
${o.client ?? ''}
    policies:
      - name: acme-db
        kind: postgres
        source: { driver: local, path: ./backups }
${o.policy ?? ''}
`;
}

const TWO_CHANNELS = `alerts:
  channels:
    - name: ops-mail
      type: email
      host: smtp.example.com
      from: alerts@example.com
    - name: ops-slack
      type: webhook
      url: https://hooks.example.com/x`;

t.test('without daemon: and alerts: everything has its default', async (t) => {
  const c = parse(config());
  t.strictSame(c.daemon, {
    concurrency: DEFAULTS.daemon.concurrency,
    perClient: DEFAULTS.daemon.perClient,
    catchUp: true,
    shutdownGraceMs: DEFAULTS.daemon.shutdownGraceMs,
    checkEveryMs: DEFAULTS.daemon.checkEveryMs,
    timezone: 'UTC',
    overdueGraceMs: DEFAULTS.daemon.overdueGraceMs,
    liveness: { host: '127.0.0.1' },
  });
  t.strictSame(c.alerts, { channels: [], reminderAfterMs: DEFAULTS.alert.reminderAfterMs, maxAttempts: DEFAULTS.alert.maxAttempts, retryForMs: DEFAULTS.alert.retryForMs });
  t.strictSame(c.clients[0]!.alerts, {});
  const policy = c.policies[0]!;
  t.strictSame(policy.alerts, { channels: [], to: [], reminderAfterMs: DEFAULTS.alert.reminderAfterMs });
  t.notOk('schedule' in policy, 'no schedule');
  t.notOk('heartbeat' in policy, 'no heartbeat');
  t.strictSame(c.secrets, []);

  const empty = parse(config({ top: 'daemon: {}\nalerts: {}' }));
  t.strictSame(empty.daemon, c.daemon, 'empty blocks are the defaults too');
  t.strictSame(empty.alerts, c.alerts);
});

t.test('the full example resolves as written: daemon, channels, routing policy > client > default, schedules, heartbeats', async (t) => {
  const text = `
daemon:
  concurrency: 4
  perClient: 2
  catchUp: false
  shutdownGrace: 5m
  checkEvery: 1m
  timezone: Europe/Berlin
  overdueGrace: 2h
  liveness: { file: ./state/backproof-live.json, port: 9464, host: 0.0.0.0 }
alerts:
  reminderAfter: 48h
  maxAttempts: 3
  retryFor: 6h
  channels:
    - name: ops-mail
      type: email
      host: smtp.example.com
      port: 2525
      startTls: opportunistic
      tlsRejectUnauthorized: false
      user: alerts@example.com
      password: \${env:SMTP_PASSWORD}
      from: "backproof <alerts@example.com>"
      to: [ops@example.com]
      cc: [boss@example.com]
      conditions: [fail, error, recovery]
    - name: ops-smtps
      type: email
      host: smtp.example.com
      secure: true
      from: alerts@example.com
    - name: ops-slack
      type: webhook
      url: \${env:SLACK_WEBHOOK_URL}
      preset: slack
      headers: { Authorization: "Bearer \${env:HOOK_TOKEN}", X-Api-Key: literal-api-key-123 }
      timeout: 5s
clients:
  - name: acme
    alerts: { channels: [ops-mail], to: [it@acme.example], reminderAfter: 12h }
    policies:
      - name: acme-db
        kind: postgres
        source: { driver: local, path: ./backups }
        schedule: "daily at 02:30"
        heartbeat: https://hc-ping.com/0b3c2f4e-1234-4a5b-9c8d-0123456789ab
        alerts: { channels: [ops-slack], to: [dba@acme.example, it@acme.example], reminderAfter: 1h }
      - name: acme-files
        kind: files
        source: { driver: local, path: ./files }
        schedule: { when: "0 2 * * *", timezone: America/New_York, jitter: 5m, grace: 3h }
        heartbeat: { url: "https://hc.example.com/ping/\${env:HC_KEY}", failUrl: "https://hc.example.com/ping/\${env:HC_KEY}/failed", timeout: 3s }
        alerts: { to: [files@acme.example] }
  - name: globex
    policies:
      - name: globex-db
        kind: postgres
        source: { driver: local, path: ./globex }
        schedule: every 15m
`;
  const env = {
    SMTP_PASSWORD: 'smtp-pass-from-env',
    SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T0000/B0000/slacktokenslacktoken1234',
    HOOK_TOKEN: 'hook-token-abc',
    HC_KEY: 'hc-ping-key-0123456789abcdef',
  };
  const c = parse(text, env);
  t.strictSame(c.daemon, {
    concurrency: 4,
    perClient: 2,
    catchUp: false,
    shutdownGraceMs: 5 * 60_000,
    checkEveryMs: 60_000,
    timezone: 'Europe/Berlin',
    overdueGraceMs: 2 * 3_600_000,
    liveness: { file: path.resolve('/etc/backproof/state/backproof-live.json'), port: 9464, host: '0.0.0.0' },
  });
  t.strictSame(c.alerts, {
    reminderAfterMs: 48 * 3_600_000,
    maxAttempts: 3,
    retryForMs: 6 * 3_600_000,
    channels: [
      {
        name: 'ops-mail',
        type: 'email',
        host: 'smtp.example.com',
        port: 2525,
        secure: false,
        startTls: 'opportunistic',
        tlsRejectUnauthorized: false,
        auth: { user: 'alerts@example.com', pass: 'smtp-pass-from-env' },
        from: 'backproof <alerts@example.com>',
        to: ['ops@example.com'],
        cc: ['boss@example.com'],
        conditions: ['fail', 'error', 'recovery'],
      },
      {
        name: 'ops-smtps',
        type: 'email',
        host: 'smtp.example.com',
        port: 465,
        secure: true,
        startTls: 'never',
        tlsRejectUnauthorized: true,
        from: 'alerts@example.com',
        to: [],
        cc: [],
        conditions: ALL_CONDITIONS,
      },
      {
        name: 'ops-slack',
        type: 'webhook',
        url: env.SLACK_WEBHOOK_URL,
        preset: 'slack',
        headers: { Authorization: 'Bearer hook-token-abc', 'X-Api-Key': 'literal-api-key-123' },
        timeoutMs: 5000,
        conditions: ALL_CONDITIONS,
      },
    ],
  });

  const [acme, globex] = c.clients as [ClientConfig, ClientConfig];
  t.strictSame(acme.alerts, { channels: ['ops-mail'], to: ['it@acme.example'], reminderAfterMs: 12 * 3_600_000 }, 'the client\'s routing as written');
  t.strictSame(globex.alerts, {});

  const [db, files, globexDb] = c.policies as [PolicyConfig, PolicyConfig, PolicyConfig];
  t.strictSame(db.alerts, { channels: ['ops-slack'], to: ['it@acme.example', 'dba@acme.example'], reminderAfterMs: 3_600_000 }, 'the policy over the client; to: both, once each');
  t.strictSame(files.alerts, { channels: ['ops-mail'], to: ['it@acme.example', 'files@acme.example'], reminderAfterMs: 12 * 3_600_000 }, 'the client over alerts:');
  t.strictSame(globexDb.alerts, { channels: ['ops-mail', 'ops-smtps', 'ops-slack'], to: [], reminderAfterMs: 48 * 3_600_000 }, 'alerts: defaults: all channels');

  t.strictSame(db.schedule, { text: 'daily at 02:30', cron: '30 2 * * *', timezone: 'Europe/Berlin', jitterMs: 0, graceMs: 2 * 3_600_000 }, 'zone and grace from daemon:');
  t.strictSame(files.schedule, { text: '0 2 * * *', cron: '0 2 * * *', timezone: 'America/New_York', jitterMs: 5 * 60_000, graceMs: 3 * 3_600_000 });
  t.strictSame(globexDb.schedule, { text: 'every 15m', cron: '*/15 * * * *', timezone: 'Europe/Berlin', jitterMs: 0, graceMs: 2 * 3_600_000 });
  t.notOk('heartbeat' in globexDb);

  t.strictSame(db.heartbeat, {
    url: 'https://hc-ping.com/0b3c2f4e-1234-4a5b-9c8d-0123456789ab',
    failUrl: 'https://hc-ping.com/0b3c2f4e-1234-4a5b-9c8d-0123456789ab/fail',
    timeoutMs: DEFAULTS.alert.heartbeatTimeoutMs,
  });
  t.strictSame(files.heartbeat, { url: `https://hc.example.com/ping/${env.HC_KEY}`, failUrl: `https://hc.example.com/ping/${env.HC_KEY}/failed`, timeoutMs: 3000 });

  // Secrets: from references and written literally alike.
  for (const secret of [
    'smtp-pass-from-env',
    env.SLACK_WEBHOOK_URL,
    'slacktokenslacktoken1234',
    'Bearer hook-token-abc',
    'literal-api-key-123',
    'https://hc-ping.com/0b3c2f4e-1234-4a5b-9c8d-0123456789ab',
    '0b3c2f4e-1234-4a5b-9c8d-0123456789ab',
    'https://hc-ping.com/0b3c2f4e-1234-4a5b-9c8d-0123456789ab/fail',
    env.HC_KEY,
  ]) {
    t.ok(c.secrets.includes(secret), `secret: ${secret}`);
  }
});

t.test('literal secrets: an SMTP password, a token in a webhook URL, a header value, a heartbeat URL', async (t) => {
  const c = parse(
    config({
      top: `alerts:
  channels:
    - name: mail
      type: email
      host: smtp.example.com
      user: u
      password: literal-smtp-password
      from: a@example.com
    - name: hook
      type: webhook
      url: https://hooks.example.com/notify?token=literal-query-token
      headers: { X-Token: literal-header-value }`,
      policy: '        heartbeat: https://hc-ping.com/literal-ping-key-abcdefgh',
    }),
  );
  for (const secret of ['literal-smtp-password', 'literal-query-token', 'literal-header-value', 'https://hc-ping.com/literal-ping-key-abcdefgh', 'literal-ping-key-abcdefgh']) {
    t.ok(c.secrets.includes(secret), `secret: ${secret}`);
  }
});

t.test('secrets never show in problems, even when the file has problems elsewhere', async (t) => {
  const problems = problemsOf(
    config({
      top: `alerts:
  channels:
    - name: hook
      type: webhook
      url: ftp://hooks.example.com/literal-token-0123456789abcdef`,
      policy: '        heartbeat: { url: "hc-ping.com/literal-ping-key-abcdefgh" }\n        probes: [ { bogus: 1 } ]',
    }),
  );
  const url = problemAt(problems, 'alerts.channels[0].url');
  t.match(url, { problem: '"***" is not an http(s) URL', fix: /full URL/ });
  t.match(problemAt(problems, 'clients[0].policies[0].heartbeat.url'), { problem: '"***" is not an http(s) URL', fix: /hc-ping\.com\/<uuid>/ });
  const all = problems.map(formatConfigProblem).join('\n');
  t.notMatch(all, /literal-token|literal-ping-key/);
});

t.test('an unknown channel name is a problem where it is used; the fix names the defined channels', async (t) => {
  const problems = problemsOf(config({ top: TWO_CHANNELS, client: '    alerts: { channels: [ops-mail, pager] }', policy: '        alerts: { channels: [ops-slak] }' }));
  t.match(problemAt(problems, 'clients[0].policies[0].alerts.channels[0]'), {
    problem: 'there is no alert channel "ops-slak"',
    fix: 'use one of ops-mail, ops-slack, or define it under alerts.channels',
    line: 17,
  });
  t.match(problemAt(problems, 'clients[0].alerts.channels[1]'), { problem: 'there is no alert channel "pager"' });
  t.equal(problems.length, 2);

  const none = problemsOf(config({ policy: '        alerts: { channels: [ops] }' }));
  t.match(problemAt(none, 'clients[0].policies[0].alerts.channels[0]'), { problem: 'there is no alert channel "ops"', fix: /define it under alerts.channels/ });

  // Reported along with problems elsewhere in the file.
  const more = problemsOf(config({ top: TWO_CHANNELS, policy: '        alerts: { channels: [ops-slak] }\n        sandbox: { memory: lots }' }));
  problemAt(more, 'clients[0].policies[0].alerts.channels[0]');
  problemAt(more, 'clients[0].policies[0].sandbox.memory');
});

t.test('duplicate channel names', async (t) => {
  const problems = problemsOf(config({ top: `${TWO_CHANNELS}\n    - name: ops-mail\n      type: webhook\n      url: https://hooks.example.com/y` }));
  t.match(problemAt(problems, 'alerts.channels[2].name'), { problem: 'channel name "ops-mail" is already used by alerts.channels[0]', fix: 'give each channel a unique name' });
});

t.test('a bad schedule is reported at the policy\'s schedule key with the fix', async (t) => {
  const bad = (schedule: string) => problemAt(problemsOf(config({ policy: `        schedule: ${schedule}` })), 'clients[0].policies[0].schedule');
  t.match(bad('"daily at 25:00"'), { problem: '"daily at 25:00": 25:00 is not a time of day', fix: /24-hour/, line: 9 });
  t.match(bad('every 7m'), { problem: /7 minutes do not divide the hour evenly/, fix: /"\*\/7 \* \* \* \*"/ });
  t.match(bad('"0 2 * *"'), { problem: /has 4 fields, not 5 or 6/, fix: /five fields/ });
  t.match(bad('"monthly on 31"'), { fix: /1 to 28/ });
  t.match(bad('5'), { problem: '5 is not a schedule', fix: /cron expression.*daily at 02:30.*\{ when:/ });

  const when = problemAt(problemsOf(config({ policy: '        schedule: { when: "twice a day" }' })), 'clients[0].policies[0].schedule.when');
  t.match(when, { problem: '"twice a day" is not a schedule', fix: /cron expression/ });
  const jitter = problemAt(problemsOf(config({ policy: '        schedule: { when: every 5m, jitter: 10m }' })), 'clients[0].policies[0].schedule.jitter');
  t.match(jitter, { problem: 'jitter 10m is not shorter than the 5m between runs' });
  const unknown = problemAt(problemsOf(config({ policy: '        schedule: { when: daily, zone: UTC }' })), 'clients[0].policies[0].schedule.zone');
  t.match(unknown, { problem: 'unknown key "zone"', fix: /timezone/ });
});

t.test('invalid time zones, in daemon: and in a schedule', async (t) => {
  const problems = problemsOf(config({ top: 'daemon:\n  timezone: Europe/Berlín', policy: '        schedule: { when: daily, timezone: Mars/Olympus }' }));
  t.match(problemAt(problems, 'daemon.timezone'), { problem: '"Europe/Berlín" is not an IANA time zone', fix: /Europe\/Berlin/ });
  t.match(problemAt(problems, 'clients[0].policies[0].schedule.timezone'), { problem: '"Mars/Olympus" is not an IANA time zone' });
});

t.test('email channels: user and password together, TLS settings that fit, addresses', async (t) => {
  const mail = (lines: string) => `alerts:\n  channels:\n    - name: mail\n      type: email\n      host: smtp.example.com\n${lines}`;
  const noPassword = problemsOf(config({ top: mail('      from: a@example.com\n      user: alerts@example.com') }));
  t.match(problemAt(noPassword, 'alerts.channels[0].user'), { problem: 'user is set but password is not', fix: /add password: \$\{env:SMTP_PASSWORD\}.*or remove user/ });
  const noUser = problemsOf(config({ top: mail('      from: a@example.com\n      password: pw-123456') }));
  t.match(problemAt(noUser, 'alerts.channels[0].password'), { problem: 'password is set but user is not' });
  const tls = problemsOf(config({ top: mail('      from: a@example.com\n      secure: true\n      startTls: required') }));
  t.match(problemAt(tls, 'alerts.channels[0].startTls'), { problem: 'startTls applies only without secure: true' });

  const addresses = problemsOf(config({ top: mail('      from: "Ops <ops.example.com>"\n      to: [ops@example.com, nobody]\n      cc: [x y@example.com]') }));
  t.match(problemAt(addresses, 'alerts.channels[0].from'), { problem: /is not a sender address/, fix: /backproof <alerts@example.com>/ });
  t.match(problemAt(addresses, 'alerts.channels[0].to[1]'), { problem: '"nobody" is not an email address' });
  problemAt(addresses, 'alerts.channels[0].cc[0]');
  const routed = problemsOf(config({ top: mail('      from: a@example.com'), policy: '        alerts: { to: [dba] }' }));
  problemAt(routed, 'clients[0].policies[0].alerts.to[0]');

  const missing = problemsOf(config({ top: 'alerts:\n  channels:\n    - name: mail\n      type: email\n      host: h' }));
  t.match(problemAt(missing, 'alerts.channels[0].from'), { problem: 'missing required key "from"' });
  const type = problemsOf(config({ top: 'alerts:\n  channels:\n    - name: pager\n      type: pagerduty' }));
  t.match(problemAt(type, 'alerts.channels[0].type'), { problem: 'unknown or missing channel type', fix: /email.*webhook/ });
  const conditions = problemsOf(config({ top: mail('      from: a@example.com\n      conditions: [fail, explode]') }));
  t.match(problemAt(conditions, 'alerts.channels[0].conditions[1]'), { problem: '"explode" is not an alert condition', fix: /fail, error, recovery/ });
});

t.test('daemon: limits', async (t) => {
  const problems = problemsOf(config({ top: 'daemon:\n  concurrency: 0\n  checkEvery: 100ms\n  liveness: { port: 70000 }\n  catchup: true' }));
  t.match(problemAt(problems, 'daemon.concurrency'), { problem: '0 is too small', fix: 'use a number of at least 1' });
  t.match(problemAt(problems, 'daemon.checkEvery'), { problem: '100ms is too short', fix: /at least 1s/ });
  t.match(problemAt(problems, 'daemon.liveness.port'), { problem: '70000 is too large' });
  t.match(problemAt(problems, 'daemon.catchup'), { problem: 'unknown key "catchup"', fix: 'did you mean "catchUp"?' });
  const zero = parse(config({ top: 'daemon:\n  liveness: { port: 0 }\nalerts:\n  reminderAfter: 0s' }));
  t.strictSame(zero.daemon.liveness, { port: 0, host: '127.0.0.1' });
  t.equal(zero.alerts.reminderAfterMs, 0, '"0s": never remind');
  t.equal(zero.policies[0]!.alerts.reminderAfterMs, 0);
});

t.test('heartbeats and webhooks take http(s) URLs only', async (t) => {
  const hb = problemsOf(config({ policy: '        heartbeat: 42' }));
  t.match(problemAt(hb, 'clients[0].policies[0].heartbeat'), { problem: '42 is not a heartbeat', fix: /ping URL/ });
  const slash = parse(config({ policy: '        heartbeat: https://hc.example.com/ping/abc/' }));
  t.equal(slash.policies[0]!.heartbeat!.failUrl, 'https://hc.example.com/ping/abc/fail', 'no double slash');
  const query = parse(config({ policy: '        heartbeat: https://hc.example.com/ping/abc?create=1' }));
  t.equal(query.policies[0]!.heartbeat!.failUrl, 'https://hc.example.com/ping/abc/fail?create=1', '/fail goes before the query');
});

t.test('the JSON schema still generates, and describes the new keys', async (t) => {
  type Node = { description?: string; properties?: Record<string, Node>; items?: Node; anyOf?: Node[]; oneOf?: Node[] };
  const schema = configJsonSchema() as Node;
  t.strictSame(Object.keys(schema.properties!), ['version', 'database', 'docker', 'evidence', 'daemon', 'alerts', 'clients', 'reports', 'defaults']);
  t.match(schema.properties!.daemon!.properties!.checkEvery!.description, /at least 1s/);
  const channels = schema.properties!.alerts!.properties!.channels!.items!;
  const branches = channels.oneOf ?? channels.anyOf ?? [];
  t.equal(branches.length, 2, 'email and webhook');
  const client = schema.properties!.clients!.items!.properties!;
  t.ok(client.alerts!.description);
  const policy = client.policies!.items!.properties!;
  for (const key of ['schedule', 'heartbeat', 'alerts']) t.ok(policy[key]?.description, `policy ${key} is described`);

  // Every key of the new blocks has a description.
  const undescribed: string[] = [];
  const walk = (node: Node | undefined, at: string) => {
    if (!node) return;
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      if (!child.description) undescribed.push(`${at}.${key}`);
      walk(child, `${at}.${key}`);
    }
    for (const b of [...(node.anyOf ?? []), ...(node.oneOf ?? [])]) walk(b, at);
    walk(node.items, `${at}[]`);
  };
  walk(schema.properties!.daemon, 'daemon');
  walk(schema.properties!.alerts, 'alerts');
  walk(client.alerts, 'client.alerts');
  for (const key of ['schedule', 'heartbeat', 'alerts']) walk(policy[key], `policy.${key}`);
  t.strictSame(undescribed, []);
});
