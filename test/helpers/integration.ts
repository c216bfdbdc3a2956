/**
 * Helpers for the broker integration tests (qos, retained, sys, limits, api):
 * raw-client shortcuts and MQTT.js message collectors.
 */
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MqttClient } from 'mqtt';
import type { Packet, PublishPacket, QoS, SubackPacket } from '../../src/protocol/index.js';
import { delay, RawClient, waitFor } from './broker.js';

export const CONNECT = 1;
export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;
export const SUBSCRIBE = 8;
export const SUBACK = 9;
export const UNSUBSCRIBE = 10;
export const UNSUBACK = 11;
export const PINGREQ = 12;
export const PINGRESP = 13;
export const DISCONNECT = 14;

let counter = 0;
/** A client id unique within this process. */
export function uniqueId(prefix = 'c'): string {
  counter++;
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A raw client that has completed CONNECT/CONNACK with return code 0. */
export async function rawConnected(
  port: number,
  options: { clientId?: string; clean?: boolean; keepalive?: number } = {},
): Promise<RawClient> {
  const raw = await RawClient.connect(port);
  const connack = await raw.handshake({ clientId: options.clientId ?? uniqueId('raw'), clean: options.clean ?? true, keepalive: options.keepalive ?? 0 });
  assert.equal(connack.type, CONNACK);
  assert.equal((connack as { returnCode: number }).returnCode, 0, 'CONNACK return code');
  return raw;
}

/** Waits for the next packet and checks its type. */
export async function expectPacket<T extends { type: number } = Packet>(raw: RawClient, type: number, timeoutMs = 3000): Promise<T> {
  const packet = await raw.nextPacket(timeoutMs);
  assert.equal(packet.type, type, `expected packet type ${type}, got ${JSON.stringify(describePacket(packet))}`);
  return packet as T;
}

export async function expectPublish(raw: RawClient, timeoutMs = 3000): Promise<PublishPacket> {
  return expectPacket<PublishPacket>(raw, PUBLISH, timeoutMs);
}

/** Asserts that nothing arrives on the raw client for `ms` milliseconds. */
export async function expectSilence(raw: RawClient, ms = 300, what = 'no packet'): Promise<void> {
  await delay(ms);
  assert.deepEqual(raw.packets.map(describePacket), [], what);
}

/** A JSON-friendly view of a packet for assertion messages. */
export function describePacket(p: Packet): unknown {
  if (p.type === PUBLISH) {
    const pub = p as PublishPacket;
    return { type: 'PUBLISH', topic: pub.topic, qos: pub.qos, retain: pub.retain, dup: pub.dup, packetId: pub.packetId, payload: pub.payload.toString() };
  }
  return p;
}

let nextSubscribeId = 1000;
/** SUBSCRIBE on a raw client; returns the SUBACK after checking its packet id. */
export async function rawSubscribe(raw: RawClient, subs: Array<[string, QoS]> | string, qos: QoS = 0): Promise<SubackPacket> {
  const list: Array<[string, QoS]> = typeof subs === 'string' ? [[subs, qos]] : subs;
  const packetId = nextSubscribeId++;
  raw.send({ type: SUBSCRIBE, packetId, subscriptions: list.map(([filter, q]) => ({ filter, qos: q })) });
  const suback = await expectPacket<SubackPacket>(raw, SUBACK);
  assert.equal(suback.packetId, packetId, 'SUBACK packet id [MQTT-3.8.4-2]');
  return suback;
}

/** Sends a PUBLISH from a raw client. */
export function rawPublish(
  raw: RawClient,
  topic: string,
  payload: string | Buffer,
  qos: QoS = 0,
  options: { packetId?: number; retain?: boolean; dup?: boolean } = {},
): void {
  raw.send({
    type: PUBLISH,
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos,
    retain: options.retain ?? false,
    dup: options.dup ?? false,
    ...(qos > 0 ? { packetId: options.packetId ?? 1 } : {}),
  });
}

/** Acknowledges a received PUBLISH as a well-behaved subscriber would (QoS 2: PUBREC, then PUBCOMP on PUBREL). */
export async function rawAck(raw: RawClient, pub: PublishPacket): Promise<void> {
  if (pub.qos === 1) raw.send({ type: PUBACK, packetId: pub.packetId! });
  else if (pub.qos === 2) {
    raw.send({ type: PUBREC, packetId: pub.packetId! });
    const rel = await expectPacket(raw, PUBREL);
    assert.equal((rel as { packetId: number }).packetId, pub.packetId);
    raw.send({ type: PUBCOMP, packetId: pub.packetId! });
  }
}

export interface Received {
  topic: string;
  payload: string;
  qos: QoS;
  retain: boolean;
  dup: boolean;
}

/** Records every message an MQTT.js client receives. */
export function collect(client: MqttClient): Received[] {
  const list: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    list.push({ topic, payload: payload.toString(), qos: packet.qos as QoS, retain: packet.retain, dup: packet.dup });
  });
  return list;
}

/** Waits until `list` holds at least `n` entries. */
export async function waitCount<T>(list: T[], n: number, timeoutMs = 5000, what = 'messages'): Promise<void> {
  await waitFor(() => list.length >= n, timeoutMs, `${n} ${what} (have ${list.length})`);
}

/** Ends MQTT.js clients and raw clients, ignoring the ones already gone. */
export async function closeAll(...clients: Array<MqttClient | RawClient | undefined>): Promise<void> {
  await Promise.all(clients.map(async (c) => {
    if (!c) return;
    if (c instanceof RawClient) {
      c.destroy();
      return;
    }
    await c.endAsync(true).catch(() => {});
  }));
}

/** A garbage collector, if the runtime lets us have one (used for memory checks). */
export function getGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  try {
    v8.setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

/**
 * Resolves once the broker has processed everything the MQTT.js client sent
 * before (an UNSUBSCRIBE round trip; packets of one connection are handled in order).
 */
export async function barrier(client: MqttClient): Promise<void> {
  await client.unsubscribeAsync('barrier/none');
}

/** Collects garbage (when possible) and lets the concurrent ArrayBuffer sweeper catch up before memory is read. */
export async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  const gc = getGc();
  for (let i = 0; i < 3; i++) {
    gc?.();
    await delay(30);
  }
  return process.memoryUsage();
}
