import net from 'node:net';
import { closeServer, listenOn } from './server.js';

export interface TcpListenerOptions {
  host: string;
  port: number;
}

/** A plain TCP listener; hands every accepted socket to `onSocket`. */
export class TcpListener {
  private readonly server: net.Server;

  constructor(
    private readonly options: TcpListenerOptions,
    onSocket: (socket: net.Socket) => void,
  ) {
    this.server = net.createServer({ noDelay: true }, onSocket);
  }

  /** `name` is how errors name the listener (default "host:port"). */
  listen(name?: string): Promise<net.AddressInfo> {
    return listenOn(this.server, this.options.port, this.options.host, name);
  }

  /** Stops accepting; resolves once the server is closed (open sockets are the broker's to end). */
  close(): Promise<void> {
    return closeServer(this.server);
  }
}
