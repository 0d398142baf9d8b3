import { bootOutcome } from '../../reports/boot-text.js';
import type { RunRecord } from '../core/domain.js';
import { formatAge, formatSeconds } from '../core/format.js';
import { canSee } from './auth.js';
import { clusterStatus } from '../cluster/cluster-status.js';
import { bootBadge } from './boot-section.js';
import { clusterSection } from './cluster-section.js';
import { notFound, type RequestContext } from './context.js';
import { html, joinHtml, type SafeHtml } from '../core/html.js';
import { ago, badge, enc, page, restoreChart, sparkline, when, type ChartPoint } from './html.js';
import { BAD_HEALTH, boardOrder, policyViews, type PolicyView } from './policy-view.js';
import { REPORT_FORMATS, reportMonths } from './reports.js';
import { describeScope } from './token-store.js';
import { coverageFact, coverageFigure, coverageRunsTable, WHY_TEXT } from './coverage-view.js';
import { coveragePlans, lastBoots, monthsWithRuns, recentCoverageRuns, restoreSeries, type CoveragePlanView, type LastBoot } from './web-queries.js';

/** The dashboard's pages other than a run's detail (run-page.ts) and the login (login-page.ts). */

const SERIES_RUNS = 20;
const SERIES_DAYS = 90;
const POLICY_PAGE_RUNS = 50;
const POLICY_PAGE_COVERAGE_RUNS = 20;
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
export async function boardPage(ctx: RequestContext): Promise<SafeHtml> {
  const { deps, url } = ctx;
  const now = deps.now();
  const { views } = await policyViews(deps, ctx.principal);
  const clients = [...new Set(views.map((v) => v.client))].sort();
  const only = url.searchParams.get('client');
  const shown = (only && clients.includes(only) ? views.filter((v) => v.client === only) : views).sort(boardOrder);
  const fold = !(only && clients.includes(only)) && shown.length > deps.boardRowsInFull;
  const inFull = fold ? shown.filter((v) => v.health !== 'ok') : shown;
  const since = new Date(now.getTime() - SERIES_DAYS * 86_400_000).toISOString();
  const withCoverage = new Set(deps.config().policies.filter((p) => p.coverage).map((p) => p.name));
  const [series, boots, plans] = await Promise.all([
    restoreSeries(deps.runs, { since, perPolicy: SERIES_RUNS, policies: inFull.map((v) => v.policy) }),
    lastBoots(deps.runs, inFull.filter((v) => v.kind === 'vm').map((v) => v.policy)),
    // One query for every shown policy with `coverage:` (their newest plan each).
    coveragePlans(deps.runs, inFull.filter((v) => withCoverage.has(v.policy)).map((v) => v.policy)),
  ]);

  const bad = shown.filter((v) => BAD_HEALTH.includes(v.health)).length;
  const ok = shown.filter((v) => v.health === 'ok').length;
  const alerts = shown.reduce((n, v) => n + v.openConditions.length, 0);
  const tiles = html`<div class="summary">
<div class="tile"><span class="muted small">Policies</span><b>${shown.length}</b></div>
<div class="tile good"><span class="muted small">OK</span><b>${ok}</b></div>
<div class="tile${bad > 0 && ' bad'}"><span class="muted small">Need attention</span><b>${bad}</b></div>
<div class="tile"><span class="muted small">Not run yet</span><b>${shown.length - ok - bad}</b></div>
<div class="tile${alerts > 0 && ' bad'}"><span class="muted small">Open alerts</span><b>${alerts}</b></div></div>`;
  const filter =
    clients.length > 1 &&
    html`<form class="filters" method="get" action="/"><label>Client<select name="client"><option value="">all clients</option>${clients.map(
      (c) => html`<option value="${c}"${c === only && html` selected`}>${c}</option>`,
    )}</select></label><button type="submit">Show</button></form>`;
  const withClient = clients.length > 1;
  const rows = [
    ...inFull.map((v) => boardRow(v, series.get(v.policy) ?? [], boots.get(v.policy), plans.get(v.policy), now, withClient)),
    ...(fold ? foldedRows(shown.filter((v) => v.health === 'ok'), withClient) : []),
  ];
  const folded = fold ? shown.length - inFull.length : 0;
  const body = html`<h1>Board</h1>${tiles}${filter}
<table class="board"><thead><tr><th>Status</th><th>Policy</th>${withClient && html`<th>Client</th>`}<th>Last run</th><th>Last success</th><th>Newest backup / RPO</th><th>Restore time (last ${SERIES_RUNS} runs)</th><th>Next run</th><th>Open alerts</th></tr></thead>
<tbody>${rows.length > 0 ? joinHtml(rows, '\n') : html`<tr><td colspan="9" class="muted">No policies.</td></tr>`}</tbody></table>
<p class="muted small">Generated ${when(now.toISOString())}. Red: the last run failed or errored, the newest backup is older than the RPO, or an alert is open.${
    folded > 0 && ` With more than ${deps.boardRowsInFull} policies, the ${folded} healthy ones are folded into a line per client: choose a client to see them.`
  }</p>`;
  // Cluster mode: the workers are the operator's business, shown to admin tokens only.
  const cluster = ctx.principal.scope.kind === 'admin' && deps.runs.kind === 'postgres' ? await clusterStatus(deps.runs.executor, deps.runs.schema, deps.config()) : undefined;
  return page({ title: 'Board', who: who(ctx), nav: 'board', body: html`${body}${cluster && clusterSection(cluster, now)}` });
}

/** One line per client for its healthy policies, linking to that client's board. */
function foldedRows(healthy: PolicyView[], withClient: boolean): SafeHtml[] {
  const byClient = new Map<string, PolicyView[]>();
  for (const v of healthy) byClient.set(v.client, [...(byClient.get(v.client) ?? []), v]);
  return [...byClient].map(
    ([client, list]) => html`<tr class="good folded" data-client="${client}" data-folded="${list.length}">
<td>${badge('ok', HEALTH_LABEL.ok)}</td>
<td colspan="${withClient ? 8 : 7}"><a href="/?client=${enc(client)}">${list.length} ${list.length === 1 ? 'policy' : 'policies'} of ${client}</a> <span class="muted small">(${list[0]!.displayName}): last run passed, backup within the RPO, no alert open</span></td></tr>`,
  );
}

function boardRow(v: PolicyView, points: ChartPoint[], boot: LastBoot | undefined, coverage: CoveragePlanView | undefined, now: Date, withClient: boolean): SafeHtml {
  const cls = BAD_HEALTH.includes(v.health) ? 'bad' : v.health === 'ok' ? 'good' : '';
  const last = v.lastRun
    ? html`<a class="last-run" href="/runs/${enc(v.lastRun.id)}">${v.lastRun.status === 'finished' ? (v.lastRun.verdict ?? '?') : v.lastRun.status} ${ago(v.lastRun.startedAt, now)}</a>${
        v.lastRun.reasons.length > 0 && html`<div class="small muted">${v.lastRun.reasons.slice(0, 3).join(', ')}</div>`
      }`
    : html`<span class="muted">never</span>`;
  const backup = v.newestBackup
    ? html`${formatAge(v.newestBackup.ageMs)} old${v.rpoMs !== undefined && html` / ${formatAge(v.rpoMs)} ${v.rpoMet ? html`<span class="small">ok</span>` : html`<b class="err">STALE</b>`}`}`
    : v.storageCheckError
      ? html`<span class="err" title="${v.storageCheckError}">unknown (storage check failed)</span>`
      : html`<span class="muted">unknown</span>`;
  const lastRto = [...points].reverse().find((p) => p.value !== null)?.value;
  const chart = sparkline(points, {
    label: `restore times of the last ${points.length} runs of ${v.policy}${v.rtoMs !== undefined ? `, target ${formatSeconds(v.rtoMs)}` : ''}`,
    ...(v.rtoMs !== undefined ? { targetMs: v.rtoMs } : {}),
  });
  return html`<tr class="${cls}" data-policy="${v.policy}" data-health="${v.health}">
<td>${badge(v.health, HEALTH_LABEL[v.health])}${v.running && v.health !== 'running' && html` ${badge('running')}`}</td>
<td><a href="/policies/${enc(v.policy)}">${v.policy}</a><div class="small muted">${v.kind}</div>${coverage && html`<div class="small">${coverageFigure(coverage)}</div>`}</td>
${withClient && html`<td title="${v.displayName}">${v.client}</td>`}
<td>${last}</td>
<td>${ago(v.lastSuccessAt, now)}</td>
<td>${backup}</td>
<td>${chart} ${lastRto !== undefined && lastRto !== null && html`<span class="small">${formatSeconds(lastRto)}</span>`}${boot && html`<div class="small boot" data-boot="${boot.verdict}">last boot: ${bootOutcome(boot.verdict, boot.bootMs)}</div>`}</td>
<td>${v.nextRunAt ? when(v.nextRunAt) : html`<span class="muted">${v.schedule ? '-' : 'not scheduled'}</span>`}</td>
<td>${v.openConditions.length > 0 ? html`<span class="err">${v.openConditions.join(', ')}</span>` : html`<span class="muted">-</span>`}</td></tr>`;
}

/** GET /policies/:name: one policy's state, restore-time chart and recent runs. */
export async function policyPage(ctx: RequestContext): Promise<SafeHtml> {
  const { deps } = ctx;
  const name = ctx.params[0]!;
  const now = deps.now();
  const { views, report } = await policyViews(deps, ctx.principal);
  const v = views.find((x) => x.policy === name);
  if (!v) throw notFound('no such policy');
  const hasCoverage = deps.config().policies.some((p) => p.name === name && p.coverage);
  const [runs, series, boots, plans, coverageRuns] = await Promise.all([
    deps.runs.list({ policy: name, client: v.client, limit: POLICY_PAGE_RUNS }),
    restoreSeries(deps.runs, { since: new Date(0).toISOString(), perPolicy: POLICY_PAGE_RUNS, policies: [name] }),
    lastBoots(deps.runs, [name]),
    hasCoverage ? coveragePlans(deps.runs, [name]) : Promise.resolve(new Map<string, CoveragePlanView>()),
    hasCoverage ? recentCoverageRuns(deps.runs, name, POLICY_PAGE_COVERAGE_RUNS) : Promise.resolve([]),
  ]);
  const plan = plans.get(name);
  const boot = boots.get(name);
  const incidents = report.openIncidents.filter((i) => i.policy === name);
  const none = (text: string): SafeHtml => html`<span class="muted">${text}</span>`;
  const facts: [string, SafeHtml][] = [
    ['Client', html`${v.client} <span class="muted">(${v.displayName})</span>`],
    ['Kind', html`${v.kind}`],
    ['Schedule', v.schedule ? html`${v.schedule}` : none('not scheduled')],
    ['Next run', v.nextRunAt ? when(v.nextRunAt) : none('-')],
    ['Last success', ago(v.lastSuccessAt, now)],
    ['Newest backup', v.newestBackup ? html`${v.newestBackup.key ?? ''} <span class="muted">taken ${when(v.newestBackup.takenAt)}, ${formatAge(v.newestBackup.ageMs)} old (from ${v.newestBackup.from})</span>` : none('unknown')],
    ['RPO target', v.rpoMs !== undefined ? html`${formatAge(v.rpoMs)} ${v.rpoMet === false ? html`<b class="err">missed</b>` : v.rpoMet && 'met'}` : none('none')],
    ['RTO target', v.rtoMs !== undefined ? html`${formatSeconds(v.rtoMs)}` : none('none')],
  ];
  if (plan) facts.push(['Coverage', coverageFact(plan, now)]);
  else if (hasCoverage) facts.push(['Coverage', none('no plan yet')]);
  if (boot) {
    facts.push(['Last boot', html`${bootBadge(boot.verdict)} <a href="/runs/${enc(boot.runId)}#boot">${bootOutcome(boot.verdict, boot.bootMs)}</a> <span class="muted">${ago(boot.startedAt, now)}</span>`]);
  }
  const alertList =
    incidents.length > 0
      ? html`<ul class="reasons">${incidents.map((i) => html`<li><code>${i.condition}${i.key && ` (${i.key})`}</code> since ${when(i.openedAt)}: ${i.summary}</li>`)}</ul>`
      : html`<p class="muted">None.</p>`;
  const body = html`<h1>${v.policy} ${badge(v.health, HEALTH_LABEL[v.health])}</h1>
<div class="grid2"><section><dl class="facts">${facts.map(([k, val]) => html`<dt>${k}</dt><dd>${val}</dd>`)}</dl>
<h2>Open alerts</h2>${alertList}</section>
<section><h2>Restore time</h2>${restoreChart(series.get(name) ?? [], { formatMs: formatSeconds, ...(v.rtoMs !== undefined ? { targetMs: v.rtoMs } : {}) })}</section></div>
${hasCoverage && html`<h2>Coverage runs <span class="muted small">(older restore points)</span></h2>${coverageRunsTable(coverageRuns, now)}`}
<h2>Recent runs</h2>${runsTable(runs, now, false)}
<p><a href="/runs?policy=${enc(name)}">All runs of ${name}</a> · <a href="/reports#client-${v.client}">Reports of ${v.client}</a></p>`;
  return page({ title: v.policy, who: who(ctx), nav: 'board', body });
}

/** GET /runs: recent runs, filtered by client and policy. */
export async function runsPage(ctx: RequestContext): Promise<SafeHtml> {
  const { deps, url, principal } = ctx;
  const now = deps.now();
  const client = url.searchParams.get('client') || undefined;
  const policy = url.searchParams.get('policy') || undefined;
  const limit = Math.min(500, Math.max(1, Number.parseInt(url.searchParams.get('limit') ?? '', 10) || 100));
  const own = principal.scope.kind === 'client' ? principal.scope.client : undefined;
  const runs = own && client && client !== own ? [] : await deps.runs.list({ client: own ?? client, policy, limit });
  const clients = deps.config().clients.filter((c) => canSee(principal, c.name)).map((c) => c.name);
  const policies = deps.config().policies.filter((p) => canSee(principal, p.client)).map((p) => p.name);
  const opt = (values: string[], current: string | undefined, all: string): SafeHtml =>
    html`<option value="">${all}</option>${values.map((x) => html`<option value="${x}"${x === current && html` selected`}>${x}</option>`)}`;
  const body = html`<h1>Runs</h1>
<form class="filters" method="get" action="/runs">
${clients.length > 1 && html`<label>Client<select name="client">${opt(clients, client, 'all clients')}</select></label>`}
<label>Policy<select name="policy">${opt(policies, policy, 'all policies')}</select></label>
<label>Show<input name="limit" type="number" min="1" max="500" value="${limit}"></label><button type="submit">Filter</button></form>
${runsTable(runs, now)}`;
  return page({ title: 'Runs', who: who(ctx), nav: 'runs', body });
}

export function runsTable(runs: RunRecord[], now: Date, withPolicy = true): SafeHtml {
  if (runs.length === 0) return html`<p class="muted">No runs.</p>`;
  const rows = runs.map((r) => {
    const verdict = r.verdict ?? r.status;
    const rto = r.metrics.rtoMeasuredMs;
    return html`<tr class="${r.verdict === 'pass' ? 'good' : r.verdict ? 'bad' : ''}"><td><a href="/runs/${enc(r.id)}">${when(r.startedAt)}</a><div class="small muted">${ago(r.startedAt, now)}</div></td>
${withPolicy && html`<td><a href="/policies/${enc(r.policy)}">${r.policy}</a></td><td>${r.client}</td>`}<td>${badge(verdict)}</td>
<td class="num">${r.durationMs !== null ? formatSeconds(r.durationMs) : '-'}</td><td class="num">${rto !== undefined ? formatSeconds(rto) : '-'}${
      r.boot && html`<div class="small boot" data-boot="${r.boot.verdict}">${bootOutcome(r.boot.verdict, r.boot.bootMs)}</div>`
    }</td>
<td class="small">${r.backup?.key ?? '-'}${r.coverage?.point && html`<div class="muted" data-coverage-run="${r.coverage.point.why}">coverage run: older point (${WHY_TEXT[r.coverage.point.why] ?? r.coverage.point.why})</div>`}</td><td class="small">${r.reasons.map((x) => x.code).join(', ')}</td></tr>`;
  });
  return html`<table><thead><tr><th>Started</th>${withPolicy && html`<th>Policy</th><th>Client</th>`}<th>Verdict</th><th class="num">Took</th><th class="num">${runs.some((r) => r.boot) ? 'Restore / boot' : 'Restore'}</th><th>Backup</th><th>Reasons</th></tr></thead><tbody>${joinHtml(rows, '\n')}</tbody></table>`;
}

/** GET /reports: per visible client, the months with runs, each downloadable in every format. */
export async function reportsPage(ctx: RequestContext): Promise<SafeHtml> {
  const { deps, principal } = ctx;
  const now = deps.now();
  const clients = deps.config().clients.filter((c) => canSee(principal, c.name));
  const since = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - REPORT_MONTHS_BACK + 1, 1)).toISOString();
  const timezone = deps.config().reports?.timezone ?? 'UTC';
  const months = await monthsWithRuns(deps.runs, since, timezone);
  const rows = clients.map((c) => {
    const list = reportMonths(months.get(c.name) ?? [], now, timezone);
    const cells = list.map(
      (m) =>
        html`<span class="month" data-month="${m}"><b>${m}</b> ${joinHtml(
          REPORT_FORMATS.map((f) => html`<a href="/api/reports/${enc(c.name)}/${enc(m)}.${f}" download data-format="${f}">${f.toUpperCase()}</a>`),
          ' ',
        )}</span>`,
    );
    return html`<tr id="client-${c.name}" data-client="${c.name}"><td>${c.displayName}<div class="small muted">${c.name}</div></td><td class="downloads">${cells}</td></tr>`;
  });
  const body = html`<h1>Monthly reports</h1><p class="muted">Restore-test evidence per client and month (${timezone}): runs, pass rate, measured RTO and RPO against targets, failures and the evidence appendix. Newest month first.</p>
${rows.length > 0 ? html`<table class="reports"><thead><tr><th>Client</th><th>Months</th></tr></thead><tbody>${joinHtml(rows, '\n')}</tbody></table>` : html`<p class="muted">No clients.</p>`}`;
  return page({ title: 'Reports', who: who(ctx), nav: 'reports', body });
}
