import { createHash } from 'node:crypto';
import type { SendMailOptions, Transporter } from 'nodemailer';
import { DEFAULTS } from '../core/defaults.js';
import type { Alert } from './alert.js';
import {
  closedResult,
  DeliveryError,
  deliverWithRetries,
  resolveRetry,
  type AlertChannel,
  type ChannelCommonOptions,
  type DeliverOptions,
  type DeliveryResult,
  type ResolvedRetryOptions,
} from './channel.js';
import { createRedactor, oneLine, type Redactor } from './redact.js';
import { renderHtml, renderSubject, renderText } from './render.js';

/**
 * Alerts by email through an SMTP server (nodemailer, one connection per delivery, no pool).
 *
 * TLS: `secure` is implicit TLS (usually port 465). Otherwise `startTls` decides: `required`
 * fails unless the server offers STARTTLS and the upgrade works (nodemailer `requireTLS`),
 * `opportunistic` upgrades when the server offers it, `never` stays plain (`ignoreTLS`).
 * Certificates are checked unless `tlsRejectUnauthorized` is false.
 */
export interface EmailChannelOptions extends ChannelCommonOptions {
  host: string;
  port: number;
  secure?: boolean;
  startTls?: 'required' | 'opportunistic' | 'never';
  auth?: { user: string; pass: string };
  from: string;
  to: string[];
  cc?: string[];
  tlsRejectUnauthorized?: boolean;
  connectionTimeoutMs?: number;
  greetingTimeoutMs?: number;
  socketTimeoutMs?: number;
}

/** A mail with attachments (a monthly report), sent by `sendDocument`. */
export interface DocumentMessage {
  to: string[];
  subject: string;
  text: string;
  html?: string;
  attachments: { filename: string; content: Buffer; contentType: string }[];
}

/** What nodemailer attaches to its errors (see nodemailer's errors.d.ts). */
interface SmtpErrorFields {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

/** Node socket error codes worth another attempt. */
const TRANSIENT_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
/** nodemailer codes for a connection that failed or dropped rather than a refusal. */
const TRANSIENT_MAILER_CODES = new Set(['ECONNECTION', 'ESOCKET', 'ETIMEDOUT', 'EDNS']);

export class EmailChannel implements AlertChannel {
  readonly name: string;
  /** Made at the first message: nodemailer costs ~90 ms and ~12 MB to load, and most processes never mail. */
  private transport: Promise<Transporter> | undefined;
  private readonly redact: Redactor;
  private readonly retry: ResolvedRetryOptions;
  private readonly target: string;
  private closed = false;

  constructor(private readonly opts: EmailChannelOptions) {
    this.name = opts.name ?? 'email';
    this.target = `${this.name === 'email' ? 'email' : `email ${this.name}`} via SMTP ${opts.host}:${opts.port}`;
    const secrets = [...(opts.secrets ?? [])];
    if (opts.auth) {
      const { user, pass } = opts.auth;
      // The password, and the AUTH PLAIN / LOGIN forms a server might echo.
      secrets.push(pass, `\0${user}\0${pass}`, `${user}\0${pass}`);
    }
    this.redact = createRedactor(secrets);
    this.retry = resolveRetry(opts.retry);
  }

  private transporter(): Promise<Transporter> {
    const opts = this.opts;
    const startTls = opts.startTls ?? 'required';
    this.transport ??= import('nodemailer').then(({ default: nodemailer }) =>
      nodemailer.createTransport({
        host: opts.host,
        port: opts.port,
        secure: opts.secure ?? false,
        requireTLS: !opts.secure && startTls === 'required',
        ignoreTLS: !opts.secure && startTls === 'never',
        tls: { rejectUnauthorized: opts.tlsRejectUnauthorized ?? true },
        ...(opts.auth ? { auth: { user: opts.auth.user, pass: opts.auth.pass } } : {}),
        connectionTimeout: opts.connectionTimeoutMs ?? DEFAULTS.alert.smtpConnectionTimeoutMs,
        greetingTimeout: opts.greetingTimeoutMs ?? DEFAULTS.alert.smtpGreetingTimeoutMs,
        socketTimeout: opts.socketTimeoutMs ?? DEFAULTS.alert.smtpSocketTimeoutMs,
        logger: false,
        debug: false,
      }),
    );
    return this.transport;
  }

  /** The channel's recipients plus `extra`, without duplicates (case-insensitive). */
  recipients(extra: readonly string[] = []): string[] {
    return uniqueAddresses([...this.opts.to, ...extra]);
  }

  deliver(alert: Alert, signal?: AbortSignal, opts: DeliverOptions = {}): Promise<DeliveryResult> {
    const ids = messageIds(alert, this.opts.from);
    return this.send(this.recipients(opts.extraTo), "the channel's to and the policy's alerts.to are empty", alert, signal, {
      subject: renderSubject(alert),
      text: renderText(alert),
      html: renderHtml(alert),
      messageId: ids.messageId,
      ...(ids.inReplyTo ? { inReplyTo: ids.inReplyTo, references: [ids.inReplyTo] } : {}),
      headers: {
        // RFC 3834: no vacation auto-replies to alerts.
        'Auto-Submitted': 'auto-generated',
        'X-Backproof-Alert-Id': alert.id.replace(/[\r\n]+/g, ' '),
        'X-Backproof-Condition': alert.condition,
        'X-Backproof-State': alert.state,
      },
    });
  }

  /**
   * Mails a document (the monthly reports) to `msg.to` only: the channel's own `to` (its alert
   * recipients) is not added, its `cc` is. Same transport, retries and redaction as alerts;
   * never throws.
   */
  sendDocument(msg: DocumentMessage, signal?: AbortSignal): Promise<DeliveryResult> {
    const id = msg.attachments[0]?.filename ?? msg.subject;
    return this.send(uniqueAddresses(msg.to), `no recipient for ${oneLine(msg.subject, 120)}`, { id, state: 'firing' }, signal, {
      subject: msg.subject.replace(/[\r\n]+/g, ' '),
      text: msg.text,
      ...(msg.html !== undefined ? { html: msg.html } : {}),
      attachments: msg.attachments.map((a) => ({ filename: a.filename, content: a.content, contentType: a.contentType })),
      headers: { 'Auto-Submitted': 'auto-generated', 'X-Backproof-Document': id.replace(/[\r\n]+/g, ' ') },
    });
  }

  /** One message to `to` (plus the channel's cc) with retries; `noRecipient` says why `to` may be empty. */
  private send(
    to: string[],
    noRecipient: string,
    what: Pick<Alert, 'id' | 'state'>,
    signal: AbortSignal | undefined,
    message: Omit<SendMailOptions, 'from' | 'to' | 'cc'>,
  ): Promise<DeliveryResult> {
    if (this.closed) return Promise.resolve(closedResult(this.name, this.target));
    if (to.length === 0) {
      return Promise.resolve({ channel: this.name, ok: false, attempts: 0, error: `${this.target}: no recipient (${noRecipient})`, at: new Date().toISOString(), durationMs: 0 });
    }
    return deliverWithRetries({
      channel: this.name,
      target: this.target,
      alert: what,
      retry: this.retry,
      redact: this.redact,
      signal,
      logger: this.opts.logger,
      classify: (err) => this.classify(err),
      attempt: async (_n, sig) => {
        const transport = await this.transporter();
        const info = await transport.sendMail({
          from: this.opts.from,
          to,
          ...(this.opts.cc && this.opts.cc.length > 0 ? { cc: this.opts.cc } : {}),
          ...message,
          ...(sig ? { signal: sig } : {}),
        });
        const rejected = (info.rejected ?? []).map(String);
        return `message-id ${info.messageId}; ${oneLine(info.response ?? '', 200)}${rejected.length > 0 ? `; rejected recipients: ${rejected.join(', ')}` : ''}`;
      },
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A message being sent holds its own connection (no pool): close() only releases the transport.
    (await this.transport?.catch(() => undefined))?.close();
  }

  private classify(err: unknown): DeliveryError {
    const e = (err ?? {}) as SmtpErrorFields & { message?: string; cause?: { code?: string } };
    const rc = typeof e.responseCode === 'number' ? e.responseCode : undefined;
    const socketCode = e.cause?.code ?? /\b(E[A-Z]{4,})\b/.exec(e.message ?? '')?.[1];
    let what: string;
    if (e.code === 'EAUTH') what = `authentication as ${this.opts.auth?.user ?? '(no user)'} rejected`;
    else if (e.code === 'ENOAUTH') what = 'the server requires authentication and no credentials are configured';
    else if (e.code === 'ETLS') what = !this.opts.secure && (this.opts.startTls ?? 'required') === 'required' ? 'STARTTLS is required but failed or is not offered' : 'TLS failed';
    else if (socketCode === 'ECONNREFUSED') what = 'connection refused';
    else if (e.code === 'ETIMEDOUT') what = 'timed out';
    else what = 'sending failed';
    const reply = e.response ? `: ${oneLine(e.response, 200)}` : '';
    const detail = reply || (e.message ? `: ${oneLine(e.message, 200)}` : '');
    const codes = [e.code, rc !== undefined ? `SMTP ${rc}` : undefined].filter(Boolean).join(', ');
    const message = this.redact(`${what}${detail}${codes ? ` (${codes})` : ''}`);
    // SMTP: 4xx try again later, 5xx do not (503 is a bad command sequence: a new connection can work).
    const transient = rc !== undefined ? rc < 500 || rc === 503 : TRANSIENT_MAILER_CODES.has(e.code ?? '') || TRANSIENT_SOCKET_CODES.has(socketCode ?? '');
    return new DeliveryError(message, { transient, cause: err });
  }
}

/**
 * Stable Message-IDs: the firing notice's id is the thread root; reminders and the resolution
 * answer it. A retried delivery reuses its id, so receivers can drop a duplicate.
 */
export function messageIds(alert: Alert, from: string): { messageId: string; inReplyTo?: string } {
  const domain = /@([^>\s]+)>?\s*$/.exec(from)?.[1] ?? 'backproof.invalid';
  const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 24);
  const root = `<backproof.${hash(alert.id)}@${domain}>`;
  if (alert.state === 'firing' && alert.condition !== 'recovery') return { messageId: root };
  return { messageId: `<backproof.${hash(`${alert.id}\n${alert.state}\n${alert.occurredAt}`)}@${domain}>`, inReplyTo: root };
}

/** Addresses without blanks and duplicates (case-insensitive), in order. */
function uniqueAddresses(addresses: readonly string[]): string[] {
  const seen = new Set<string>();
  return addresses.filter((a) => {
    const key = a.trim().toLowerCase();
    if (key === '' || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
