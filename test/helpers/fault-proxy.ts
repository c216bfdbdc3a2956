import net from 'node:net';

/**
 * A TCP relay between a process under test and a real server, for network faults no server can be asked for: the
 * replies on chosen connections vanish (the server did the work; the client never hears of it), then those
 * connections are cut as a failing network would, and the client reconnects through the relay.
 */
export interface FaultProxy {
  port: number;
  /** Connections whose client has sent `marker` so far (a Redis connection's name, say). */
  connectionsSending(marker: string): RelayedConnection[];
  close(): Promise<void>;
}

export interface RelayedConnection {
  /** From now on the server's bytes are dropped, not passed on. */
  swallowReplies(): void;
  /** Both sides closed at once, nothing more passed on. */
  cut(): void;
}

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  const connections = new Set<{ sent: string; relay: RelayedConnection }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    let swallowing = false;
    const record = {
      sent: '',
      relay: {
        swallowReplies: () => { swallowing = true; },
        cut: () => { client.destroy(); upstream.destroy(); },
      },
    };
    connections.add(record);
    client.on('data', (bytes: Buffer) => {
      if (record.sent.length < 4096) record.sent += bytes.toString('latin1');
      upstream.write(bytes);
    });
    upstream.on('data', (bytes: Buffer) => { if (!swallowing) client.write(bytes); });
    const end = (): void => {
      connections.delete(record);
      record.relay.cut();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connectionsSending: (marker) => [...connections].filter((c) => c.sent.includes(marker)).map((c) => c.relay),
    close: async () => {
      for (const { relay } of connections) relay.cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
