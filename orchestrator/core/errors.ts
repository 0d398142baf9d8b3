import type { ReasonCode } from './domain.js';

/**
 * Few error classes, each with a stable `code`.
 * - ConfigError: the configuration is invalid; carries every problem found.
 * - VerificationError: a run ended early with a reason (`fail` or `error` code); the runner
 *   turns it into the run's verdict.
 * - BackproofError: anything else of ours worth a code (store, CLI usage).
 */
export class BackproofError extends Error {
  override name = 'BackproofError';
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface ConfigProblem {
  file: string;
  /** Key path such as `clients[0].policies[1].targets.rpo`; empty for the whole file. */
  path: string;
  /** 1-based line and column, when known. */
  line?: number;
  column?: number;
  problem: string;
  fix: string;
}

export class ConfigError extends BackproofError {
  override name = 'ConfigError';
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super('config_invalid', problems.map(formatConfigProblem).join('\n'));
    this.problems = problems;
  }
}

export function formatConfigProblem(p: ConfigProblem): string {
  const where = p.line !== undefined ? `${p.file}:${p.line}:${p.column ?? 1}` : p.file;
  const path = p.path ? ` ${p.path}:` : '';
  return `${where}:${path} ${p.problem}; fix: ${p.fix}`;
}

export class VerificationError extends BackproofError {
  override name = 'VerificationError';
  readonly reason: ReasonCode;
  constructor(reason: ReasonCode, message: string, options?: { cause?: unknown }) {
    super(reason, message, options);
    this.reason = reason;
  }
}

/** Turns anything thrown into an Error, keeping the original as `cause`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown), { cause: thrown });
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}
