import net from 'node:net';
import { readProxyHeader } from './proxy-protocol.js';
import { closeServer, listenOn, type Endpoint } from './server.js';

/** Who is at the other end, as far as the transport knows: the client's address and port. */
export interface PeerAddress {
  remoteAddress: string;
  remotePort: number;
}

/**
 * The second half of every listener: it takes a connected socket (accepted by this process's `Acceptor`, or handed
 * over by the multi-core primary) through the transport's handshake (none, TLS, an HTTP upgrade) and hands on a
 * stream of MQTT bytes with the peer's identity. `origin` is the client's address when a stage before the transport
 * learnt it (a PROXY header); otherwise the socket's own.
 */
export interface Transport {
  adopt(socket: net.Socket, origin?: PeerAddress): void;
  /** Stops the transport's own servers; streams already handed on are the broker's to end. */
  close(): Promise<void>;
}

/** The address and port learnt before the transport (`origin`), else the socket's own ('' if it has none: closed). */
export function socketAddress(socket: net.Socket, origin?: PeerAddress): PeerAddress {
  return origin ?? { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 };
}

/** How a client of a Unix domain socket listener is named (it has no address): the socket's path. */
export function unixPeer(path: string): PeerAddress {
  return { remoteAddress: `unix:${path}`, remotePort: 0 };
}

/**
 * The first half of a listener: a bound socket (TCP, or a Unix domain socket path) whose connections go to
 * `onSocket`. Multi-core mode binds these in the primary only.
 */
export class Acceptor {
  private readonly server: net.Server;

  constructor(private readonly endpoint: Endpoint, onSocket: (socket: net.Socket) => void) {
    this.server = net.createServer({ noDelay: true }, onSocket);
  }

  listen(name?: string): Promise<{ address: string; port: number }> {
    return listenOn(this.server, this.endpoint, name);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}

export interface ProxyStageOptions {
  /** The balancers allowed to send a header; absent: anyone who reaches the listener. */
  trusted?: (address: string) => boolean;
  /** How long a connection has for its header (the CONNECT timeout: read when each connection arrives). */
  timeoutMs: () => number;
  refused: (socket: net.Socket, why: string) => void;
}

/**
 * A listener behind a load balancer: every connection starts with a PROXY protocol header naming the client, read
 * before the transport's own handshake (TLS, WebSocket) starts; the client's address goes on as `origin`.
 */
export function proxyStage(options: ProxyStageOptions, next: (socket: net.Socket, origin: PeerAddress) => void): (socket: net.Socket) => void {
  return (socket) => {
    if (options.trusted && !options.trusted(socket.remoteAddress ?? '')) {
      socket.destroy();
      options.refused(socket, 'not from a trusted proxy');
      return;
    }
    readProxyHeader(socket, options.timeoutMs(), (origin) => next(socket, origin), (why) => options.refused(socket, why));
  };
}
