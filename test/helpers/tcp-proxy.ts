import net from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of a real server, so a test can drop connections in the
 * middle of a transfer (`cut`), refuse new ones (`refuse`), and see the bytes clients sent.
 */
export interface TcpProxy {
  port: number;
  /** Destroys every open connection, both sides. */
  cut(): void;
  /** Open connections stop passing the server's bytes on (a stalled transfer); new ones work. */
  stall(): void;
  /**
   * Cuts every connection once `bytes` more have come from the server (counted across
   * connections), then, with `refuse`, turns new connections away: a server that dies mid-transfer.
   */
  cutAfter(bytes: number, opts?: { refuse?: boolean }): void;
  /** New connections are closed at once (the server looks down) until `accept()`. */
  refuse(): void;
  accept(): void;
  connections: number;
  /** Everything clients sent (request lines and headers included), for header assertions. */
  sent(): string;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const upstreams = new Map<net.Socket, net.Socket>();
  const requests: Buffer[] = [];
  let refusing = false;
  let connections = 0;
  let trip: { left: number; refuse: boolean } | undefined;
  const cutAll = (): void => {
    for (const sock of sockets) sock.destroy();
    sockets.clear();
  };
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    upstreams.set(upstream, client);
    client.on('data', (d: Buffer) => {
      if (requests.length < 10_000) requests.push(Buffer.from(d.subarray(0, 4096)));
    });
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('data', (d: Buffer) => {
      if (!trip) return;
      trip.left -= d.length;
      if (trip.left > 0) return;
      if (trip.refuse) refusing = true;
      trip = undefined;
      setImmediate(cutAll);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      upstreams.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: cutAll,
    cutAfter(bytes, opts = {}) {
      trip = { left: bytes, refuse: opts.refuse ?? false };
    },
    stall() {
      for (const [upstream, client] of upstreams) {
        upstream.unpipe(client);
        upstream.pause();
      }
      upstreams.clear();
    },
    refuse() {
      refusing = true;
    },
    accept() {
      refusing = false;
    },
    get connections() {
      return connections;
    },
    sent() {
      return Buffer.concat(requests).toString('latin1');
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
