import type { ProbeConfig, SandboxProbeConfig } from '../../orchestrator/core/config-types.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import type { ProbeResult } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { FILES_USER } from '../images/build-image.js';
import type { Sandbox } from '../sandbox-runtime.js';
import { describeExpectation, meets } from './sql-probes.js';
import { timeoutSignal } from '../../orchestrator/core/timeout-signal.js';

/**
 * Probes every kind can run, inside the sandbox: a command (argv, in the main container or a
 * named service) and an HTTP GET inside the sandbox's own network namespace. The sandbox has no
 * network beyond loopback, so the request is made from inside: by curl in the main container
 * when it is the files image, else in a helper container of that image that joins the namespace.
 */
export const PROBE_HELPER = 'backproof-probe';

export function isSandboxProbe(probe: ProbeConfig): probe is SandboxProbeConfig {
  return probe.type === 'command' || probe.type === 'http';
}

export async function runSandboxProbes(probes: readonly ProbeConfig[], sandbox: Sandbox, signal: AbortSignal): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  for (const probe of probes.filter(isSandboxProbe)) {
    signal.throwIfAborted();
    const started = performance.now();
    const limit = timeoutSignal(probe.timeoutMs);
    let result: Omit<ProbeResult, 'durationMs'>;
    try {
      result = probe.type === 'command' ? await command(probe, sandbox, AbortSignal.any([signal, limit])) : await http(probe, sandbox, AbortSignal.any([signal, limit]));
    } catch (err) {
      signal.throwIfAborted();
      // A probe that could not be run at all (the engine or the sandbox went away) says nothing
      // about the restored data: the verification failed, not the backup.
      if (!limit.aborted) throw new VerificationError('sandbox_failed', `probe "${probe.name}" could not be run in the sandbox: ${(err as Error).message}`);
      result = {
        name: probe.name,
        type: probe.type,
        expected: describe(probe),
        actual: 'no answer',
        pass: false,
        error: `timed out after ${probe.timeoutMs} ms`,
      };
    }
    results.push({ ...result, durationMs: Math.round(performance.now() - started) });
  }
  return results;
}

async function command(probe: Extract<SandboxProbeConfig, { type: 'command' }>, sandbox: Sandbox, signal: AbortSignal): Promise<Omit<ProbeResult, 'durationMs'>> {
  const r = await sandbox.exec(probe.argv, { signal, ...(probe.service ? { service: probe.service } : {}) });
  const out = r.stdout.trim();
  const base = { name: probe.name, type: probe.type, expected: describe(probe) };
  if (r.exitCode !== probe.exitCode) {
    const words = (r.stderr.trim() || out).split('\n').slice(-2).join(' ').slice(0, 300);
    return { ...base, actual: `exit ${r.exitCode}${words ? `: ${words}` : ''}`, pass: false };
  }
  if (!probe.expect) return { ...base, actual: `exit ${r.exitCode}`, pass: true };
  return { ...base, actual: shown(out), pass: meets(out, probe.expect) };
}

async function http(probe: Extract<SandboxProbeConfig, { type: 'http' }>, sandbox: Sandbox, signal: AbortSignal): Promise<Omit<ProbeResult, 'durationMs'>> {
  const inMain = sandbox.image === DEFAULTS.filesImage;
  if (!inMain && !sandbox.services.includes(PROBE_HELPER)) {
    await sandbox.addService({ name: PROBE_HELPER, image: DEFAULTS.filesImage, cmd: ['sleep', 'infinity'], user: FILES_USER }, signal);
  }
  const seconds = Math.max(1, Math.ceil(probe.timeoutMs / 1000));
  const url = `http://127.0.0.1:${probe.port}${probe.path}`;
  const r = await sandbox.exec(['curl', '-sS', '-o', '-', '-w', '\n%{http_code}', '--max-time', String(seconds), url], {
    signal,
    ...(inMain ? {} : { service: PROBE_HELPER }),
  });
  const base = { name: probe.name, type: probe.type, expected: describe(probe) };
  if (r.exitCode !== 0) return { ...base, actual: `no response: ${r.stderr.trim().split('\n').at(-1)?.replace(/^curl: \(\d+\) /, '') ?? `curl exit ${r.exitCode}`}`, pass: false };
  const cut = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(cut + 1).trim());
  const body = r.stdout.slice(0, Math.max(0, cut));
  if (status !== probe.status) return { ...base, actual: `status ${status}`, pass: false };
  if (!probe.expect) return { ...base, actual: `status ${status}`, pass: true };
  return { ...base, actual: `status ${status}, body ${shown(body.trim())}`, pass: meets(body.trim(), probe.expect) };
}

function describe(probe: SandboxProbeConfig): string {
  if (probe.type === 'command') {
    return [`exit ${probe.exitCode}`, probe.expect ? `output ${describeExpectation(probe.expect)}` : ''].filter(Boolean).join(', ');
  }
  return [`status ${probe.status}`, probe.expect ? `body ${describeExpectation(probe.expect)}` : ''].filter(Boolean).join(', ');
}

function shown(text: string): string {
  const line = text.replace(/\s+/g, ' ');
  return line === '' ? '(empty)' : JSON.stringify(line.length > 120 ? `${line.slice(0, 119)}…` : line);
}
