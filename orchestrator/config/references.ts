/**
 * `${env:NAME}` and `${file:PATH}` references inside string values of the config file.
 *
 * A reference may be the whole value or part of it (`postgres://app:${env:PGPASS}@db/app`).
 * `$${` stands for a literal `${`. File paths are relative to the config file's folder; the
 * file's content loses one trailing newline. Every resolved value is a secret: the logger
 * redacts it and configuration problems never print it.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';

export type KeyPath = Array<string | number>;

export interface ReferenceProblem {
  path: KeyPath;
  problem: string;
  fix: string;
}

export interface ReferenceOptions {
  /** Folder `${file:..}` paths are relative to: the config file's folder. */
  baseDir: string;
  env: NodeJS.ProcessEnv;
}

export interface ResolvedReferences<T> {
  value: T;
  /** Distinct non-empty values that came from references. */
  secrets: string[];
  /** Where each referenced value came from, by key path: the references as written (`${env:X}`). */
  origins: Map<string, string[]>;
  problems: ReferenceProblem[];
}

/** Resolves references in every string of a parsed YAML value (objects and arrays walked). */
export function resolveReferences<T>(value: T, options: ReferenceOptions): ResolvedReferences<T> {
  const secrets = new Set<string>();
  const problems: ReferenceProblem[] = [];
  const origins = new Map<string, string[]>();
  // One path, pushed and popped as the walk goes; copied only where a reference is found (a
  // 10,000-policy config has ~300,000 nodes and a handful of references).
  const at: (string | number)[] = [];
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') {
      if (!node.includes('${')) return node;
      const here = [...at];
      const refs = [...node.matchAll(/(?<!\$)\$\{[^}]*\}/g)].map((m) => m[0]);
      if (refs.length > 0) origins.set(here.join('.'), refs);
      return resolveString(node, here, options, secrets, problems);
    }
    if (Array.isArray(node)) {
      const out = new Array<unknown>(node.length);
      for (let i = 0; i < node.length; i++) {
        at.push(i);
        out[i] = walk(node[i]);
        at.pop();
      }
      return out;
    }
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(node)) {
        at.push(key);
        out[key] = walk((node as Record<string, unknown>)[key]);
        at.pop();
      }
      return out;
    }
    return node;
  };
  const resolved = walk(value) as T;
  return { value: resolved, secrets: [...secrets], origins, problems };
}

function resolveString(
  text: string,
  at: KeyPath,
  options: ReferenceOptions,
  secrets: Set<string>,
  problems: ReferenceProblem[],
): string {
  if (!text.includes('${')) return text;
  let out = '';
  let index = 0;
  while (index < text.length) {
    const start = text.indexOf('${', index);
    if (start === -1) {
      out += text.slice(index);
      break;
    }
    if (start > 0 && text[start - 1] === '$') {
      // `$${` is the escape: keep everything before the extra `$`, then a literal `${`.
      out += text.slice(index, start - 1) + '${';
      index = start + 2;
      continue;
    }
    out += text.slice(index, start);
    const end = text.indexOf('}', start);
    if (end === -1) {
      problems.push({
        path: at,
        problem: `unterminated reference "${text.slice(start, start + 40)}"`,
        fix: 'close it with "}" (${env:NAME} or ${file:PATH}), or write $${ for a literal ${',
      });
      return text;
    }
    const body = text.slice(start + 2, end);
    const resolved = resolveOne(body, at, options, problems);
    if (resolved !== undefined) {
      if (resolved !== '') secrets.add(resolved);
      out += resolved;
    }
    index = end + 1;
  }
  return out;
}

function resolveOne(
  body: string,
  at: KeyPath,
  options: ReferenceOptions,
  problems: ReferenceProblem[],
): string | undefined {
  const colon = body.indexOf(':');
  const kind = colon === -1 ? '' : body.slice(0, colon).trim();
  const arg = colon === -1 ? body.trim() : body.slice(colon + 1).trim();
  if (kind === 'env') {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(arg)) {
      problems.push({
        path: at,
        problem: `"\${env:${arg}}" does not name an environment variable`,
        fix: 'use letters, digits and underscores, e.g. ${env:PGPASS}',
      });
      return undefined;
    }
    const value = options.env[arg];
    if (value === undefined) {
      problems.push({
        path: at,
        problem: `environment variable ${arg} is not set`,
        fix: `export ${arg}=... or remove the reference`,
      });
      return undefined;
    }
    return value;
  }
  if (kind === 'file') {
    if (arg === '') {
      problems.push({ path: at, problem: '"${file:}" names no file', fix: 'write ${file:PATH}, e.g. ${file:secrets/pgpass}' });
      return undefined;
    }
    const full = path.resolve(options.baseDir, arg);
    try {
      return readBoundedFile(full, REFERENCE_MAX_BYTES).replace(/\r?\n$/, '');
    } catch (err) {
      if (err instanceof BoundedReadError) {
        problems.push({ path: at, problem: `${full} ${err.message}`, fix: err.fix ?? `point \${file:} at a regular file of at most ${REFERENCE_MAX_BYTES / 1024} KiB (a password, a key, a certificate)` });
        return undefined;
      }
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${code ?? String(err)})`;
      problems.push({
        path: at,
        problem: `file ${full} ${why}`,
        fix: `create it or correct the path (relative paths start at ${options.baseDir}), or remove the reference`,
      });
      return undefined;
    }
  }
  problems.push({
    path: at,
    problem: `unknown reference "\${${body}}"`,
    fix: 'use ${env:NAME} or ${file:PATH}; write $${ for a literal ${',
  });
  return undefined;
}

/** One config file at most this large (a 10,000-policy file is about 3 MB); a folder, four times this in all. */
export const CONFIG_MAX_BYTES = 16 * 1024 ** 2;

/** What a `${file:}` reference may hold: secrets and certificates, never megabytes. */
export const REFERENCE_MAX_BYTES = 64 * 1024;

export class BoundedReadError extends Error {
  /** Set when the fix is not about the file's kind or size (its encoding). */
  constructor(message: string, readonly fix?: string) {
    super(message);
  }
}

/**
 * UTF-8 text, or a BoundedReadError saying what the bytes are instead: UTF-16 (PowerShell's
 * `>` and Notepad's "Unicode"), or another single-byte encoding (Latin-1, Windows-1252) that
 * would otherwise turn "Müller" into "M\uFFFDller" in every report.
 */
export function decodeUtf8(bytes: Buffer): string {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw new BoundedReadError('is UTF-16 text, not UTF-8', 'save it as UTF-8 (PowerShell: Out-File -Encoding utf8, or Set-Content; editors: "UTF-8")');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    const text = bytes.toString('utf8');
    const at = text.indexOf('\uFFFD');
    const line = text.slice(0, at).split('\n').length;
    throw new BoundedReadError(`is not UTF-8 text (line ${line} holds a byte UTF-8 does not allow, as Latin-1 or Windows-1252 text does)`, 'save it as UTF-8 (iconv -f latin1 -t utf-8, or "UTF-8" in the editor)');
  }
}

/**
 * A regular file's text, at most `max` bytes. Opened non-blocking, so a FIFO or a device never
 * hangs the read, and refused unless it is a regular file of at most `max` bytes (`/dev/zero`,
 * a 16 GB file), with a BoundedReadError saying which.
 */
export function readBoundedFile(file: string, max: number): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new BoundedReadError('is not a regular file (a FIFO, device, socket or folder)');
    if (st.size > max) throw new BoundedReadError(`is ${st.size} bytes, more than the ${max} allowed`);
    const buf = Buffer.alloc(Math.min(st.size, max) + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > max) throw new BoundedReadError(`grew past ${max} bytes while being read`);
    }
    return decodeUtf8(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}
