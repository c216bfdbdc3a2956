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
  /** Read per connection: a reload may change them. */
  limits: () => { connectTimeout: number; maxPacketSize: number };
  logger: Logger;
}

/** A relayed connection's first bytes: the length of the header that follows (its listener and peer, JSON). */
const HEADER_PREFIX = 4;
const MAX_HEADER = 64 * 1024;
/** A worker sends a relay header as its first write: one that takes longer is not a worker's. */
const HEADER_TIMEOUT_MS = 5_000;

interface RelayHeader {
  listener: number;
  peer: PeerInfo;
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

  constructor(private readonly options: RelayOptions) {}

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

  close(): Promise<void> {
    for (const socket of this.relayed) socket.destroy();
    return new Promise((resolve) => (this.server?.listening ? this.server.close(() => resolve()) : resolve()));
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
  private relay(stream: Duplex, header: RelayHeader, owner: number, head: Buffer): void {
    const link = net.connect(ConnectionRelay.socketPath(this.options.socketDir, owner));
    this.relayed.add(link);
    const json = Buffer.from(JSON.stringify(header));
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
      let header: RelayHeader;
      try {
        header = JSON.parse(buffered.toString('utf8', HEADER_PREFIX, HEADER_PREFIX + length)) as RelayHeader;
      } catch {
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
