import { formatBytes } from '../../orchestrator/core/format.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { truncate } from '../bytes.js';

/** What is known when the mariadb client stopped with an error. */
export interface FailedRestore {
  exitCode: number;
  stderr: string;
  memoryBytes: number;
  /** Facts from the dump's header (serverVersion, serverFlavor...). */
  header: Record<string, string>;
  /** The sandbox server's version. */
  serverVersion: string;
  /** Whether the server still answers (asked only when the client lost its connection). */
  serverAlive?: boolean;
  /** The server log's first [ERROR] line, when there is one. */
  serverError?: string;
  /** The whole dump went into the client. */
  readAll: boolean;
  /** The dump has mysqldump's header, so it must end with "-- Dump completed". */
  expectsCompletionLine: boolean;
  /** Its last line is "-- Dump completed". */
  completed: boolean;
}

/** MariaDB lacks what the MySQL dump names: unknown collation, character set, variable, engine. */
const MISSING_IN_MARIADB = new Set(['1273', '1115', '1193', '1286']);

/**
 * Turns a failed restore into its reason: the sandbox failing (killed, server gone) is an
 * `error`; a dump that ends early is `truncated_dump`; a MySQL dump needing what MariaDB lacks
 * could not be verified here (`unsupported_format`); anything else is the dump's fault
 * (`restore_failed`, with the client's first error line, "ERROR 1064 (42000) at line 57: ...").
 */
export function restoreFailure(f: FailedRestore): VerificationError {
  const line = firstErrorLine(f.stderr);
  const memory = `the sandbox's memory limit is ${formatBytes(f.memoryBytes)}: raise sandbox.memory if it is too small`;
  if (f.exitCode >= 128) {
    // Killed by a signal (137: SIGKILL, usually the memory limit): says nothing about the backup.
    const sig = f.exitCode - 128;
    return new VerificationError('sandbox_failed', `the mariadb client was killed by signal ${sig}${sig === 9 ? ` (most often ${memory})` : ''}`);
  }
  if (/^ERROR 20(06|13)\b/m.test(f.stderr) && f.serverAlive === false) {
    return new VerificationError(
      'sandbox_failed',
      `the MariaDB server in the sandbox stopped during the restore (${line}${f.serverError ? `; server log: ${truncate(f.serverError, 200)}` : ''}); ${memory}`,
    );
  }
  if (/Not allowed in the sandbox mode/.test(f.stderr)) {
    return new VerificationError('unsafe_archive', `the dump runs a mariadb client command (\\! or system: a shell command), refused by the client's --sandbox mode: ${line}`);
  }
  if (/^ERROR 1290 .*--secure-file-priv/m.test(f.stderr)) {
    return new VerificationError('unsafe_archive', `the dump reads or writes server files (SELECT ... INTO OUTFILE, LOAD DATA INFILE), refused by the server's --secure-file-priv: ${line}`);
  }
  if (f.expectsCompletionLine && f.readAll && !f.completed) {
    return new VerificationError('truncated_dump', `the dump ends early: mysqldump's closing line "-- Dump completed" is missing, and the restore stopped at the end: ${line}`);
  }
  if (/ASCII '\\0' appeared in the statement/.test(f.stderr)) {
    return new VerificationError('restore_failed', `the dump is damaged: a NUL byte where SQL text belongs (${line})`);
  }
  const code = /^ERROR (\d+)/m.exec(f.stderr)?.[1];
  const fromMysql = f.header.serverFlavor === 'MySQL' && f.header.serverVersion;
  if (fromMysql && code && MISSING_IN_MARIADB.has(code)) {
    return new VerificationError(
      'unsupported_format',
      `the dump comes from MySQL ${f.header.serverVersion} and needs what the sandbox's MariaDB ${f.serverVersion} lacks (${line}); kind: mysql restores into MariaDB: verify this backup with kind: custom and a MySQL image`,
    );
  }
  const note = fromMysql && code === '1064' ? ` (the dump comes from MySQL ${f.header.serverVersion}, restored into MariaDB ${f.serverVersion}: MySQL-only syntax stops here too)` : '';
  return new VerificationError('restore_failed', `the mariadb client failed (exit ${f.exitCode}): ${line}${note}`);
}

export function firstErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  return truncate(lines.find((l) => /^ERROR\b/.test(l)) ?? lines.find((l) => /error|fatal/i.test(l)) ?? lines.at(-1) ?? 'no message', 300);
}
