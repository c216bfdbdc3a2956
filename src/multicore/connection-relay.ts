import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Broker } from '../broker/broker.js';
import type { PeerInfo } from '../broker/connection.js';
import type { Logger } from '../broker/logger.js';
import type { ConnectionRouting } from '../broker/peers.js';
import { workerFor } from './affinity.js';
import { peekClientId } from './connect-peek.js';

export interface RelayOptions {
  index: number;
  workers: number;
  socketDir: string;
  /** Hex, from the primary: every worker's relay header carries it. */
  relaySecret: string;
  /** Read per connection: a reload may change them. */
  limits: () => { connectTimeout: number; maxPacketSize: number };
  logger: Logger;
}

/** A relayed connection's first bytes: the length of the header that follows (its listener and peer, JSON). */
const HEADER_PREFIX = 4;
const MAX_HEADER = 64 * 1024;
/** A worker sends a relay header as its first write: one that takes longer is not a worker's. */
const HEADER_TIMEOUT_MS = 5_000;

/** How long a stopping worker lets the connections it relays end from the owner's side (told why) before cutting them. */
const CLOSE_GRACE_MS = 2_000;

interface RelayHeader {
  /** The primary's secret for this broker's workers, hex: only a worker may name a client's identity. */
  secret: string;
  listener: number;
  peer: PeerInfo;
}

/** A relay header as JSON says it, checked field by field; undefined if anything is off. */
function readHeader(value: unknown, secret: Buffer): { listener: number; peer: PeerInfo } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { secret: given, listener, peer } = value as Record<string, unknown>;
  if (typeof given !== 'string' || !/^[0-9a-f]+$/.test(given)) return undefined;
  const proof = Buffer.from(given, 'hex');
  if (proof.length !== secret.length || !timingSafeEqual(proof, secret)) return undefined;
  if (!Number.isInteger(listener) || (listener as number) < 0) return undefined;
  if (typeof peer !== 'object' || peer === null) return undefined;
  const { remoteAddress, remotePort, certificate, pskIdentity } = peer as Record<string, unknown>;
  if (typeof remoteAddress !== 'string' || !Number.isInteger(remotePort)) return undefined;
  if (pskIdentity !== undefined && typeof pskIdentity !== 'string') return undefined;
  if (certificate !== undefined) {
    const c = certificate as Record<string, unknown> | null;
    if (typeof c !== 'object' || c === null || typeof c.subject !== 'string' || typeof c.fingerprint256 !== 'string') return undefined;
    if (c.commonName !== undefined && typeof c.commonName !== 'string') return undefined;
    if (c.issuer !== undefined && typeof c.issuer !== 'string') return undefined;
  }
  return { listener: listener as number, peer: peer as PeerInfo };
}

/**
 * Multi-core mode for listeners whose connections cannot be handed over as sockets (TLS, WebSocket, PROXY): the
 * primary hands each one, as it arrives, to the next worker in turn, which runs the transport (handshake, upgrade,
 * header) and reads the start of the CONNECT. A client whose identifier this worker owns is served here; any other
 * is relayed, as plain MQTT bytes over a Unix socket, to the worker that owns it, which serves it as if accepted
 * itself, with the peer's address and proven identity. The relaying worker then only copies bytes both ways, with
 * the owner's backpressure reaching the client.
 */
export class ConnectionRelay implements ConnectionRouting {
  private server: net.Server | undefined;
  private readonly relayed = new Set<net.Socket>();
  private readonly secret: Buffer;

  constructor(private readonly options: RelayOptions) {
    this.secret = Buffer.from(options.relaySecret, 'hex');
    if (this.secret.length < 16) throw new Error('multi-core: the workers\' relay secret is missing (a worker is started by its primary)');
  }

  static socketPath(dir: string, index: number): string {
    return path.join(dir, `relay${index}.sock`);
  }

  /** Accepts the connections other workers relay to this one. */
  async start(broker: Broker): Promise<void> {
    const server = net.createServer((socket) => this.receive(broker, socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ConnectionRelay.socketPath(this.options.socketDir, this.options.index), () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /**
   * Stops taking relayed connections. Those this worker relays end from their owner's side as it closes its clients
   * (told why, no will); what is left after a grace period is cut.
   */
  async close(): Promise<void> {
    const server = this.server;
    const stopped = new Promise<void>((resolve) => (server?.listening ? server.close(() => resolve()) : resolve()));
    const ended = Promise.all([...this.relayed].map((link) => new Promise<void>((resolve) => {
      if (link.destroyed) resolve();
      else link.once('close', () => resolve());
    })));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)))]);
    clearTimeout(timer);
    for (const link of this.relayed) link.destroy();
    await stopped;
  }

  route(stream: Duplex, peer: PeerInfo, listener: number, serveHere: () => void): void {
    const { connectTimeout, maxPacketSize } = this.options.limits();
    let head: Buffer = Buffer.alloc(0);
    const give = (): void => {
      cleanup();
      stream.pause();
      const peeked = peekClientId(head);
      const owner = typeof peeked === 'object' && peeked.clientId.length > 0
        ? workerFor(peeked.clientId, this.options.workers)
        : this.options.index;
      if (owner === this.options.index) {
        if (head.length > 0) stream.unshift(head);
        serveHere();
      } else {
        this.relay(stream, { listener, peer }, owner, head);
      }
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      // As in the primary: the identifier comes before the will and credentials, within the packet size limit.
      if (peekClientId(head) === 'more' && head.length < maxPacketSize + 5) return;
      give();
    };
    const gone = (): void => {
      cleanup();
      stream.destroy();
    };
    const timer = setTimeout(gone, connectTimeout * 1000);
    const cleanup = (): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', gone);
      stream.off('error', gone);
      stream.off('close', gone);
    };
    stream.on('data', onData);
    stream.once('end', gone);
    stream.once('error', gone);
    stream.once('close', gone);
  }

  /** Copies the client's stream to the owner's relay socket and back; either side closing closes the other. */
  private relay(stream: Duplex, header: Omit<RelayHeader, 'secret'>, owner: number, head: Buffer): void {
    const link = net.connect(ConnectionRelay.socketPath(this.options.socketDir, owner));
    this.relayed.add(link);
    const json = Buffer.from(JSON.stringify({ secret: this.secret.toString('hex'), ...header } satisfies RelayHeader));
    const prefix = Buffer.alloc(HEADER_PREFIX);
    prefix.writeUInt32BE(json.length);
    link.write(Buffer.concat([prefix, json, head]));
    link.on('error', (err) => this.options.logger.debug({ worker: owner, err: err.message }, 'multi-core: relay to a worker failed'));
    stream.on('error', () => link.destroy());
    // An orderly end travels through pipe() (after what was written before it); anything else cuts the other side.
    link.once('close', () => {
      this.relayed.delete(link);
      if (!link.readableEnded) stream.destroy();
    });
    stream.once('close', () => {
      if (!stream.readableEnded) link.destroy();
    });
    link.pipe(stream);
    stream.pipe(link);
  }

  /** A connection relayed by another worker: its header, then the client's MQTT bytes. */
  private receive(broker: Broker, socket: net.Socket): void {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), HEADER_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < HEADER_PREFIX) return;
      const length = buffered.readUInt32BE(0);
      if (length > MAX_HEADER) return fail();
      if (buffered.length < HEADER_PREFIX + length) return;
      let header: { listener: number; peer: PeerInfo } | undefined;
      try {
        header = readHeader(JSON.parse(buffered.toString('utf8', HEADER_PREFIX, HEADER_PREFIX + length)), this.secret);
      } catch {
        header = undefined;
      }
      if (!header) {
        this.options.logger.warn({}, 'multi-core: a connection to the relay socket without a valid header was closed (not from a worker of this broker)');
        return fail();
      }
      cleanup();
      socket.pause();
      const rest = buffered.subarray(HEADER_PREFIX + length);
      if (rest.length > 0) socket.unshift(rest);
      broker.acceptFrom(header.listener, socket, header.peer);
    };
    const fail = (): void => {
      cleanup();
      socket.destroy();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
    };
    socket.on('data', onData);
    socket.on('error', fail);
  }
}
