import net from 'node:net';

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

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** Stops accepting; resolves once the server is closed (open sockets are the broker's to end). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }
}
