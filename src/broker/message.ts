import { encodePublish, propertiesLength, type ProtocolVersion } from '../protocol/index.js';
import type { StoredMessage } from '../store/store.js';

/**
 * A message on its way through the broker. One object is shared by every
 * subscriber of a publish; it caches the encodings that subscribers can share.
 */
export interface Message extends StoredMessage {
  /** UTF-8 byte length of the topic, measured once. */
  topicLength?: number;
  /** The complete QoS 0 PUBLISH for 3.1/3.1.1 subscribers, encoded on first use. */
  encodedQos0?: Buffer;
  /** The payload no longer shares memory with a socket chunk. */
  ownsPayload?: boolean;
  /** The RETAIN flag the message was published with, for Retain As Published subscriptions. */
  publishedRetain?: boolean;
}

/** True once a message's Message Expiry Interval has passed [MQTT-3.3.2-5]. */
export function isExpired(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}

export function topicByteLength(message: Message): number {
  return (message.topicLength ??= Buffer.byteLength(message.topic, 'utf8'));
}

/**
 * The QoS 0 bytes every 3.1/3.1.1 subscriber receives alike: encoded once per
 * live message. Retained messages live long, so their encoding is not kept.
 */
export function sharedQos0Bytes(message: Message, version: Exclude<ProtocolVersion, 5>): Buffer {
  if (message.encodedQos0) return message.encodedQos0;
  const bytes = encodePublish(
    { type: 3, dup: false, qos: 0, retain: message.retain, topic: message.topic, payload: message.payload },
    version,
  );
  if (!message.retain) message.encodedQos0 = bytes;
  return bytes;
}

/**
 * Before a message is held (queued, in flight), give it its own payload if it
 * is a small view of a large socket chunk, so the limits count what is held.
 * Done once on the shared message, for every session that holds it.
 */
export function ownPayload(message: Message): void {
  if (message.ownsPayload) return;
  const payload = message.payload;
  if (payload.byteLength * 2 < payload.buffer.byteLength) message.payload = Buffer.from(payload);
  const correlation = message.properties?.correlationData;
  if (correlation) message.properties = { ...message.properties, correlationData: Buffer.from(correlation) };
  message.ownsPayload = true;
}

/** Bytes a held message counts against the queue limit: payload and MQTT 5 properties. */
export function heldSize(message: Pick<Message, 'payload' | 'properties'>): number {
  return message.payload.length + (message.properties ? propertiesLength(message.properties) : 0);
}

/** The epoch ms at which a Message Expiry Interval (seconds) set now runs out; undefined if none is set. */
export function expiryDeadline(intervalSeconds: number | undefined): number | undefined {
  return intervalSeconds === undefined ? undefined : Date.now() + intervalSeconds * 1000;
}
