import { createRedactor, type Redactor } from './secrets.js';

/**
 * One logger with a typed scope. Human lines on a TTY, JSON lines otherwise; always on stderr so
 * stdout stays for command output (`--json`). Secret values from the config are redacted from
 * every line.
 */
export interface LogScope {
  runId?: string;
  client?: string;
  policy?: string;
  backup?: string;
  sandbox?: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  level?: LogLevel;
  json?: boolean;
  secrets?: readonly string[];
  write?: (line: string) => void;
}

export class Logger {
  readonly scope: LogScope;
  private readonly opts: Required<LoggerOptions>;
  private readonly redactor: Redactor;

  constructor(opts: LoggerOptions = {}, scope: LogScope = {}, redactor?: Redactor) {
    this.opts = {
      level: opts.level ?? (process.env.BACKPROOF_LOG_LEVEL as LogLevel | undefined) ?? 'info',
      json: opts.json ?? !process.stderr.isTTY,
      secrets: (opts.secrets ?? []).filter((s) => s.length >= 4),
      write: opts.write ?? ((line) => process.stderr.write(line + '\n')),
    };
    this.scope = scope;
    this.redactor = redactor ?? createRedactor(this.opts.secrets);
  }

  child(scope: LogScope): Logger {
    return new Logger(this.opts, { ...this.scope, ...scope }, this.redactor);
  }

  withSecrets(secrets: readonly string[]): Logger {
    return new Logger({ ...this.opts, secrets: [...this.opts.secrets, ...secrets] }, this.scope);
  }

  get json(): boolean {
    return this.opts.json;
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }

  /** `text` with every secret of the config (in its raw, URL, base64 and JSON forms) as `***`. */
  redact(text: string): string {
    return this.redactor(text);
  }

  private log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (LEVELS[level] < LEVELS[this.opts.level]) return;
    let line: string;
    if (this.opts.json) {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.scope, ...fields });
    } else {
      const scope = [this.scope.policy, this.scope.runId?.slice(0, 8)].filter(Boolean).join(' ');
      const extra = fields && Object.keys(fields).length > 0 ? ' ' + JSON.stringify(fields) : '';
      line = `${level === 'info' ? '' : level.toUpperCase() + ' '}${scope ? `[${scope}] ` : ''}${msg}${extra}`;
    }
    this.opts.write(this.redact(line));
  }
}
