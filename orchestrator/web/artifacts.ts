import { createHash } from 'node:crypto';
import { visibleRun } from './api.js';
import { HttpError, notFound, SECURITY_HEADERS, send, type RequestContext } from './context.js';
import { enc } from './html.js';

/**
 * GET /runs/:id/artifacts/:name (dashboard, session cookie) and GET /api/runs/:id/artifacts/:name
 * (API, bearer token): a file kept with a run's evidence, such as a vm run's boot screenshot
 * (`screenshot.png`). Scoped as the run is: a run the token may not see answers 404 like a run
 * that does not exist, and so do its artifacts.
 *
 * The bytes go out as stored, with their sha256 as ETag, only while they hash to the sha256 the
 * run's sealed record names (BootRecord.screenshot): altered bytes answer 409, never shown as
 * the evidence. Images of the types below are shown
 * inline; anything else is a download of application/octet-stream, so that a stored file can
 * never run as a page of this origin. Every answer is `nosniff` with a CSP that runs nothing.
 */

/** A name as restorers write them: no path, no leading dot, at most 100 characters. */
export const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/**
 * The image shown alone (a browser opens the URL) displays itself ('self'); nothing else loads,
 * and `sandbox` keeps the document from running anything or sharing the origin.
 */
export const ARTIFACT_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'; base-uri 'none'";

/** The dashboard's URL of a run's artifact (the API's is the same under /api). */
export function artifactPath(runId: string, name: string): string {
  return `/runs/${enc(runId)}/artifacts/${enc(name)}`;
}

export async function artifactHandler(ctx: RequestContext): Promise<void> {
  const [id, name] = ctx.params as [string, string];
  const run = await visibleRun(ctx, id);
  if (!run) throw notFound('no such run');
  const artifact = ARTIFACT_NAME.test(name) && !name.includes('..') ? await ctx.deps.runs.artifact(run.id, name) : null;
  if (!artifact) throw notFound('no such artifact');

  const sha256 = createHash('sha256').update(artifact.bytes).digest('hex');
  const sealed = run.boot?.screenshot?.name === name ? run.boot.screenshot.sha256 : artifact.sha256;
  if (sha256 !== sealed) {
    throw new HttpError(409, 'artifact_altered', `the stored ${name} does not match the sha256 sealed in the run's record (${sealed}); run backproof evidence verify`);
  }
  const inline = INLINE_TYPES.has(artifact.mediaType);
  const etag = `"${sha256}"`;
  const fileName = `${run.id.slice(0, 8)}-${name}`;
  const headers: Record<string, string> = {
    'content-security-policy': ARTIFACT_CSP,
    'x-content-type-options': 'nosniff',
    // The bytes of a run never change, but who may read them can (a token revoked): a browser
    // keeps them, and asks again each time; an unchanged file costs a 304.
    'cache-control': 'private, no-cache',
    vary: 'Authorization, Cookie',
    etag,
    'cross-origin-resource-policy': 'same-origin',
    'content-disposition': `${inline ? 'inline' : 'attachment'}; filename="${fileName}"`,
  };
  const match = ctx.req.headers['if-none-match'];
  if (typeof match === 'string' && match.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)) {
    ctx.res.writeHead(304, { ...SECURITY_HEADERS, ...headers });
    ctx.res.end();
    return;
  }
  send(ctx.res, 200, inline ? artifact.mediaType : 'application/octet-stream', artifact.bytes, headers);
}
