import { decodeAck } from './ack.js';
import { decodeConnack } from './connack.js';
import { decodeConnect } from './connect.js';
import { MAX_REMAINING_LENGTH, PacketType, PACKET_TYPE_NAMES, type ProtocolVersion } from './constants.js';
import { decodeEmpty, decodeReasoned } from './empty.js';
import { malformed, ProtocolError } from './errors.js';
import type { Packet } from './packets.js';
import { Reader } from './primitives.js';
import { decodePublish } from './publish.js';
import { ReasonCode } from './reason-codes.js';
import { decodeSuback, decodeSubscribe } from './subscribe.js';
import { decodeUnsuback, decodeUnsubscribe } from './unsubscribe.js';

const EMPTY = Buffer.alloc(0);

/** Fixed-header flags each packet type must carry [MQTT-2.2.2-1], [MQTT-2.2.2-2]. PUBLISH is checked by its decoder. */
const REQUIRED_FLAGS: readonly number[] = [-1, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];

/**
 * Returns true to keep decoding, false to pause: the decoder keeps the rest of
 * the bytes until `resume` is called.
 */
export type PacketHandler = (packet: Packet, byteLength: number) => boolean;

/**
 * Streaming MQTT decoder. Accepts bytes split at any point and several packets
 * per chunk; a packet that lies inside one chunk is decoded from a view of that
 * chunk (payloads are slices, not copies). Bytes are copied only to join a
 * packet that spans chunks.
 */
export class PacketDecoder {
  /** Protocol level used for packets after CONNECT; a decoded CONNECT sets it. */
  version: ProtocolVersion = 4;
  private head: Buffer = EMPTY;
  private offset = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private error: ProtocolError | undefined;
  private paused = false;

  constructor(public maxPacketSize: number = MAX_REMAINING_LENGTH + 5) {}

  get buffered(): number {
    return this.head.length - this.offset + this.pendingBytes;
  }

  /** Adds bytes and decodes every complete packet. Returns the error that ended the stream, if any. */
  push(chunk: Buffer, onPacket: PacketHandler): ProtocolError | undefined {
    if (this.error) return this.error;
    if (this.offset === this.head.length && this.pending.length === 0) {
      this.head = chunk;
      this.offset = 0;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    if (this.paused) return undefined;
    return this.run(onPacket);
  }

  resume(onPacket: PacketHandler): ProtocolError | undefined {
    this.paused = false;
    if (this.error) return this.error;
    return this.run(onPacket);
  }

  private run(onPacket: PacketHandler): ProtocolError | undefined {
    for (;;) {
      const available = this.buffered;
      if (available < 2) break;
      this.ensure(Math.min(5, available));
      const buf = this.head;
      const start = this.offset;
      let remaining = 0;
      let multiplier = 1;
      let pos = start + 1;
      let complete = false;
      const limit = Math.min(buf.length, start + 5);
      while (pos < limit) {
        const byte = buf[pos++]!;
        remaining += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (pos - start >= 5) return this.fail(malformed('remaining length longer than 4 bytes', 'MQTT-2.2.3'));
        break;
      }
      const total = pos - start + remaining;
      if (total > this.maxPacketSize) {
        return this.fail(
          new ProtocolError(`packet of ${total} bytes exceeds maximum of ${this.maxPacketSize}`, ReasonCode.PacketTooLarge),
        );
      }
      if (!this.ensure(total)) break;
      // ensure() may have replaced head; the header length is unchanged.
      const headerLength = pos - start;
      const packetStart = this.offset;
      this.offset += total;
      let packet: Packet;
      try {
        packet = this.decodeOne(this.head, packetStart, packetStart + headerLength, packetStart + total);
      } catch (err) {
        return this.fail(err instanceof ProtocolError ? err : malformed(`undecodable packet: ${String(err)}`));
      }
      if (this.offset === this.head.length && this.pending.length === 0) {
        this.head = EMPTY;
        this.offset = 0;
      }
      if (!onPacket(packet, total)) {
        this.paused = true;
        break;
      }
      if (this.error) return this.error;
    }
    return undefined;
  }

  /** Stops the stream: later pushes report the same error. Used when the consumer finds a violation. */
  fail(error: ProtocolError): ProtocolError {
    this.error = error;
    this.head = EMPTY;
    this.pending = [];
    this.pendingBytes = 0;
    return error;
  }

  private ensure(n: number): boolean {
    while (this.head.length - this.offset < n) {
      if (this.pending.length === 0) return false;
      if (this.head.length === this.offset) {
        this.head = this.pending.shift()!;
        this.pendingBytes -= this.head.length;
        this.offset = 0;
        continue;
      }
      if (this.head.length - this.offset + this.pendingBytes < n) return false;
      this.join(n);
    }
    return true;
  }

  /** Copies exactly the n bytes of a spanning packet into one buffer; later bytes stay views of their chunks. */
  private join(n: number): void {
    const parts = [this.head.subarray(this.offset)];
    let have = parts[0]!.length;
    while (have < n) {
      const chunk = this.pending.shift()!;
      this.pendingBytes -= chunk.length;
      const take = Math.min(chunk.length, n - have);
      parts.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      have += take;
      if (take < chunk.length) {
        this.pending.unshift(chunk.subarray(take));
        this.pendingBytes += chunk.length - take;
      }
    }
    this.head = Buffer.concat(parts, n);
    this.offset = 0;
  }

  private decodeOne(buf: Buffer, start: number, bodyStart: number, end: number): Packet {
    const first = buf[start]!;
    const type = first >> 4;
    const flags = first & 0x0f;
    if (type === 0 || (type === PacketType.AUTH && this.version < 5)) {
      throw malformed(`reserved packet type ${type}`, 'MQTT-2.2.1');
    }
    const required = REQUIRED_FLAGS[type]!;
    // MQTT 3.1 sets DUP on re-sent PUBREL, SUBSCRIBE and UNSUBSCRIBE; 3.1.1 forbids it [MQTT-2.2.2-2].
    const checked = this.version === 3 && required === 2 ? flags & ~0x08 : flags;
    if (required !== -1 && checked !== required) {
      throw malformed(`invalid fixed header flags for ${PACKET_TYPE_NAMES[type]}`, 'MQTT-2.2.2-2');
    }
    const r = new Reader(buf, bodyStart, end);
    const v = this.version;
    switch (type) {
      case PacketType.CONNECT: {
        const packet = decodeConnect(r);
        this.version = packet.protocolVersion;
        return packet;
      }
      case PacketType.CONNACK: return decodeConnack(r, v);
      case PacketType.PUBLISH: return decodePublish(flags, r, v);
      case PacketType.PUBACK:
      case PacketType.PUBREC:
      case PacketType.PUBREL:
      case PacketType.PUBCOMP:
        return decodeAck(type, r, v);
      case PacketType.UNSUBACK: return decodeUnsuback(r, v);
      case PacketType.SUBSCRIBE: return decodeSubscribe(r, v);
      case PacketType.SUBACK: return decodeSuback(r, v);
      case PacketType.UNSUBSCRIBE: return decodeUnsubscribe(r, v);
      case PacketType.PINGREQ:
      case PacketType.PINGRESP:
        return decodeEmpty(type, r);
      case PacketType.DISCONNECT:
        return v === 5 ? decodeReasoned(type, r) : decodeEmpty(type, r);
      case PacketType.AUTH:
        return decodeReasoned(type, r);
      default:
        throw malformed(`packet type ${type} is not supported at protocol level ${v}`);
    }
  }
}
