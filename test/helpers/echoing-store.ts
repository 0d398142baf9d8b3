import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A hostile S3-compatible store on 127.0.0.1: it lists one object (`shop.dump`) and answers HEAD,
 * then answers the GET of that object with `status` and every request header echoed in the error
 * message (Authorization with the access key id, the session token, the SSE-C key): the secrets a
 * storage server can hand back to backproof. Every other key is a NoSuchKey. The bucket `witness`
 * (an evidence witness) has no object (HEAD: 404) and echoes every other request likewise.
 */
export async function startEchoingStore(status = 403): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const modified = new Date(Date.now() - 3_600_000);
      const witness = (req.url ?? '').startsWith('/witness');
      if (witness && req.method === 'HEAD') {
        res.writeHead(404).end();
        return;
      }
      if (!witness && req.method === 'GET' && /[?&]list-type=2/.test(req.url ?? '')) {
        res.writeHead(200, { 'content-type': 'application/xml' }).end(
          `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>acme</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>` +
            `<Contents><Key>shop.dump</Key><LastModified>${modified.toISOString()}</LastModified><ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag><Size>2048</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>`,
        );
        return;
      }
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': '2048', etag: '"d41d8cd98f00b204e9800998ecf8427e"', 'last-modified': modified.toUTCString() }).end();
        return;
      }
      if (!witness && !/\/shop\.dump(\?|$)/.test(req.url ?? '')) {
        res.writeHead(404, { 'content-type': 'application/xml' }).end('<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>');
        return;
      }
      const echoed = Object.entries(req.headers)
        .map(([k, v]) => `${k}: ${String(v)}`)
        .join('; ');
      const code = status === 403 ? 'AccessDenied' : 'InternalError';
      res.writeHead(status, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>request was: ${echoed}</Message><RequestId>1</RequestId></Error>`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
