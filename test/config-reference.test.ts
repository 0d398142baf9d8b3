import { readFileSync } from 'node:fs';
import t from 'tap';
import { configSchema } from '../orchestrator/config/schema.js';
import { fieldsOf } from '../orchestrator/config/secret-schema.js';
import { RESTORE_KINDS } from '../orchestrator/core/config-types.js';
import { configReference, REFERENCE_COMMAND, REFERENCE_FILE } from '../scripts/gen-config-reference.js';

// docs/config-reference.md is generated from the config schema; a schema change that was not
// regenerated fails here, naming the command that brings the page up to date.

t.test(`${REFERENCE_FILE} is the reference the schema generates`, async (tt) => {
  const want = configReference();
  const have = readFileSync(new URL(`../${REFERENCE_FILE}`, import.meta.url), 'utf8');
  if (have === want) {
    tt.pass(`${REFERENCE_FILE} matches the schema`);
    return;
  }
  const a = have.split('\n');
  const b = want.split('\n');
  const line = a.findIndex((text, i) => text !== b[i]);
  const at = line === -1 ? Math.min(a.length, b.length) : line;
  tt.fail(`${REFERENCE_FILE} differs from the config schema (first at line ${at + 1}); run: ${REFERENCE_COMMAND}`, {
    found: a[at] ?? '(end of file)',
    wanted: b[at] ?? '(end of file)',
  });
});

t.test('the reference lists every kind, every driver and every declared secret', async (tt) => {
  const text = configReference();
  for (const kind of RESTORE_KINDS) tt.match(text, `| \`clients[].policies[].${kind}\` |`, `kind ${kind} has its block`);
  for (const driver of ['local', 's3', 'restic', 'borg']) tt.match(text, `(driver: ${driver})`, `driver ${driver} has its keys`);
  const secrets = fieldsOf(configSchema).filter((f) => f.secret);
  tt.ok(secrets.length >= 10, `${secrets.length} secret fields declared`);
  const lines = text.split('\n');
  /** A block listed once in full: elsewhere its row says "Same keys as `P`" and its keys are P's. */
  const listedAs = (path: string): string => {
    for (let cut = path.lastIndexOf('.'); cut > 0; cut = path.lastIndexOf('.', cut - 1)) {
      const block = lines.find((l) => l.startsWith(`| \`${path.slice(0, cut)}\``));
      const same = block && /Same keys as `([^`]+)`/.exec(block);
      if (same) return `${same[1]}${path.slice(cut)}`;
    }
    return path;
  };
  for (const { path: declared } of secrets) {
    const path = listedAs(declared);
    const rows = lines.filter((l) => l.startsWith(`| \`${path}\``));
    tt.ok(rows.length > 0, `${declared} has a row${path === declared ? '' : ` (as ${path})`}`);
    for (const row of rows) tt.match(row, /\| yes[^|]* \|[^|]*\|$/, `${path} is marked secret`);
  }
});
