import type net from 'node:net';

/** Why a listener could not be bound, in words; `code` keeps the system's error code. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  constructor(readonly listener: string, readonly code: string | undefined, problem: string) {
    super(`listener ${listener}: ${problem}`);
  }
}

function explain(err: NodeJS.ErrnoException, host: string, port: number): string {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE': return `cannot listen on ${where}: the port is already in use by another process`;
    case 'EACCES': return `cannot listen on ${where}: permission denied${port < 1024 ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}`;
    case 'EADDRNOTAVAIL': return `cannot listen on ${where}: this machine has no such address`;
    case 'ENOTFOUND': case 'EAI_AGAIN': return `cannot listen on ${where}: the host name does not resolve`;
    default: return `cannot listen on ${where}: ${err.message}`;
  }
}

/** Binds a server (plain or TLS); rejects with a ListenError if the address cannot be bound. */
export function listenOn(server: net.Server, port: number, host: string, name = `${host}:${port}`): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(new ListenError(name, err.code, explain(err, host, port)));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}

/** Stops accepting; resolves once the server is closed (open sockets are the broker's to end). */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
