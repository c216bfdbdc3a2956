import { lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';

/** Where a listener binds: a TCP address, or the path of a Unix domain socket. */
export type Endpoint = { host: string; port: number } | { path: string };

/** "host:port", or the socket's path. */
export function endpointName(endpoint: Endpoint): string {
  return 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
}

/** Why a listener could not be bound, in words; `code` keeps the system's error code. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  constructor(readonly listener: string, readonly code: string | undefined, problem: string) {
    super(`listener ${listener}: ${problem}`);
  }
}

function explain(err: NodeJS.ErrnoException, endpoint: Endpoint): string {
  const where = endpointName(endpoint);
  const port = 'port' in endpoint ? endpoint.port : undefined;
  switch (err.code) {
    case 'EADDRINUSE': return port === undefined
      ? `cannot listen on ${where}: another process is serving that socket`
      : `cannot listen on ${where}: the port is already in use by another process`;
    case 'EACCES': return `cannot listen on ${where}: permission denied${port !== undefined && port < 1024 ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}`;
    case 'ENOENT': return `cannot listen on ${where}: its directory does not exist`;
    case 'EADDRNOTAVAIL': return `cannot listen on ${where}: this machine has no such address`;
    case 'ENOTFOUND': case 'EAI_AGAIN': return `cannot listen on ${where}: the host name does not resolve`;
    default: return `cannot listen on ${where}: ${err.message}`;
  }
}

/**
 * Binds a server; rejects with a ListenError if the endpoint cannot be bound. A Unix domain socket left behind by a
 * process that ended without removing it is replaced; one another process still serves is not.
 */
export async function listenOn(server: net.Server, endpoint: Endpoint, name = endpointName(endpoint)): Promise<{ address: string; port: number }> {
  if ('path' in endpoint && await isStaleSocket(endpoint.path)) unlinkSync(endpoint.path);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(new ListenError(name, err.code, explain(err, endpoint)));
    server.once('error', onError);
    const bound = (): void => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'string' || address === null ? { address: address ?? '', port: 0 } : address);
    };
    if ('path' in endpoint) server.listen(endpoint.path, bound);
    else server.listen(endpoint.port, endpoint.host, bound);
  });
}

/** A socket file nobody accepts on (its server is gone); false for anything else, which binding then reports. */
function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!lstatSync(path).isSocket()) return Promise.resolve(false);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** Stops accepting; resolves once the server is closed (open sockets are the broker's to end). */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
