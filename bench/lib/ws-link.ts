import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import WebSocket from 'ws';

/**
 * MQTT over WebSockets for the load generator and the readiness probe: a client WebSocket (the `ws` package;
 * subprotocol "mqtt", binary frames, no compression) seen through the few methods of net.Socket the generator
 * calls, so the TCP path keeps calling its socket directly. What is written in one run of JavaScript (one read's
 * acknowledgements, a publisher's batch) leaves as one binary frame at the next microtask checkpoint, as it
 * leaves in one write on TCP; a frame holding several MQTT packets is allowed by section 6 of the specifications.
 * Frames are masked with random keys, as a browser's are (a zero key would let the servers built on `ws` skip
 * unmasking).
 */

/** The URL path the benchmark's brokers serve MQTT over WebSockets on (MQTT.js's default). */
export const WS_PATH = '/mqtt';

/** What the load generator needs of a connection: a net.Socket is one as it is, a WebSocket through WebSocketLink. */
export interface Link {
  /** False once the bytes waiting to be sent pass the socket's high-water mark ('drain' follows). */
  write(data: Buffer): boolean;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
  /** Sends the last bytes, then closes. */
  end(data: Buffer): unknown;
}

type Listener = ((chunk: Buffer) => void) | ((err: Error) => void);

export class WebSocketLink implements Link {
  /** Bytes written since the last frame left. */
  private pending: Buffer[] = [];

  private constructor(
    private readonly ws: WebSocket,
    /** The TCP socket under the WebSocket: its buffer is the backpressure, as on the TCP path. */
    private readonly socket: net.Socket,
  ) {}

  /** Opens `ws://host:port/mqtt` with the subprotocol "mqtt"; rejects on a refused connection or upgrade. */
  static open(port: number, host: string): Promise<WebSocketLink> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${host}:${port}${WS_PATH}`, 'mqtt', { perMessageDeflate: false, handshakeTimeout: 10_000 });
      let socket: net.Socket | undefined;
      ws.once('upgrade', (response: IncomingMessage) => (socket = response.socket as net.Socket));
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        if (ws.protocol !== 'mqtt') {
          ws.terminate();
          reject(new Error(`the server chose the subprotocol "${ws.protocol}", not "mqtt"`));
        } else resolve(new WebSocketLink(ws, socket!));
      });
    });
  }

  /** Queues `data` for the frame of this turn; false while the socket is past its high-water mark ('drain' follows). */
  write(data: Buffer): boolean {
    if (this.pending.push(data) === 1) queueMicrotask(this.flush);
    return !this.socket.writableNeedDrain;
  }

  private readonly flush = (): void => {
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    this.ws.send(pending.length === 1 ? pending[0]! : Buffer.concat(pending), { binary: true });
  };

  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'data' | 'error', listener: Listener): this {
    // With the default binaryType every message is one Buffer (a fragmented one joined).
    if (event === 'data') this.ws.on('message', listener as (data: WebSocket.RawData) => void);
    else this.ws.on('error', listener as (err: Error) => void);
    return this;
  }

  off(event: 'data', listener: (chunk: Buffer) => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
  off(event: 'data' | 'error', listener: Listener): this {
    if (event === 'data') this.ws.off('message', listener as (data: WebSocket.RawData) => void);
    else this.ws.off('error', listener as (err: Error) => void);
    return this;
  }

  once(event: 'drain', listener: () => void): this {
    this.socket.once(event, listener);
    return this;
  }

  end(data: Buffer): void {
    this.pending.push(data);
    this.flush();
    this.ws.close(1000);
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.ws.terminate();
  }
}
