import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type {
  ConnackPacket, ConnectPacket, Packet, ProtocolVersion, PublishPacket, QoS, WillMessage,
} from '../../src/protocol/index.js';
import { afterEach } from 'node:test';
import { delay, RawClient } from './broker.js';

/** Helpers for the connection / session / keep-alive / will integration tests. */

export interface RawConnectOptions {
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  version?: ProtocolVersion;
  protocolName?: string;
  will?: { topic: string; payload: string | Buffer; qos?: QoS; retain?: boolean };
  username?: string;
  password?: Buffer;
}

let counter = 0;
/** A client id unique within this process (at most 23 characters, so MQTT 3.1 accepts it too). */
export function uniqueId(prefix = 'c'): string {
  counter++;
  return `${prefix.slice(0, 8)}-${process.pid % 10000}-${counter}`;
}

export function buildConnect(options: RawConnectOptions = {}): ConnectPacket {
  const version = options.version ?? 4;
  const packet: ConnectPacket = {
    type: 1,
    protocolName: options.protocolName ?? (version === 3 ? 'MQIsdp' : 'MQTT'),
    protocolVersion: version,
    clean: options.clean ?? true,
    keepalive: options.keepalive ?? 0,
    clientId: options.clientId ?? uniqueId('raw'),
  };
  if (options.will) {
    const will: WillMessage = {
      topic: options.will.topic,
      payload: Buffer.isBuffer(options.will.payload) ? options.will.payload : Buffer.from(options.will.payload),
      qos: options.will.qos ?? 0,
      retain: options.will.retain ?? false,
    };
    packet.will = will;
  }
  if (options.username !== undefined) packet.username = options.username;
  if (options.password !== undefined) packet.password = options.password;
  return packet;
}

/** Opens a raw connection, sends CONNECT and returns the client with the first packet it got back. */
export async function rawConnect(port: number, options: RawConnectOptions = {}): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const version = options.version ?? 4;
  const raw = await RawClient.connect(port, version);
  raw.send(buildConnect(options), version);
  const first = await raw.nextPacket();
  assert.equal(first.type, 2, `expected CONNACK, got packet type ${first.type}`);
  return { raw, connack: first as ConnackPacket };
}

/** rawConnect that insists on CONNACK 0. */
export async function rawSession(port: number, options: RawConnectOptions = {}): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const result = await rawConnect(port, options);
  assert.equal(result.connack.returnCode, 0, `connection refused with return code ${result.connack.returnCode}`);
  return result;
}

/** Subscribes over a raw connection and waits for the SUBACK; returns its return codes. */
export async function rawSubscribe(raw: RawClient, filter: string, qos: QoS, packetId = 1): Promise<number[]> {
  raw.send({ type: 8, packetId, subscriptions: [{ filter, qos }] });
  const suback = await raw.nextPacket();
  assert.equal(suback.type, 9, `expected SUBACK, got packet type ${suback.type}`);
  assert.equal((suback as { packetId: number }).packetId, packetId);
  return (suback as { returnCodes: number[] }).returnCodes;
}

export async function nextPublish(raw: RawClient, timeoutMs = 3000): Promise<PublishPacket> {
  const p = await raw.nextPacket(timeoutMs);
  assert.equal(p.type, 3, `expected PUBLISH, got packet type ${p.type}`);
  return p as PublishPacket;
}

/** Acknowledges a PUBLISH the way a conforming receiver does (PUBACK, or PUBREC → PUBREL → PUBCOMP). */
export async function ackPublish(raw: RawClient, p: PublishPacket): Promise<void> {
  if (p.qos === 1) raw.send({ type: 4, packetId: p.packetId! });
  else if (p.qos === 2) {
    raw.send({ type: 5, packetId: p.packetId! });
    // Other PUBLISH packets may arrive before the PUBREL; they stay queued for the caller.
    await takePacket(raw, (q) => q.type === 6 && q.packetId === p.packetId, `PUBREL ${p.packetId}`);
    raw.send({ type: 7, packetId: p.packetId! });
  }
}

/** Removes and returns the first received packet matching `predicate`, leaving the others in order. */
export async function takePacket(
  raw: RawClient, predicate: (p: Packet & { packetId?: number }) => boolean, what = 'packet', timeoutMs = 3000,
): Promise<Packet> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = raw.packets.findIndex((p) => predicate(p as Packet & { packetId?: number }));
    if (i !== -1) return raw.packets.splice(i, 1)[0]!;
    if (raw.closed) throw new Error(`connection closed while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/** Asserts that nothing arrives on the raw connection for `ms` milliseconds. */
export async function expectSilence(raw: RawClient, ms: number, what = 'no packet'): Promise<void> {
  await delay(ms);
  assert.deepEqual(raw.packets.map((p: Packet) => p.type), [], `expected ${what}`);
}

export interface ReceivedMessage {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
}

/** Collects an MQTT.js client's messages so tests can await them one by one. */
export class MessageInbox {
  readonly messages: ReceivedMessage[] = [];
  private waiters: Array<() => void> = [];

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, dup: packet.dup });
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  /** The next message not yet taken; rejects after `timeoutMs`. */
  async next(timeoutMs = 3000): Promise<ReceivedMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a message');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.messages.shift()!;
  }
}

/** Ends MQTT.js clients and raw clients, ignoring ones already gone. */
export async function closeAll(clients: Array<MqttClient | RawClient | undefined>): Promise<void> {
  await Promise.all(clients.map(async (c) => {
    if (!c) return;
    if (c instanceof RawClient) c.destroy();
    else await c.endAsync(true).catch(() => {});
  }));
}

/** Registers a client to be closed after the current test; `closeNow()` closes the registered ones at once. */
export interface ClientTracker {
  <T extends MqttClient | RawClient>(client: T): T;
  closeNow(): Promise<void>;
}

/** For a describe block: clients given to the returned tracker are closed after each test, whatever its outcome. */
export function trackClients(): ClientTracker {
  let open: Array<MqttClient | RawClient> = [];
  const track = (<T extends MqttClient | RawClient>(client: T): T => {
    open.push(client);
    return client;
  }) as ClientTracker;
  track.closeNow = async () => {
    const closing = open;
    open = [];
    await closeAll(closing);
  };
  afterEach(() => track.closeNow());
  return track;
}
