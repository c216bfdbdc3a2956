import { once } from 'node:events';
import net from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createBroker, type Broker, type BrokerOptions } from '../../src/index.js';
import {
  encodePacket, PacketDecoder, type Packet, type ProtocolError, type ProtocolVersion,
} from '../../src/protocol/index.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** A broker on a random loopback port, $SYS off unless asked for. */
export async function startBroker(options: BrokerOptions = {}): Promise<TestBroker> {
  const broker = createBroker({ sysInterval: 0, listeners: [{ host: '127.0.0.1', port: 0 }], ...options });
  const [address] = await broker.listen();
  const port = address!.port;
  return { broker, port, url: `mqtt://127.0.0.1:${port}`, close: () => broker.close() };
}

/** An MQTT.js client that has received its CONNACK; no automatic reconnects. */
export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `predicate` holds, polling every 10 ms; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/**
 * A client speaking raw MQTT over a socket, for the cases a client library
 * cannot produce (malformed packets, protocol violations, exact byte checks).
 */
export class RawClient {
  readonly packets: Packet[] = [];
  decodeError: ProtocolError | undefined;
  closed = false;
  private readonly decoder = new PacketDecoder();
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      const err = this.decoder.push(chunk, (p) => {
        this.packets.push(p);
        return true;
      });
      if (err) this.decodeError = err;
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  /** `localAddress`: another loopback source address (127.0.0.x) to look like a different machine. */
  static async connect(port: number, version: ProtocolVersion = 4, localAddress?: string): Promise<RawClient> {
    const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress && { localAddress }) });
    await once(socket, 'connect');
    const client = new RawClient(socket);
    client.decoder.version = version;
    return client;
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  send(packet: Packet, version: ProtocolVersion = 4): void {
    this.socket.write(encodePacket(packet, version));
  }

  sendBytes(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  /** Sends CONNECT and waits for CONNACK; returns the CONNACK. */
  async handshake(options: { clientId?: string; clean?: boolean; keepalive?: number; version?: ProtocolVersion } = {}): Promise<Packet> {
    const version = options.version ?? 4;
    this.send({
      type: 1,
      protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clean: options.clean ?? true,
      keepalive: options.keepalive ?? 0,
      clientId: options.clientId ?? `raw-${Math.random().toString(36).slice(2)}`,
    }, version);
    return this.nextPacket();
  }

  /** Waits for the next packet not yet taken; rejects on timeout or close. */
  async nextPacket(timeoutMs = 3000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    while (this.packets.length === 0) {
      if (this.closed) throw new Error('connection closed while waiting for a packet');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a packet');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.packets.shift()!;
  }

  /** Resolves true once the broker has closed the connection, false after `timeoutMs`. */
  async waitClosed(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
