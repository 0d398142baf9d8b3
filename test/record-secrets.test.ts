import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import t from 'tap';
import { startEchoingStore } from './helpers/echoing-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import { cleanRecord, bounded } from '../orchestrator/runner/record-hygiene.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { openEmbeddedStore, policyFromYaml, tempDir } from './helpers/harness.js';

// A storage server that answers errors with the request's headers (some S3-compatible gateways
// and proxies do) hands backproof its own secrets back: the session token, the access key id in
// the Authorization header, the SSE-C key. None of it may enter the run's record, which is sealed
// into the evidence chain and copied into bundles, reports, alerts and daemon-status.json.

const CANARY = {
  accessKeyId: 'AKIACANARY7Q2W9E4R6T',
  secretAccessKey: 'canary-secret-5b8f0e2a9d7c41f6a3e1',
  sessionToken: 'CANARYSESSIONTOKEN+3f9a/IQoJb3JpZ2luX2VjE0canary==',
  sseCustomerKey: randomBytes(32).toString('base64'),
};

function leaks(text: string): string[] {
  const forms = Object.values(CANARY).flatMap((v) => [v, encodeURIComponent(v)]);
  return forms.filter((f) => text.includes(f));
}

for (const status of [403, 500]) {
  t.test(`a store answering ${status} with the request's headers: no secret in the record`, async (t) => {
    const store = await startEchoingStore(status);
    t.teardown(store.close);
    const folder = await tempDir('echo');
    const policy = policyFromYaml({
      folder,
      env: { K: CANARY.accessKeyId, S: CANARY.secretAccessKey, T: CANARY.sessionToken, SSE: CANARY.sseCustomerKey },
      source: `          driver: s3
          bucket: acme
          endpoint: ${store.endpoint}
          credentials: { accessKeyId: "\${env:K}", secretAccessKey: "\${env:S}", sessionToken: "\${env:T}" }
          sseCustomerKey: "\${env:SSE}"
          maxRetries: 1
          select: { glob: "*.dump", timestamp: mtime, settle: 0s }`,
    });
    const { store: evidence, dataDir } = await openEmbeddedStore();
    t.teardown(async () => {
      await evidence.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    });
    const logged: string[] = [];
    const logger = new Logger({ level: 'debug', json: true, write: (l) => logged.push(l) });
    const run = await runPolicy(policy, { store: evidence, runtime: new DockerRuntime(), driverFor, restorerFor, logger });
    t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
    t.match(run.reasons[0]?.code, /^source_(denied|unreachable)$/);
    t.match(run.reasons[0]?.message, /s3:\/\/acme\/shop\.dump at .*request was: .*x-amz-server-side-encryption-customer-key: \*\*\*.*x-amz-security-token: \*\*\*.*Credential=\*\*\*\//, 'the reason still says where and what, without the secrets');
    t.same(leaks(JSON.stringify(run)), [], 'the returned record');
    const stored = await evidence.get(run.id);
    t.same(leaks(JSON.stringify(stored)), [], 'the sealed record');
    t.same(leaks(logged.join('\n')), [], 'the log');
    const bundle = await evidence.evidenceChain().exportBundle({ client: 'acme', from: '2000-01-01', to: '2100-01-01' });
    t.same(leaks(JSON.stringify(bundle)), [], 'the evidence bundle');
  });
}

t.test('config secrets anywhere in a record become ***; reasons and log tails are bounded', async (t) => {
  const dir = await tempDir('hygiene');
  const config = parseConfigText(
    `clients:
  - name: acme
    policies:
      - name: shop
        kind: postgres
        source: { driver: local, path: ${JSON.stringify(dir)} }
        alerts: { channels: [hook] }
alerts:
  channels:
    - { name: hook, type: webhook, url: "https://hooks.example/\${env:HOOK}", headers: { Authorization: "Bearer \${env:BEARER}" } }
`,
    `${dir}/backproof.yaml`,
    { HOOK: 'hook-canary-9f3e2d1c0b', BEARER: 'bearer-canary-77aa55cc' },
  );
  const logger = new Logger({ json: true, secrets: config.secrets, write: () => undefined });
  const run = {
    reasons: [
      { code: 'restore_failed', message: `psql: ERROR near "Bearer bearer-canary-77aa55cc" and ${Buffer.from('hook-canary-9f3e2d1c0b').toString('base64')}` },
      { code: 'restore_failed', message: 'x'.repeat(50_000) },
    ],
    sandbox: { runtime: 'docker', image: 'i', logTail: `start\n${'y'.repeat(100_000)}\nend: hook-canary-9f3e2d1c0b` },
    backup: { provider: { nested: ['bearer-canary-77aa55cc'] } },
  } as unknown as RunRecord;
  cleanRecord(run, config.policies[0]!, (s) => logger.redact(s));
  const text = JSON.stringify(run);
  t.notMatch(text, /canary/, 'every form, every field');
  t.match(run.reasons[0]?.message, /near "\*\*\*" and \*\*\*$/);
  t.ok(run.reasons[1]!.message.length < 2_100, 'a reason is bounded');
  t.ok(run.sandbox!.logTail!.length < 8_100, 'the log tail is bounded');
  t.match(run.sandbox!.logTail, /^start\n/, 'keeps how it began');
  t.match(run.sandbox!.logTail, /end: \*\*\*$/, 'and how it ended');
  t.equal(bounded('short', 10), 'short');
});
