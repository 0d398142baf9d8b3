import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/**
 * A real SMTP server (smtp-server) on 127.0.0.1, requiring AUTH PLAIN or LOGIN with one user
 * and password, keeping every message it accepts (raw and parsed by mailparser).
 * STARTTLS is disabled: smtp-server's built-in certificate has expired (see NOTES.md), so
 * clients connect with `startTls: 'never'`.
 */
export interface SmtpReceiver {
  host: '127.0.0.1';
  port: number;
  messages: { raw: string; parsed: ParsedMail; envelope: { from: string; to: string[] } }[];
  /** Every AUTH attempt, the password only as whether it matched. */
  logins: { method: string; user: string; ok: boolean }[];
  /** Connections accepted so far. */
  connections(): number;
  /** The next messages' DATA is answered with these SMTP errors, one per message, in order. */
  rejectData(...replies: { code: number; message: string }[]): void;
  /** Forgets the messages received and the rejections not used yet. */
  reset(): void;
  /** Resolves once `n` messages arrived. */
  waitForMessages(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startSmtpReceiver(account: { user: string; pass: string }): Promise<SmtpReceiver> {
  const messages: SmtpReceiver['messages'] = [];
  const logins: SmtpReceiver['logins'] = [];
  const rejections: { code: number; message: string }[] = [];
  let connections = 0;
  const waiters: (() => void)[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: false,
    allowInsecureAuth: true,
    logger: false,
    socketTimeout: 10_000,
    closeTimeout: 1_000,
    onConnect(_session, callback) {
      connections++;
      callback();
    },
    onAuth(auth, _session, callback) {
      const ok = auth.username === account.user && auth.password === account.pass;
      logins.push({ method: auth.method, user: auth.username ?? '', ok });
      if (!ok) {
        callback(Object.assign(new Error('Authentication credentials invalid'), { responseCode: 535 }));
        return;
      }
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const reject = rejections.shift();
        if (reject) {
          callback(Object.assign(new Error(reject.message), { responseCode: reject.code }));
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const envelope = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
        };
        simpleParser(raw).then(
          (parsed) => {
            messages.push({ raw, parsed, envelope });
            for (const w of waiters.splice(0)) w();
            callback(null, 'Message queued');
          },
          (err: Error) => callback(err),
        );
      });
    },
  });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const port = (server.server.address() as AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    messages,
    logins,
    connections: () => connections,
    rejectData(...replies) {
      rejections.push(...replies);
    },
    reset() {
      messages.length = 0;
      rejections.length = 0;
    },
    async waitForMessages(n, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} messages, got ${messages.length}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100).unref();
        });
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback port with nothing listening (bound, then released): connecting is refused. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
