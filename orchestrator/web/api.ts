import type { RunRecord } from '../core/domain.js';
import { isRunId, type RunFilter } from '../evidence/run-store.js';
import { canSee } from './auth.js';
import { HttpError, notFound, send, sendJson, type RequestContext } from './context.js';
import { policyViews } from './policy-view.js';
import { isReportFormat, renderReport, REPORT_CONTENT_TYPES } from './reports.js';
import { coveragePlans } from './web-queries.js';

/**
 * The JSON API. Everything a token may not see answers exactly like what does not exist: 404 for
 * one thing, absent from lists. Errors: `{ "error": { "code", "message" } }`.
 *
 * - GET /api/policies: `{ generatedAt, policies: [...], openIncidents: [...] }`, each policy as
 *   `backproof status --json` has it plus `health` (ok|fail|error|stale|alert|running|never), and
 *   for a policy with `coverage:` its newest plan as `coverage` (`{ runId, startedAt, plan }`).
 * - GET /api/runs?policy=&client=&limit=&since=: `{ runs: [RunRecord...] }`, newest first;
 *   limit 1-1000 (default 50), since an ISO time.
 * - GET /api/runs/:id: one RunRecord (full id).
 * - GET /api/runs/:id/artifacts/:name: a file kept with the run (a vm run's `screenshot.png`),
 *   its bytes as stored (artifacts.ts).
 * - GET /api/reports/:client/:month.:format: the monthly report (pdf, html, csv, json) as a download.
 */
export const DEFAULT_API_RUNS = 50;
export const MAX_API_RUNS = 1000;

export async function apiPolicies(ctx: RequestContext): Promise<void> {
  const { report, views } = await policyViews(ctx.deps, ctx.principal);
  const withCoverage = new Set(ctx.deps.config().policies.filter((p) => p.coverage).map((p) => p.name));
  const plans = await coveragePlans(ctx.deps.runs, views.filter((v) => withCoverage.has(v.policy)).map((v) => v.policy));
  const policies = views.map((v) => (plans.has(v.policy) ? { ...v, coverage: plans.get(v.policy) } : v));
  sendJson(ctx.res, 200, { generatedAt: report.generatedAt, policies, openIncidents: report.openIncidents });
}

export async function apiRuns(ctx: RequestContext): Promise<void> {
  const q = ctx.url.searchParams;
  const limitText = q.get('limit');
  const limit = limitText === null ? DEFAULT_API_RUNS : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_API_RUNS) {
    throw new HttpError(400, 'bad_limit', `limit must be a whole number from 1 to ${MAX_API_RUNS}`);
  }
  const sinceText = q.get('since');
  let since: string | undefined;
  if (sinceText !== null) {
    const t = Date.parse(sinceText);
    if (Number.isNaN(t)) throw new HttpError(400, 'bad_since', 'since must be an ISO 8601 time, e.g. 2026-11-01T00:00:00Z');
    since = new Date(t).toISOString();
  }
  const filter: RunFilter = { limit, ...(since ? { since } : {}) };
  const policy = q.get('policy');
  if (policy) filter.policy = policy;
  const client = q.get('client');
  if (client) filter.client = client;
  const scope = ctx.principal.scope;
  if (scope.kind === 'client') {
    // Another client's runs are absent, not forbidden.
    if (client && client !== scope.client) return sendJson(ctx.res, 200, { runs: [] });
    filter.client = scope.client;
  }
  sendJson(ctx.res, 200, { runs: await ctx.deps.runs.list(filter) });
}

/** The run with this full id if the principal may see it; null when it is missing or not theirs. */
export async function visibleRun(ctx: RequestContext, id: string): Promise<RunRecord | null> {
  const key = id.toLowerCase();
  if (!isRunId(key)) return null;
  const run = await ctx.deps.runs.get(key);
  return run && canSee(ctx.principal, run.client) ? run : null;
}

export async function apiRun(ctx: RequestContext): Promise<void> {
  const run = await visibleRun(ctx, ctx.params[0]!);
  if (!run) throw notFound('no such run');
  sendJson(ctx.res, 200, run);
}

/** The report download, for the API and the dashboard's links alike. */
export async function apiReport(ctx: RequestContext): Promise<void> {
  const [client, month, format] = ctx.params as [string, string, string];
  if (!isReportFormat(format)) throw notFound('no such report format; use pdf, html, csv or json');
  if (!canSee(ctx.principal, client) || !ctx.deps.config().clients.some((c) => c.name === client)) throw notFound('no such client');
  const { body, fileName } = await renderReport(ctx.deps, client, month, format);
  send(ctx.res, 200, REPORT_CONTENT_TYPES[format], body, {
    'content-disposition': `attachment; filename="${fileName.replace(/["\\\r\n]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(fileName)}`,
  });
}
