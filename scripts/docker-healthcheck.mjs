#!/usr/bin/env node
// The Docker image's HEALTHCHECK, /app/docker-healthcheck.mjs (scripts/docker-context.sh puts it there).
//
// `backproof daemon` (the image's default command): healthy while GET /healthz on the daemon's
// liveness endpoint answers 200, that is while its loop beats (503 once it stalls or stops). The
// endpoint is served only when the config sets daemon.liveness.port; the check asks
// 127.0.0.1:$BACKPROOF_LIVENESS_PORT (the image sets 9464), so set the same port in the config:
//   daemon: { liveness: { port: 9464 } }
// The check runs inside the container's own network namespace: loopback is enough, and the
// endpoint needs no published port.
//
// Any other command (run, demo, report, --version, ...) is one-shot: its exit code is its verdict
// and there is no endpoint to ask, so the check reports healthy while it runs.
/* global fetch, AbortSignal */
import { readdirSync, readFileSync } from 'node:fs';

/** Whether a process in this container runs `backproof ... daemon`. */
function daemonRunning() {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let argv;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const entry = argv.findIndex((a) => /(^|\/)(backproof|backproof\.js)$/.test(a));
    if (entry >= 0 && argv.slice(entry + 1).includes('daemon')) return true;
  }
  return false;
}

if (!daemonRunning()) {
  process.stdout.write('not the daemon: a one-shot command, its exit code is its health\n');
  process.exit(0);
}
const port = Number(process.env.BACKPROOF_LIVENESS_PORT || 9464);
const url = `http://127.0.0.1:${port}/healthz`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  const body = (await res.text()).trim();
  process.stdout.write(`${url}: ${res.status} ${body.slice(0, 500)}\n`);
  process.exit(res.status === 200 ? 0 : 1);
} catch (err) {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
  process.stdout.write(`${url}: ${cause} (is daemon.liveness.port ${port} set in the config?)\n`);
  process.exit(1);
}
