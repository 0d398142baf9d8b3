import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP server (node:http) on 127.0.0.1 that records every request and answers from a
 * programmed script: each request takes the next answer; when the script is empty it answers
 * 200 "ok". An answer can be a status with headers and body, `hang` (never answer: for client
 * timeouts) or `echo` (400 with the request's Authorization header and URL in the body: a server that leaks).
 */
export interface RecordedRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** ms since the receiver started. */
  at: number;
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang' | 'echo';

export interface HttpReceiver {
  port: number;
  /** `http://127.0.0.1:PORT` + path. */
  url(pathAndQuery?: string): string;
  requests: RecordedRequest[];
  /** Appends answers to the script. */
  answer(...answers: Answer[]): void;
  /** Drops what is left of the script and the recorded requests. */
  reset(): void;
  close(): Promise<void>;
}

export async function startHttpReceiver(): Promise<HttpReceiver> {
  const started = Date.now();
  const requests: RecordedRequest[] = [];
  let script: Answer[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() - started });
      const a = script.shift() ?? { status: 200, body: 'ok' };
      if (a === 'hang') return;
      if (a === 'echo') {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad request; you sent authorization=${req.headers.authorization ?? ''} to ${req.url ?? ''}`);
        return;
      }
      res.writeHead(a.status, { 'content-type': 'text/plain', ...a.headers }).end(a.body ?? '');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: (p = '/') => `http://127.0.0.1:${port}${p}`,
    requests,
    answer(...answers) {
      script.push(...answers);
    },
    reset() {
      script = [];
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
