import { encodePublish, type ProtocolVersion, type QoS } from '../protocol/index.js';
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
}

export function topicByteLength(message: Message): number {
  return (message.topicLength ??= Buffer.byteLength(message.topic, 'utf8'));
}

/** The QoS 0 bytes every 3.1/3.1.1 subscriber receives alike: encoded once per message. */
export function sharedQos0Bytes(message: Message, version: ProtocolVersion): Buffer {
  return (message.encodedQos0 ??= encodePublish(
    { type: 3, dup: false, qos: 0, retain: message.retain, topic: message.topic, payload: message.payload },
    version,
  ));
}

export function messageOf(topic: string, payload: Buffer, qos: QoS, retain: boolean): Message {
  return { topic, payload, qos, retain };
}
