/**
 * Helpers for the MQTT 5 connection-level integration tests (test/broker/v5/
 * connect, session, will, auth): raw level-5 clients with CONNECT properties
 * and wills, packet expectations whose failures say what did arrive (or what
 * the client-side decoder refused), and a per-file client tracker.
 */
import assert from 'node:assert/strict';
import { afterEach } from 'node:test';
import type {
  ConnackPacket, DisconnectPacket, Packet, Properties, PublishPacket, QoS, SubackPacket,
  SubscriptionRequest, WillMessage,
} from '../../src/protocol/index.js';
import { delay, RawClient } from './broker.js';

/** Packet types (MQTT 5.0 section 2.1.2), typed out from the specification. */
export const T = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
} as const;

const TYPE_NAMES = ['reserved', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE',
  'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH'];

let counter = 0;
/** A client id unique within this process. */
export function uid(prefix = 'v5'): string {
  counter++;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Registers raw clients and destroys them after every test of the file. */
export function trackRaw(): (raw: RawClient) => RawClient {
  let list: RawClient[] = [];
  afterEach(() => {
    for (const raw of list) raw.destroy();
    list = [];
  });
  return (raw) => {
    list.push(raw);
    return raw;
  };
}

export interface V5ConnectOptions {
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  properties?: Properties;
  will?: WillMessage;
  username?: string;
  password?: Buffer;
}

/** Sends an MQTT 5 CONNECT (protocol level 5). */
export function sendConnect(raw: RawClient, o: V5ConnectOptions = {}): void {
  raw.send({
    type: T.CONNECT,
    protocolName: 'MQTT',
    protocolVersion: 5,
    clean: o.clean ?? true,
    keepalive: o.keepalive ?? 0,
    clientId: o.clientId ?? uid('raw5'),
    ...(o.properties ? { properties: o.properties } : {}),
    ...(o.will ? { will: o.will } : {}),
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
  }, 5);
}

/** A JSON-friendly view of a packet for assertion messages. */
export function show(p: Packet): string {
  const { type, ...rest } = p as Packet & Record<string, unknown>;
  return JSON.stringify({ type: TYPE_NAMES[type], ...rest }, (_k, v: unknown) => {
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') {
      return `<${Buffer.from((v as { data: number[] }).data).toString('hex')}>`;
    }
    return v;
  });
}

/** The next packet, or an error that tells whether the connection closed or our decoder refused a packet. */
export async function next(raw: RawClient, timeoutMs = 3000): Promise<Packet> {
  try {
    return await raw.nextPacket(timeoutMs);
  } catch (err) {
    const why = raw.decodeError ? `; the client decoder refused a packet from the broker: ${raw.decodeError.message}` : '';
    throw new Error(`${(err as Error).message}${why}`);
  }
}

/** Waits for the next packet and checks its type. */
export async function expectType<P extends Packet>(raw: RawClient, type: number, timeoutMs = 3000): Promise<P> {
  const p = await next(raw, timeoutMs);
  assert.equal(p.type, type, `expected ${TYPE_NAMES[type]}, got ${show(p)}`);
  return p as P;
}

/** Opens a level-5 raw client, sends CONNECT and returns the first packet (normally CONNACK). */
export async function connectV5(port: number, o: V5ConnectOptions = {}): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const raw = await RawClient.connect(port, 5);
  sendConnect(raw, o);
  const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
  return { raw, connack };
}

/** Like connectV5, asserting reason code 0x00 (Success). */
export async function connectedV5(port: number, o: V5ConnectOptions = {}): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const r = await connectV5(port, o);
  assert.equal(r.connack.returnCode, 0x00, `CONNACK reason code: ${show(r.connack)}`);
  return r;
}

/**
 * The broker refuses the connection: CONNACK with `reasonCode`, Session Present 0
 * [MQTT-3.2.2-6], then the connection is closed [MQTT-3.2.2-7].
 */
export async function expectRefusal(raw: RawClient, connack: ConnackPacket, reasonCode: number): Promise<void> {
  assert.equal(connack.returnCode, reasonCode, `CONNACK reason code: ${show(connack)}`);
  assert.equal(connack.sessionPresent, false, 'Session Present 0 with a non-zero reason code [MQTT-3.2.2-6]');
  assert.equal(await raw.waitClosed(3000), true, 'connection closed after a refusal [MQTT-3.2.2-7]');
}

/**
 * The broker sends DISCONNECT with `reasonCode` and closes the connection. A server
 * DISCONNECT never carries a Session Expiry Interval [MQTT-3.14.2-2].
 */
export async function expectDisconnect(raw: RawClient, reasonCode: number, timeoutMs = 3000): Promise<DisconnectPacket> {
  const p = await expectType<DisconnectPacket>(raw, T.DISCONNECT, timeoutMs);
  assert.equal(p.reasonCode ?? 0, reasonCode,
    `DISCONNECT reason code 0x${(p.reasonCode ?? 0).toString(16)}, expected 0x${reasonCode.toString(16)}: ${show(p)}`);
  assert.equal(p.properties?.sessionExpiryInterval, undefined, 'no Session Expiry Interval on a server DISCONNECT [MQTT-3.14.2-2]');
  assert.equal(await raw.waitClosed(3000), true, 'connection closed after DISCONNECT');
  return p;
}

/** Asserts that nothing arrives (and nothing undecodable) for `ms` milliseconds. */
export async function expectNothing(raw: RawClient, ms: number, what = 'no packet'): Promise<void> {
  await delay(ms);
  assert.deepEqual(raw.packets.map(show), [], what);
  assert.equal(raw.decodeError, undefined, 'no undecodable packet');
}

let nextPacketId = 5000;
export function packetId(): number {
  nextPacketId = nextPacketId >= 65_000 ? 5000 : nextPacketId + 1;
  return nextPacketId;
}

/** SUBSCRIBE and its SUBACK (packet id checked). */
export async function subscribe(
  raw: RawClient, subs: Array<SubscriptionRequest> | string, qos: QoS = 1, properties?: Properties,
): Promise<SubackPacket> {
  const list = typeof subs === 'string' ? [{ filter: subs, qos }] : subs;
  const id = packetId();
  raw.send({ type: T.SUBSCRIBE, packetId: id, subscriptions: list, ...(properties ? { properties } : {}) }, 5);
  const suback = await expectType<SubackPacket>(raw, T.SUBACK);
  assert.equal(suback.packetId, id, 'SUBACK packet id');
  return suback;
}

/** Sends a PUBLISH; returns its packet id (QoS > 0). */
export function publish(
  raw: RawClient, topic: string, payload: string | Buffer, qos: QoS = 0,
  o: { retain?: boolean; properties?: Properties; packetId?: number } = {},
): number | undefined {
  const id = qos > 0 ? (o.packetId ?? packetId()) : undefined;
  raw.send({
    type: T.PUBLISH,
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos,
    retain: o.retain ?? false,
    dup: false,
    ...(id !== undefined ? { packetId: id } : {}),
    ...(o.properties ? { properties: o.properties } : {}),
  }, 5);
  return id;
}

/** A QoS 1 PUBLISH and its PUBACK; returns the PUBACK. */
export async function publishAcked(
  raw: RawClient, topic: string, payload: string | Buffer, o: { retain?: boolean; properties?: Properties } = {},
): Promise<{ packetId: number; reasonCode?: number; properties?: Properties }> {
  const id = publish(raw, topic, payload, 1, o)!;
  const ack = await expectType<{ type: 4; packetId: number; reasonCode?: number; properties?: Properties }>(raw, T.PUBACK);
  assert.equal(ack.packetId, id, 'PUBACK packet id');
  return ack;
}

/** Waits for a PUBLISH and acknowledges it (QoS 1: PUBACK). */
export async function expectPublish(raw: RawClient, timeoutMs = 3000): Promise<PublishPacket> {
  const p = await expectType<PublishPacket>(raw, T.PUBLISH, timeoutMs);
  if (p.qos === 1) raw.send({ type: T.PUBACK, packetId: p.packetId! }, 5);
  return p;
}

/** A graceful DISCONNECT (reason 0x00 unless given) and the broker closing the connection. */
export async function disconnect(raw: RawClient, reasonCode = 0x00, properties?: Properties): Promise<void> {
  raw.send({ type: T.DISCONNECT, reasonCode, ...(properties ? { properties } : {}) }, 5);
  assert.equal(await raw.waitClosed(3000), true, 'broker closes the connection after DISCONNECT [MQTT-3.14.4-2]');
}

/** PINGREQ → PINGRESP: everything the broker sent before it has arrived. */
export async function ping(raw: RawClient): Promise<void> {
  raw.send({ type: T.PINGREQ }, 5);
  await expectType(raw, T.PINGRESP);
}

