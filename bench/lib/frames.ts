/**
 * The few MQTT 3.1.1 packets the load generator needs, encoded by hand so the
 * generator does not share the broker's codec (a codec bug cannot hide on both
 * sides), and a frame reader that splits a byte stream into packets without copying.
 */

function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function utf8(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  const out = Buffer.alloc(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

function packet(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte, ...remainingLength(body.length)]), body]);
}

export function connectPacket(clientId: string, clean: boolean, keepalive = 0): Buffer {
  const flags = clean ? 0x02 : 0x00;
  const header = Buffer.concat([utf8('MQTT'), Buffer.from([4, flags, keepalive >> 8, keepalive & 0xff])]);
  return packet(0x10, Buffer.concat([header, utf8(clientId)]));
}

export function subscribePacket(packetId: number, filter: string, qos: number): Buffer {
  return packet(0x82, Buffer.concat([Buffer.from([packetId >> 8, packetId & 0xff]), utf8(filter), Buffer.from([qos])]));
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/**
 * A PUBLISH encoded once; `write` copies it into a batch buffer and patches the
 * packet id, stream id, sequence number and send time (the first 16 payload bytes).
 */
export class PublishTemplate {
  readonly bytes: Buffer;
  private readonly packetIdAt: number;
  private readonly payloadAt: number;

  constructor(topic: string, qos: number, payloadSize: number) {
    const size = Math.max(payloadSize, 16);
    const topicBytes = utf8(topic);
    const idBytes = qos > 0 ? 2 : 0;
    const body = Buffer.alloc(topicBytes.length + idBytes + size);
    topicBytes.copy(body, 0);
    this.bytes = packet(0x30 | (qos << 1), body);
    const headerLength = this.bytes.length - body.length;
    this.packetIdAt = headerLength + topicBytes.length;
    this.payloadAt = this.packetIdAt + idBytes;
  }

  get length(): number {
    return this.bytes.length;
  }

  write(into: Buffer, at: number, packetId: number, stream: number, seq: number, sentNs: bigint): void {
    this.bytes.copy(into, at);
    if (this.payloadAt !== this.packetIdAt) into.writeUInt16BE(packetId, at + this.packetIdAt);
    into.writeUInt32BE(stream, at + this.payloadAt);
    into.writeUInt32BE(seq, at + this.payloadAt + 4);
    into.writeBigUInt64BE(sentNs, at + this.payloadAt + 8);
  }

  /** The same packet with `payload` (exactly as long as the template's) in place of the stream, sequence and time. */
  writePayload(into: Buffer, at: number, packetId: number, payload: Buffer): void {
    this.bytes.copy(into, at, 0, this.payloadAt);
    if (this.payloadAt !== this.packetIdAt) into.writeUInt16BE(packetId, at + this.packetIdAt);
    payload.copy(into, at + this.payloadAt);
  }
}

/** Calls `onPacket(firstByte, buffer, bodyStart, bodyEnd)` for each whole packet; keeps a partial one for the next chunk. */
export class FrameReader {
  private pending: Buffer | undefined;

  constructor(private readonly onPacket: (firstByte: number, buf: Buffer, start: number, end: number) => void) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let at = 0;
    while (at < buf.length) {
      let length = 0;
      let multiplier = 1;
      let i = at + 1;
      let complete = false;
      while (i < buf.length) {
        const byte = buf[i++]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || i + length > buf.length) break;
      this.onPacket(buf[at]!, buf, i, i + length);
      at = i + length;
    }
    if (at < buf.length) this.pending = buf.subarray(at);
  }
}
