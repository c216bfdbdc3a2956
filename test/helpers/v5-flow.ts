/**
 * Helpers for the MQTT 5 message-flow integration tests (test/broker/v5/
 * publish, subscribe, shared, mixed): raw MQTT 5 clients with CONNECT
 * properties, packet pickers that leave other packets queued, a PINGREQ
 * barrier, and an MQTT.js collector that keeps packet properties.
 */
import assert from 'node:assert/strict';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import type {
  AckPacket, ConnackPacket, ConnectPacket, DisconnectPacket, Packet, Properties, ProtocolVersion, PublishPacket, QoS,
  SubackPacket, SubscriptionRequest, UnsubackPacket, WillMessage,
} from '../../src/protocol/index.js';
import { connectClient, delay, RawClient } from './broker.js';

import {
  CONNACK, CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
} from './integration.js';
export {
  CONNACK, CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
} from './integration.js';

/** MQTT 5 reason codes used by these tests, typed out from the specification (section 2.4). */
export const RC = {
  Success: 0x00,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  UnspecifiedError: 0x80,
  ProtocolError: 0x82,
  NotAuthorized: 0x87,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PayloadFormatInvalid: 0x99,
} as const;

let counter = 0;
/** A client id unique within this process (at most 23 characters, so MQTT 3.1 accepts it too). */
export function uid(prefix = 'v5'): string {
  counter++;
  return `${prefix.slice(0, 6)}-${process.pid % 100000}-${counter}`;
}

export interface RawConnectOptions {
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  /** Protocol level: 5 (default), 4 (3.1.1) or 3 (3.1). */
  version?: ProtocolVersion;
  /** CONNECT properties (MQTT 5 only). */
  properties?: Properties;
  will?: WillMessage;
}

/** Opens a raw connection at the given level, sends CONNECT and returns the first packet back (CONNACK). */
export async function rawConnect(port: number, options: RawConnectOptions = {}): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const version = options.version ?? 5;
  const raw = await RawClient.connect(port, version);
  const packet: ConnectPacket = {
    type: CONNECT,
    protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clean: options.clean ?? true,
    keepalive: options.keepalive ?? 0,
    clientId: options.clientId ?? uid('raw'),
  };
  if (options.properties && version === 5) packet.properties = options.properties;
  if (options.will) packet.will = options.will;
  raw.send(packet, version);
  const first = await raw.nextPacket();
  assert.equal(first.type, CONNACK, `expected CONNACK, got ${JSON.stringify(describe(first))}`);
  return { raw, connack: first as ConnackPacket };
}

/** rawConnect that insists on a successful CONNACK; returns the client. */
export async function rawClient(port: number, options: RawConnectOptions = {}): Promise<RawClient> {
  const { raw, connack } = await rawConnect(port, options);
  assert.equal(connack.returnCode, 0, `CONNACK refused with 0x${connack.returnCode.toString(16)}`);
  return raw;
}

/** A JSON-friendly view of a packet for assertion messages. */
export function describe(p: Packet): unknown {
  if (p.type === PUBLISH) {
    const pub = p as PublishPacket;
    return {
      type: 'PUBLISH', topic: pub.topic, qos: pub.qos, retain: pub.retain, dup: pub.dup, packetId: pub.packetId,
      payload: pub.payload.length > 64 ? `<${pub.payload.length} bytes>` : pub.payload.toString(), properties: pub.properties,
    };
  }
  return p;
}

/** Removes and returns the first received packet matching `predicate`, leaving the others queued in order. */
export async function takePacket<T = Packet>(
  raw: RawClient, predicate: (p: Packet) => boolean, what = 'packet', timeoutMs = 3000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = raw.packets.findIndex(predicate);
    if (i !== -1) return raw.packets.splice(i, 1)[0] as T;
    if (raw.closed) throw new Error(`connection closed while waiting for ${what}; queued: ${JSON.stringify(raw.packets.map(describe))}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; queued: ${JSON.stringify(raw.packets.map(describe))}`);
    await delay(5);
  }
}

export function takeType<T = Packet>(raw: RawClient, type: number, what = `packet type ${type}`, timeoutMs = 3000): Promise<T> {
  return takePacket<T>(raw, (p) => p.type === type, what, timeoutMs);
}

export function takePublish(raw: RawClient, timeoutMs = 3000): Promise<PublishPacket> {
  return takeType<PublishPacket>(raw, PUBLISH, 'PUBLISH', timeoutMs);
}

/** The acknowledgement of the given type for a packet id. */
export function takeAck(raw: RawClient, type: number, packetId: number, timeoutMs = 3000): Promise<AckPacket<number>> {
  return takePacket<AckPacket<number>>(
    raw, (p) => p.type === type && (p as AckPacket<number>).packetId === packetId, `ack type ${type} for id ${packetId}`, timeoutMs,
  );
}

/**
 * PINGREQ → PINGRESP: once the answer is in, everything the broker wrote to this
 * connection before handling the PINGREQ has arrived too (one ordered TCP stream).
 */
export async function barrier(raw: RawClient, version: ProtocolVersion = 5): Promise<void> {
  raw.send({ type: PINGREQ }, version);
  await takeType(raw, PINGRESP, 'PINGRESP');
}

/** Asserts that no PUBLISH is queued on the raw client after a barrier and a short pause. */
export async function expectNoPublish(raw: RawClient, what: string, version: ProtocolVersion = 5, pauseMs = 50): Promise<void> {
  await barrier(raw, version);
  await delay(pauseMs);
  const publishes = raw.packets.filter((p) => p.type === PUBLISH);
  assert.deepEqual(publishes.map(describe), [], what);
}

export interface OutgoingPublish {
  topic: string;
  payload?: string | Buffer;
  qos?: QoS;
  retain?: boolean;
  dup?: boolean;
  packetId?: number;
  properties?: Properties;
}

let nextPacketId = 1;
function freshPacketId(): number {
  nextPacketId = nextPacketId >= 60000 ? 1 : nextPacketId + 1;
  return nextPacketId;
}

/** Sends a PUBLISH; returns the packet id used (for QoS > 0). */
export function sendPublish(raw: RawClient, m: OutgoingPublish, version: ProtocolVersion = 5): number | undefined {
  const qos = m.qos ?? 0;
  const packet: PublishPacket = {
    type: PUBLISH,
    dup: m.dup ?? false,
    qos,
    retain: m.retain ?? false,
    topic: m.topic,
    payload: Buffer.isBuffer(m.payload) ? m.payload : Buffer.from(m.payload ?? ''),
  };
  if (qos > 0) packet.packetId = m.packetId ?? freshPacketId();
  if (m.properties) packet.properties = m.properties;
  raw.send(packet, version);
  return packet.packetId;
}

/**
 * Publishes at QoS 1 or 2 and returns the broker's PUBACK or PUBREC. With
 * `complete` (default true) a QoS 2 flow is finished with PUBREL/PUBCOMP when
 * the PUBREC is a success.
 */
export async function publishAcked(
  raw: RawClient, m: OutgoingPublish & { qos: 1 | 2 }, options: { complete?: boolean; version?: ProtocolVersion } = {},
): Promise<AckPacket<number>> {
  const version = options.version ?? 5;
  const packetId = sendPublish(raw, m, version)!;
  const ack = await takeAck(raw, m.qos === 1 ? PUBACK : PUBREC, packetId);
  if (m.qos === 2 && (options.complete ?? true) && (ack.reasonCode ?? 0) < 0x80) {
    raw.send({ type: PUBREL, packetId }, version);
    await takeAck(raw, PUBCOMP, packetId);
  }
  return ack;
}

/** Acknowledges a received PUBLISH like a conforming client (PUBACK, or PUBREC → PUBREL → PUBCOMP). */
export async function ackPublish(raw: RawClient, p: PublishPacket, version: ProtocolVersion = 5): Promise<void> {
  if (p.qos === 1) raw.send({ type: PUBACK, packetId: p.packetId! }, version);
  else if (p.qos === 2) {
    raw.send({ type: PUBREC, packetId: p.packetId! }, version);
    await takeAck(raw, PUBREL, p.packetId!);
    raw.send({ type: PUBCOMP, packetId: p.packetId! }, version);
  }
}

let nextSubscribeId = 1;
function freshSubscribeId(): number {
  nextSubscribeId = nextSubscribeId >= 60000 ? 1 : nextSubscribeId + 1;
  return nextSubscribeId;
}

/** SUBSCRIBE (with an optional Subscription Identifier); returns the SUBACK codes after checking its packet id. */
export async function subscribe(
  raw: RawClient, subs: string | SubscriptionRequest | SubscriptionRequest[],
  options: { qos?: QoS; subscriptionIdentifier?: number; version?: ProtocolVersion } = {},
): Promise<number[]> {
  const list: SubscriptionRequest[] = typeof subs === 'string' ? [{ filter: subs, qos: options.qos ?? 0 }] : Array.isArray(subs) ? subs : [subs];
  const packetId = freshSubscribeId();
  const properties = options.subscriptionIdentifier === undefined ? undefined : { subscriptionIdentifiers: [options.subscriptionIdentifier] };
  raw.send({ type: SUBSCRIBE, packetId, subscriptions: list, ...(properties ? { properties } : {}) }, options.version ?? 5);
  const suback = await takePacket<SubackPacket>(
    raw, (p) => p.type === SUBACK && (p as SubackPacket).packetId === packetId, `SUBACK ${packetId}`,
  );
  return suback.returnCodes;
}

/** UNSUBSCRIBE; returns the UNSUBACK reason codes (MQTT 5) after checking its packet id. */
export async function unsubscribe(raw: RawClient, filters: string | string[], version: ProtocolVersion = 5): Promise<number[] | undefined> {
  const packetId = freshSubscribeId();
  raw.send({ type: UNSUBSCRIBE, packetId, filters: typeof filters === 'string' ? [filters] : filters }, version);
  const unsuback = await takePacket<UnsubackPacket>(
    raw, (p) => p.type === UNSUBACK && (p as UnsubackPacket).packetId === packetId, `UNSUBACK ${packetId}`,
  );
  return unsuback.reasonCodes;
}

/** Waits for the broker's DISCONNECT, checks its reason code, and that the connection then closes. */
export async function expectDisconnect(raw: RawClient, reasonCode: number, what: string): Promise<void> {
  let packet: DisconnectPacket;
  try {
    packet = await takeType<DisconnectPacket>(raw, DISCONNECT, 'DISCONNECT');
  } catch (err) {
    assert.fail(`${what}: expected DISCONNECT 0x${reasonCode.toString(16)}, got none (${(err as Error).message})`);
  }
  assert.equal(packet.reasonCode ?? 0, reasonCode,
    `${what}: DISCONNECT reason 0x${(packet.reasonCode ?? 0).toString(16)}, expected 0x${reasonCode.toString(16)}`);
  assert.equal(await raw.waitClosed(3000), true, `${what}: connection closed after the DISCONNECT`);
}

// ---------------------------------------------------------------- MQTT.js

/** An MQTT.js MQTT 5 client with a unique client id, connected (reconnectPeriod 0). */
export function mqtt5(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return connectClient(url, { protocolVersion: 5, clientId: uid('js'), ...options });
}

export interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
  properties: IPublishPacket['properties'];
}

/** Collects an MQTT.js client's messages with their properties. */
export class Inbox {
  readonly messages: Received[] = [];

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({
        topic, payload: Buffer.from(payload), qos: packet.qos, retain: packet.retain, dup: packet.dup, properties: packet.properties,
      });
    });
  }

  payloads(): string[] {
    return this.messages.map((m) => m.payload.toString());
  }

  /** Resolves once at least `n` messages are in; rejects after `timeoutMs` with what did arrive. */
  async waitCount(n: number, timeoutMs = 3000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} messages, got ${JSON.stringify(this.payloads())}`);
      await delay(5);
    }
    return this.messages;
  }
}

// ---------------------------------------------------------------- cleanup

export { trackClients, type ClientTracker } from './connection.js';
