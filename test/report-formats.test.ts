import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { ReportFormat } from '../orchestrator/core/config-types.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { EvidenceChain } from '../orchestrator/evidence/chain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { csvName, RUN_COLUMNS, runColumns, type RunColumn } from '../reports/monthly/columns.js';
import { buildMonthlyReport, renderMonthlyReport, type MonthlyReport } from '../reports/monthly/index.js';
import type { ReportRun } from '../reports/monthly/model.js';
import { CSV_COLUMNS } from '../reports/monthly/render-csv.js';
import { age, rate, rto, short } from '../reports/monthly/text.js';
import { tempDir } from './helpers/harness.js';
import { MONTH, reportConfigYaml, seedMonth } from './helpers/report-fixtures.js';
import { parseCsv } from './helpers/csv.js';

// Report-format conformance: one model (a month of evidence in a real RunStore on PGlite) in every
// format; each shows the same numbers (the summary's and each policy's run, pass, fail and error
// counts, pass rate, worst RTO and RPO) and has every column of the run table (columns.ts), with
// each run's cells (its verdict and kind among them) the same as the HTML shows them. The formats
// are a Record over ReportFormat: a new format does not compile until it has a reader here.

const run = promisify(execFile);

/** What a reader finds in one rendering, normalised to the words of text.ts. */
interface View {
  /** Ids of the run table's columns the format has. */
  columns: string[];
  /** The cell of `column` for `r`, as the format shows it (a data format's fields put back into a run and shown by the column). */
  cell(r: ReportRun, column: RunColumn): string | undefined;
  /** Per policy: runs, passed, failed, errors, pass rate, worst RTO, worst RPO. */
  policy(name: string): string[] | undefined;
  /** Runs, failed, errors, pass rate. */
  summary: string[];
}

type Reader = (bytes: Buffer, report: MonthlyReport, dir: string) => Promise<View>;

const READERS: Record<ReportFormat, Reader> = {
  html: async (bytes) => {
    const page = bytes.toString('utf8');
    const text = collapse(unescape(page.replace(/<[^>]+>/g, ' ')));
    const columns = new Set<string>();
    const rows = new Map<string, Map<string, string>>();
    // The run tables: those whose header starts with the first column's.
    for (const table of page.matchAll(/<thead><tr>(<th>Started<\/th>(?:<th[^>]*>[^<]*<\/th>)+)<\/tr><\/thead>\n<tbody>\n([\s\S]*?)\n<\/tbody>/g)) {
      const ids = [...table[1]!.matchAll(/<th[^>]*>([^<]*)<\/th>/g)].map((m) => RUN_COLUMNS.find((c) => c.header === unescape(m[1]!))?.id ?? `unknown: ${m[1]}`);
      if (ids.some((id) => id.startsWith('unknown'))) continue; // the appendix's table of hashes
      ids.forEach((id) => columns.add(id));
      for (const tr of table[2]!.split('\n')) {
        const cells = [...tr.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => unescape(m[1]!.replace(/<[^>]+>/g, '')));
        const row = new Map(ids.map((id, i) => [id, cells[i]!]));
        rows.set(row.get('run')!, row);
      }
    }
    return { columns: [...columns], cell: (r, c) => rows.get(short(r.runId))?.get(c.id), policy: (name) => policyFigures(text, name), summary: htmlSummary(text) };
  },
  pdf: async (bytes, report, dir) => {
    const file = path.join(dir, 'report.pdf');
    await fs.writeFile(file, bytes);
    const layout = (await run('pdftotext', ['-layout', file, '-'])).stdout;
    const plain = collapse((await run('pdftotext', [file, '-'])).stdout);
    const lines = layout.split('\n');
    const headers = lines.filter((l) => /^\s*Started\s+Kind\s/.test(l)).map(collapse);
    const columns = RUN_COLUMNS.filter((c) => headers.some((h) => ` ${h} `.includes(` ${c.header} `))).map((c) => c.id);
    // A run's row: the line with its short id (the appendix has whole ids) and the lines it wraps onto.
    const block = (r: ReportRun): string | undefined => {
      const at = lines.findIndex((l) => new RegExp(`(^|\\s)${short(r.runId)}(\\s|$)`).test(l));
      if (at < 0) return undefined;
      const end = lines.findIndex((l, i) => i > at && (/^\s*\d{4}-\d\d-\d\d /.test(l) || l.trim() === ''));
      return collapse(lines.slice(at, end < 0 ? undefined : end).join(' '));
    };
    return {
      columns,
      cell: (r, c) => {
        const rowText = block(r);
        if (rowText === undefined) return undefined;
        const first = collapse(lines.find((l) => new RegExp(`(^|\\s)${short(r.runId)}(\\s|$)`).test(l))!);
        const expected = c.text(r, report);
        // Kind and verdict sit whole on the row's first line; a long cell (backup key, reasons)
        // wraps within its column, so its pieces are looked for in the row's lines.
        if (c.id === 'kind' || c.id === 'verdict') return ` ${first} `.includes(` ${expected} `) ? expected : first;
        const shown = expected.length > 240 ? expected.slice(0, 237) : expected;
        return pieces(shown).every((p) => rowText.includes(p)) ? expected : rowText;
      },
      policy: (name) => policyFigures(plain, name),
      summary: pdfSummary(plain),
    };
  },
  csv: async (bytes, report) => {
    const [header, ...rows] = parseCsv(bytes.toString('utf8'));
    const runs = new Map(rows.filter((r) => r[0] === 'run').map((r) => [r[header!.indexOf('run_id')]!, Object.fromEntries(header!.map((h, i) => [h, r[i]!]))]));
    const policies = new Map(rows.filter((r) => r[0] === 'policy').map((r) => [r[header!.indexOf('policy')]!, Object.fromEntries(header!.map((h, i) => [h, r[i]!]))]));
    const summary = Object.fromEntries(header!.map((h, i) => [h, rows.find((r) => r[0] === 'summary')![i]!]));
    const num = (v: string | undefined): number | null => (v === undefined || v === '' ? null : Number(v));
    const csvFigures = (row: Record<string, string>): string[] => [row.runs!, row.passed!, row.failed!, row.errored!, rate(num(row.pass_rate_percent)), rto(num(row.rto_worst_ms)), age(num(row.rpo_worst_ms))];
    return {
      columns: RUN_COLUMNS.filter((c) => c.fields.every((f) => header!.includes(csvName(f)))).map((c) => c.id),
      cell: (r, c) => {
        const row = runs.get(r.runId);
        if (!row) return undefined;
        // Only the column's own fields, back from the CSV: the column shows them as the HTML does.
        const back = Object.fromEntries(c.fields.map((f) => [f, fromCsv(f, row[csvName(f)])])) as unknown as ReportRun;
        return c.text(back, report);
      },
      policy: (name) => (policies.has(name) ? csvFigures(policies.get(name)!) : undefined),
      summary: [summary.runs!, summary.failed!, summary.errored!, rate(num(summary.pass_rate_percent))],
    };
  },
  json: async (bytes, report) => {
    const json = JSON.parse(bytes.toString('utf8')) as MonthlyReport;
    const runs = new Map(json.runs.map((r) => [r.runId, r]));
    return {
      columns: RUN_COLUMNS.filter((c) => json.runs.every((r) => c.fields.every((f) => f in r))).map((c) => c.id),
      cell: (r, c) => {
        const found = runs.get(r.runId);
        return found && c.text(found, report);
      },
      policy: (name) => {
        const p = json.policies.find((x) => x.policy === name);
        return p && [String(p.runs), String(p.passed), String(p.failed), String(p.errored), rate(p.passRatePercent), rto(p.rto.worstMs), age(p.rpo.worstMs)];
      },
      summary: [String(json.summary.runs), String(json.summary.failed), String(json.summary.errored), rate(json.summary.passRatePercent)],
    };
  },
};

t.test('every format: the same numbers and every column of the run table', async (t) => {
  const dir = await tempDir('report-formats');
  const store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: 'backproof' });
  t.teardown(() => store.close());
  const alerts = new AlertStore(store.executor, store.schema);
  await seedMonth(store, alerts);
  const config = parseConfigText(reportConfigYaml(), path.join(dir, 'backproof.yaml'), {});
  const report = await buildMonthlyReport({ runs: store, alerts, chain: new EvidenceChain(store.executor, store.schema), config }, { client: 'acme', month: MONTH, now: new Date('2026-12-02T06:00:00Z') });
  t.ok(report.runs.length > 50 && report.runs.some((r) => r.verdict === 'fail') && report.runs.some((r) => r.verdict === 'error'), 'a month with passes, failures and errors');
  const withBoot = report.policies.some((p) => p.boot !== null);
  const expectedColumns = runColumns(withBoot).map((c) => c.id);
  t.ok(expectedColumns.includes('kind') && expectedColumns.includes('verdict'), 'the run table has kind and verdict');
  t.ok(RUN_COLUMNS.every((c) => c.fields.every((f) => (CSV_COLUMNS as readonly string[]).includes(csvName(f)))), "the CSV's header has every field of every column");

  for (const format of Object.keys(READERS) as ReportFormat[]) {
    t.test(format, async (t) => {
      const view = await READERS[format](await renderMonthlyReport(report, format), report, dir);
      t.strictSame(
        expectedColumns.filter((id) => !view.columns.includes(id)),
        [],
        `${format} has every column of the run table`,
      );
      const s = report.summary;
      t.strictSame(view.summary, [String(s.runs), String(s.failed), String(s.errored), rate(s.passRatePercent)], 'summary: runs, failed, errors, pass rate');
      for (const p of report.policies) {
        t.strictSame(view.policy(p.policy), [String(p.runs), String(p.passed), String(p.failed), String(p.errored), rate(p.passRatePercent), rto(p.rto.worstMs), age(p.rpo.worstMs)], `policy ${p.policy}: counts, pass rate, worst RTO and RPO`);
      }
      const wrong: string[] = [];
      for (const r of report.runs) {
        for (const c of runColumns(withBoot)) {
          const expected = c.text(r, report);
          const shown = view.cell(r, c);
          if (shown !== expected) wrong.push(`run ${short(r.runId)} ${c.id}: ${JSON.stringify(shown)} (expected ${JSON.stringify(expected)})`);
        }
      }
      t.strictSame(wrong, [], `every run's every cell (${report.runs.length} runs x ${runColumns(withBoot).length} columns)`);
    });
  }
});

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function unescape(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&middot;/g, '·').replace(/&amp;/g, '&');
}

/** A cell's text in the pieces a narrow column may wrap it at (spaces, after "-" and "/"). */
function pieces(text: string): string[] {
  return text.split(/\s+|(?<=[-/])/).filter(Boolean);
}

/** From a policy's section: `N runs: P passed, F failed, E errors; pass rate R.` and its RTO and RPO. */
function policyFigures(text: string, name: string): string[] | undefined {
  const at = text.indexOf(`Policy ${name} `);
  if (at < 0) return undefined;
  const m = /(\d+) runs: (\d+) passed, (\d+) failed, (\d+) errors; pass rate (-|[\d.]+%)\..*?RTO: (?:worst (\S+?),|[^:]*?not measured).*?RPO: (?:worst (\S+?),|[^:]*?not measured)/.exec(text.slice(at));
  return m ? [m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6] ?? '-', m[7] ?? '-'] : undefined;
}

function htmlSummary(text: string): string[] {
  return [/(\d+) Verification runs/.exec(text)?.[1] ?? '?', ...(/(\d+) \/ (\d+) Failed \/ errors/.exec(text)?.slice(1, 3) ?? ['?', '?']), /(-|[\d.]+%) Pass rate/.exec(text)?.[1] ?? '?'];
}

function pdfSummary(text: string): string[] {
  // The tiles: their values, then their labels.
  const m = /Summary \d+ of \d+ (\d+) (-|[\d.]+%) (\d+) ?\/ ?(\d+) Policies tested/.exec(text);
  return m ? [m[1]!, m[3]!, m[4]!, m[2]!] : ['?', '?', '?', '?'];
}

/** A CSV cell back into the model's value of `field`. */
function fromCsv(field: keyof ReportRun, cell: string | undefined): unknown {
  if (cell === undefined || cell === '') return field === 'reasons' ? [] : null;
  if (field === 'reasons') return cell.split(/; (?=[a-z_]+: )/).map((x) => ({ code: x.slice(0, x.indexOf(': ')), message: x.slice(x.indexOf(': ') + 2) }));
  if (cell === 'true' || cell === 'false') return cell === 'true';
  return /^-?\d+(\.\d+)?$/.test(cell) ? Number(cell) : cell;
}
