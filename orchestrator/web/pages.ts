import { bootOutcome } from '../../reports/boot-text.js';
import type { RunRecord } from '../core/domain.js';
import { formatAge, formatSeconds } from '../core/format.js';
import { canSee } from './auth.js';
import { clusterStatus } from '../cluster/cluster-status.js';
import { bootBadge } from './boot-section.js';
import { clusterSection } from './cluster-section.js';
import { notFound, type RequestContext } from './context.js';
import { ago, badge, enc, esc, page, restoreChart, sparkline, when, type ChartPoint } from './html.js';
import { BAD_HEALTH, boardOrder, policyViews, type PolicyView } from './policy-view.js';
import { REPORT_FORMATS, reportMonths } from './reports.js';
import { describeScope } from './token-store.js';
import { lastBoots, monthsWithRuns, restoreSeries, type LastBoot } from './web-queries.js';

/** The dashboard's pages other than a run's detail (run-page.ts) and the login (login-page.ts). */

const SERIES_RUNS = 20;
const SERIES_DAYS = 90;
const POLICY_PAGE_RUNS = 50;
const REPORT_MONTHS_BACK = 13;

export function who(ctx: RequestContext): { name: string; scope: string } {
  return { name: ctx.principal.tokenName, scope: describeScope(ctx.principal.scope) };
}

const HEALTH_LABEL: Record<PolicyView['health'], string> = {
  ok: 'ok',
  fail: 'fail',
  error: 'error',
  stale: 'stale',
  alert: 'alert',
  running: 'running',
  never: 'no runs',
};

/**
 * Above this many policies on the board (all clients), the healthy ones are folded into one line
 * per client that links to that client's board; every policy that needs attention, runs or has
 * not run yet keeps its row. An MSP's board of 1,000 policies is read for what is wrong; in full
 * it was a 2.2 MB page that took ~0.6 s to build on the embedded store (bench/evidence-scale.ts).
 */
export const BOARD_ROWS_IN_FULL = 200;

/** GET /: every visible policy, problems first; healthy ones folded per client on a large board. */
export async function boardPage(ctx: RequestContext): Promise<string> {
  const { deps, url } = ctx;
  const now = deps.now();
  const { views } = await policyViews(deps, ctx.principal);
  const clients = [...new Set(views.map((v) => v.client))].sort();
  const only = url.searchParams.get('client');
  const shown = (only && clients.includes(only) ? views.filter((v) => v.client === only) : views).sort(boardOrder);
  const fold = !(only && clients.includes(only)) && shown.length > BOARD_ROWS_IN_FULL;
  const inFull = fold ? shown.filter((v) => v.health !== 'ok') : shown;
  const since = new Date(now.getTime() - SERIES_DAYS * 86_400_000).toISOString();
  const [series, boots] = await Promise.all([
    restoreSeries(deps.runs, { since, perPolicy: SERIES_RUNS, policies: inFull.map((v) => v.policy) }),
    lastBoots(deps.runs, inFull.filter((v) => v.kind === 'vm').map((v) => v.policy)),
  ]);

  const bad = shown.filter((v) => BAD_HEALTH.includes(v.health)).length;
  const ok = shown.filter((v) => v.health === 'ok').length;
  const alerts = shown.reduce((n, v) => n + v.openConditions.length, 0);
  const tiles = `<div class="summary">
<div class="tile"><span class="muted small">Policies</span><b>${shown.length}</b></div>
<div class="tile good"><span class="muted small">OK</span><b>${ok}</b></div>
<div class="tile${bad ? ' bad' : ''}"><span class="muted small">Need attention</span><b>${bad}</b></div>
<div class="tile"><span class="muted small">Not run yet</span><b>${shown.length - ok - bad}</b></div>
<div class="tile${alerts ? ' bad' : ''}"><span class="muted small">Open alerts</span><b>${alerts}</b></div></div>`;
  const filter =
    clients.length > 1
      ? `<form class="filters" method="get" action="/"><label>Client<select name="client"><option value="">all clients</option>${clients
          .map((c) => `<option value="${esc(c)}"${c === only ? ' selected' : ''}>${esc(c)}</option>`)
          .join('')}</select></label><button type="submit">Show</button></form>`
      : '';
  const withClient = clients.length > 1;
  const rows = [
    ...inFull.map((v) => boardRow(v, series.get(v.policy) ?? [], boots.get(v.policy), now, withClient)),
    ...(fold ? foldedRows(shown.filter((v) => v.health === 'ok'), withClient) : []),
  ].join('\n');
  const folded = fold ? shown.length - inFull.length : 0;
  const body = `<h1>Board</h1>${tiles}${filter}
<table class="board"><thead><tr><th>Status</th><th>Policy</th>${withClient ? '<th>Client</th>' : ''}<th>Last run</th><th>Last success</th><th>Newest backup / RPO</th><th>Restore time (last ${SERIES_RUNS} runs)</th><th>Next run</th><th>Open alerts</th></tr></thead>
<tbody>${rows || '<tr><td colspan="9" class="muted">No policies.</td></tr>'}</tbody></table>
<p class="muted small">Generated ${when(now.toISOString())}. Red: the last run failed or errored, the newest backup is older than the RPO, or an alert is open.${
    folded ? ` With more than ${BOARD_ROWS_IN_FULL} policies, the ${folded} healthy ones are folded into a line per client: choose a client to see them.` : ''
  }</p>`;
  // Cluster mode: the workers are the operator's business, shown to admin tokens only.
  const cluster = ctx.principal.scope.kind === 'admin' && deps.runs.kind === 'postgres' ? await clusterStatus(deps.runs.executor, deps.runs.schema, deps.config()) : undefined;
  return page({ title: 'Board', who: who(ctx), nav: 'board', body: cluster ? body + clusterSection(cluster, now) : body });
}

/** One line per client for its healthy policies, linking to that client's board. */
function foldedRows(healthy: PolicyView[], withClient: boolean): string[] {
  const byClient = new Map<string, PolicyView[]>();
  for (const v of healthy) byClient.set(v.client, [...(byClient.get(v.client) ?? []), v]);
  return [...byClient].map(
    ([client, list]) => `<tr class="good folded" data-client="${esc(client)}" data-folded="${list.length}">
<td>${badge('ok', HEALTH_LABEL.ok)}</td>
<td colspan="${withClient ? 8 : 7}"><a href="/?client=${enc(client)}">${list.length} ${list.length === 1 ? 'policy' : 'policies'} of ${esc(client)}</a> <span class="muted small">(${esc(list[0]!.displayName)}): last run passed, backup within the RPO, no alert open</span></td></tr>`,
  );
}

function boardRow(v: PolicyView, points: ChartPoint[], boot: LastBoot | undefined, now: Date, withClient: boolean): string {
  const cls = BAD_HEALTH.includes(v.health) ? 'bad' : v.health === 'ok' ? 'good' : '';
  const last = v.lastRun
    ? `<a class="last-run" href="/runs/${enc(v.lastRun.id)}">${esc(v.lastRun.status === 'finished' ? (v.lastRun.verdict ?? '?') : v.lastRun.status)} ${ago(v.lastRun.startedAt, now)}</a>${
        v.lastRun.reasons.length ? `<div class="small muted">${esc(v.lastRun.reasons.slice(0, 3).join(', '))}</div>` : ''
      }`
    : '<span class="muted">never</span>';
  const backup = v.newestBackup
    ? `${esc(formatAge(v.newestBackup.ageMs))} old${v.rpoMs !== undefined ? ` / ${esc(formatAge(v.rpoMs))} ${v.rpoMet ? '<span class="small">ok</span>' : '<b class="err">STALE</b>'}` : ''}`
    : v.storageCheckError
      ? `<span class="err" title="${esc(v.storageCheckError)}">unknown (storage check failed)</span>`
      : '<span class="muted">unknown</span>';
  const lastRto = [...points].reverse().find((p) => p.value !== null)?.value;
  const chart = sparkline(points, {
    label: `restore times of the last ${points.length} runs of ${v.policy}${v.rtoMs !== undefined ? `, target ${formatSeconds(v.rtoMs)}` : ''}`,
    ...(v.rtoMs !== undefined ? { targetMs: v.rtoMs } : {}),
  });
  return `<tr class="${cls}" data-policy="${esc(v.policy)}" data-health="${esc(v.health)}">
<td>${badge(v.health, HEALTH_LABEL[v.health])}${v.running && v.health !== 'running' ? ` ${badge('running')}` : ''}</td>
<td><a href="/policies/${enc(v.policy)}">${esc(v.policy)}</a><div class="small muted">${esc(v.kind)}</div></td>
${withClient ? `<td title="${esc(v.displayName)}">${esc(v.client)}</td>` : ''}
<td>${last}</td>
<td>${ago(v.lastSuccessAt, now)}</td>
<td>${backup}</td>
<td>${chart} ${lastRto !== undefined && lastRto !== null ? `<span class="small">${esc(formatSeconds(lastRto))}</span>` : ''}${boot ? `<div class="small boot" data-boot="${esc(boot.verdict)}">last boot: ${esc(bootOutcome(boot.verdict, boot.bootMs))}</div>` : ''}</td>
<td>${v.nextRunAt ? when(v.nextRunAt) : `<span class="muted">${v.schedule ? '-' : 'not scheduled'}</span>`}</td>
<td>${v.openConditions.length ? `<span class="err">${esc(v.openConditions.join(', '))}</span>` : '<span class="muted">-</span>'}</td></tr>`;
}

/** GET /policies/:name: one policy's state, restore-time chart and recent runs. */
export async function policyPage(ctx: RequestContext): Promise<string> {
  const { deps } = ctx;
  const name = ctx.params[0]!;
  const now = deps.now();
  const { views, report } = await policyViews(deps, ctx.principal);
  const v = views.find((x) => x.policy === name);
  if (!v) throw notFound('no such policy');
  const [runs, series, boots] = await Promise.all([
    deps.runs.list({ policy: name, client: v.client, limit: POLICY_PAGE_RUNS }),
    restoreSeries(deps.runs, { since: new Date(0).toISOString(), perPolicy: POLICY_PAGE_RUNS, policies: [name] }),
    lastBoots(deps.runs, [name]),
  ]);
  const boot = boots.get(name);
  const incidents = report.openIncidents.filter((i) => i.policy === name);
  const facts: [string, string][] = [
    ['Client', `${esc(v.client)} <span class="muted">(${esc(v.displayName)})</span>`],
    ['Kind', esc(v.kind)],
    ['Schedule', v.schedule ? esc(v.schedule) : '<span class="muted">not scheduled</span>'],
    ['Next run', v.nextRunAt ? when(v.nextRunAt) : '<span class="muted">-</span>'],
    ['Last success', ago(v.lastSuccessAt, now)],
    ['Newest backup', v.newestBackup ? `${esc(v.newestBackup.key ?? '')} <span class="muted">taken ${when(v.newestBackup.takenAt)}, ${esc(formatAge(v.newestBackup.ageMs))} old (from ${esc(v.newestBackup.from)})</span>` : '<span class="muted">unknown</span>'],
    ['RPO target', v.rpoMs !== undefined ? `${esc(formatAge(v.rpoMs))} ${v.rpoMet === false ? '<b class="err">missed</b>' : v.rpoMet ? 'met' : ''}` : '<span class="muted">none</span>'],
    ['RTO target', v.rtoMs !== undefined ? esc(formatSeconds(v.rtoMs)) : '<span class="muted">none</span>'],
  ];
  if (boot) {
    facts.push(['Last boot', `${bootBadge(boot.verdict)} <a href="/runs/${enc(boot.runId)}#boot">${esc(bootOutcome(boot.verdict, boot.bootMs))}</a> <span class="muted">${ago(boot.startedAt, now)}</span>`]);
  }
  const alertList = incidents.length
    ? `<ul class="reasons">${incidents.map((i) => `<li><code>${esc(i.condition)}${i.key ? ` (${esc(i.key)})` : ''}</code> since ${when(i.openedAt)}: ${esc(i.summary)}</li>`).join('')}</ul>`
    : '<p class="muted">None.</p>';
  const body = `<h1>${esc(v.policy)} ${badge(v.health, HEALTH_LABEL[v.health])}</h1>
<div class="grid2"><section><dl class="facts">${facts.map(([k, val]) => `<dt>${k}</dt><dd>${val}</dd>`).join('')}</dl>
<h2>Open alerts</h2>${alertList}</section>
<section><h2>Restore time</h2>${restoreChart(series.get(name) ?? [], { formatMs: formatSeconds, ...(v.rtoMs !== undefined ? { targetMs: v.rtoMs } : {}) })}</section></div>
<h2>Recent runs</h2>${runsTable(runs, now, false)}
<p><a href="/runs?policy=${enc(name)}">All runs of ${esc(name)}</a> · <a href="/reports#client-${esc(v.client)}">Reports of ${esc(v.client)}</a></p>`;
  return page({ title: v.policy, who: who(ctx), nav: 'board', body });
}

/** GET /runs: recent runs, filtered by client and policy. */
export async function runsPage(ctx: RequestContext): Promise<string> {
  const { deps, url, principal } = ctx;
  const now = deps.now();
  const client = url.searchParams.get('client') || undefined;
  const policy = url.searchParams.get('policy') || undefined;
  const limit = Math.min(500, Math.max(1, Number.parseInt(url.searchParams.get('limit') ?? '', 10) || 100));
  const own = principal.scope.kind === 'client' ? principal.scope.client : undefined;
  const runs = own && client && client !== own ? [] : await deps.runs.list({ client: own ?? client, policy, limit });
  const clients = deps.config().clients.filter((c) => canSee(principal, c.name)).map((c) => c.name);
  const policies = deps.config().policies.filter((p) => canSee(principal, p.client)).map((p) => p.name);
  const opt = (values: string[], current: string | undefined, all: string): string =>
    `<option value="">${all}</option>${values.map((x) => `<option value="${esc(x)}"${x === current ? ' selected' : ''}>${esc(x)}</option>`).join('')}`;
  const body = `<h1>Runs</h1>
<form class="filters" method="get" action="/runs">
${clients.length > 1 ? `<label>Client<select name="client">${opt(clients, client, 'all clients')}</select></label>` : ''}
<label>Policy<select name="policy">${opt(policies, policy, 'all policies')}</select></label>
<label>Show<input name="limit" type="number" min="1" max="500" value="${limit}"></label><button type="submit">Filter</button></form>
${runsTable(runs, now)}`;
  return page({ title: 'Runs', who: who(ctx), nav: 'runs', body });
}

export function runsTable(runs: RunRecord[], now: Date, withPolicy = true): string {
  if (runs.length === 0) return '<p class="muted">No runs.</p>';
  const rows = runs.map((r) => {
    const verdict = r.verdict ?? r.status;
    const rto = r.metrics.rtoMeasuredMs;
    return `<tr class="${r.verdict === 'pass' ? 'good' : r.verdict ? 'bad' : ''}"><td><a href="/runs/${enc(r.id)}">${when(r.startedAt)}</a><div class="small muted">${ago(r.startedAt, now)}</div></td>
${withPolicy ? `<td><a href="/policies/${enc(r.policy)}">${esc(r.policy)}</a></td><td>${esc(r.client)}</td>` : ''}<td>${badge(verdict)}</td>
<td class="num">${r.durationMs !== null ? esc(formatSeconds(r.durationMs)) : '-'}</td><td class="num">${rto !== undefined ? esc(formatSeconds(rto)) : '-'}${
      r.boot ? `<div class="small boot" data-boot="${esc(r.boot.verdict)}">${esc(bootOutcome(r.boot.verdict, r.boot.bootMs))}</div>` : ''
    }</td>
<td class="small">${esc(r.backup?.key ?? '-')}</td><td class="small">${esc(r.reasons.map((x) => x.code).join(', '))}</td></tr>`;
  });
  return `<table><thead><tr><th>Started</th>${withPolicy ? '<th>Policy</th><th>Client</th>' : ''}<th>Verdict</th><th class="num">Took</th><th class="num">${runs.some((r) => r.boot) ? 'Restore / boot' : 'Restore'}</th><th>Backup</th><th>Reasons</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

/** GET /reports: per visible client, the months with runs, each downloadable in every format. */
export async function reportsPage(ctx: RequestContext): Promise<string> {
  const { deps, principal } = ctx;
  const now = deps.now();
  const clients = deps.config().clients.filter((c) => canSee(principal, c.name));
  const since = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - REPORT_MONTHS_BACK + 1, 1)).toISOString();
  const timezone = deps.config().reports?.timezone ?? 'UTC';
  const months = await monthsWithRuns(deps.runs, since, timezone);
  const rows = clients.map((c) => {
    const list = reportMonths(months.get(c.name) ?? [], now, timezone);
    const cells = list
      .map(
        (m) =>
          `<span class="month" data-month="${esc(m)}"><b>${esc(m)}</b> ${REPORT_FORMATS.map(
            (f) => `<a href="/api/reports/${enc(c.name)}/${enc(m)}.${f}" download data-format="${f}">${f.toUpperCase()}</a>`,
          ).join(' ')}</span>`,
      )
      .join('');
    return `<tr id="client-${esc(c.name)}" data-client="${esc(c.name)}"><td>${esc(c.displayName)}<div class="small muted">${esc(c.name)}</div></td><td class="downloads">${cells}</td></tr>`;
  });
  const body = `<h1>Monthly reports</h1><p class="muted">Restore-test evidence per client and month (${esc(timezone)}): runs, pass rate, measured RTO and RPO against targets, failures and the evidence appendix. Newest month first.</p>
${rows.length ? `<table class="reports"><thead><tr><th>Client</th><th>Months</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>` : '<p class="muted">No clients.</p>'}`;
  return page({ title: 'Reports', who: who(ctx), nav: 'reports', body });
}
