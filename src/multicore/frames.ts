import { PacketType, type Properties, type QoS } from '../protocol/index.js';
import { Reader, Writer } from '../protocol/primitives.js';
import { propertiesLength, readProperties, writeProperties } from '../protocol/properties.js';

/**
 * The wire between worker processes (multi-core mode): length-prefixed frames on a
 * Unix socket. A PUBLISH frame carries what the receiving broker needs to route a
 * message as the sender would have: QoS, RETAIN and the order stamp of a retained
 * publish, the absolute expiry, the MQTT 5 properties, and the shared groups the
 * receiver is to serve. No I/O here.
 */
export const enum FrameType {
  Publish = 1,
  /** A filter this worker now has subscribers for; answered with `Ack` of the same sequence number. */
  Interest = 2,
  /** A filter this worker no longer has subscribers for. */
  Uninterest = 3,
  Ack = 4,
}

const FLAG_RETAIN = 0x04;
const FLAG_DELIVER = 0x08;
const FLAG_EXPIRY = 0x10;
const FLAG_PROPERTIES = 0x20;
const FLAG_ID = 0x40;
const FLAG_TARGET = 0x80;

export interface PublishFrame {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** Whether the receiver has subscribers for it (a retained message goes to every worker regardless). */
  deliver: boolean;
  /** Orders competing retained publishes on one topic: monotonic time, then worker index. */
  retainStamp: number;
  origin: number;
  expiresAt: number | undefined;
  properties: Properties | undefined;
  /** Shared groups (`$share/g/f`) the receiver hands this message to one member of. */
  groups: readonly string[];
  /** Cluster mode: the message's number on its sending node (one message sent to several nodes has one number). */
  id?: number | undefined;
  /**
   * Cluster mode: a message for one session only (the node it left forwards what still reaches it there), and the node
   * that numbered it (`id`).
   */
  target?: { clientId: string; origin: string } | undefined;
}

export type Frame =
  | ({ type: FrameType.Publish } & PublishFrame)
  | { type: FrameType.Interest; seq: number; filter: string }
  | { type: FrameType.Uninterest; filter: string }
  | { type: FrameType.Ack; seq: number };

/** Collects frames for one peer during an event-loop turn; `take` hands them over as one buffer. */
export class FrameWriter {
  private buf = Buffer.allocUnsafe(16 * 1024);
  private pos = 0;

  get length(): number {
    return this.pos;
  }

  publish(f: PublishFrame): void {
    const topicLength = Buffer.byteLength(f.topic);
    let groupsLength = 0;
    for (const g of f.groups) groupsLength += 2 + Buffer.byteLength(g);
    const props = f.properties ? encodeProperties(f.properties) : undefined;
    const targetLength = f.target ? 4 + Buffer.byteLength(f.target.clientId) + Buffer.byteLength(f.target.origin) : 0;
    const size = 1 + 1 + (f.retain ? 9 : 0) + (f.expiresAt !== undefined ? 8 : 0) + (f.id !== undefined ? 8 : 0) + targetLength + 2 + topicLength + 2 + groupsLength
      + (props ? props.length : 0) + f.payload.length;
    this.reserve(4 + size);
    const b = this.buf;
    let p = this.pos;
    b.writeUInt32BE(size, p);
    p += 4;
    b[p++] = FrameType.Publish;
    b[p++] = f.qos | (f.retain ? FLAG_RETAIN : 0) | (f.deliver ? FLAG_DELIVER : 0)
      | (f.expiresAt !== undefined ? FLAG_EXPIRY : 0) | (props ? FLAG_PROPERTIES : 0) | (f.id !== undefined ? FLAG_ID : 0)
      | (f.target ? FLAG_TARGET : 0);
    if (f.retain) {
      b.writeDoubleBE(f.retainStamp, p);
      b[p + 8] = f.origin;
      p += 9;
    }
    if (f.expiresAt !== undefined) {
      b.writeDoubleBE(f.expiresAt, p);
      p += 8;
    }
    if (f.id !== undefined) {
      b.writeDoubleBE(f.id, p);
      p += 8;
    }
    if (f.target) {
      for (const text of [f.target.clientId, f.target.origin]) {
        const n = Buffer.byteLength(text);
        b.writeUInt16BE(n, p);
        p += 2;
        p += b.write(text, p, n, 'utf8');
      }
    }
    b.writeUInt16BE(topicLength, p);
    p += 2;
    p += b.write(f.topic, p, topicLength, 'utf8');
    b.writeUInt16BE(f.groups.length, p);
    p += 2;
    for (const g of f.groups) {
      const n = Buffer.byteLength(g);
      b.writeUInt16BE(n, p);
      p += 2;
      p += b.write(g, p, n, 'utf8');
    }
    if (props) p += props.copy(b, p);
    p += f.payload.copy(b, p);
    this.pos = p;
  }

  interest(seq: number, filter: string): void {
    const n = Buffer.byteLength(filter);
    this.reserve(4 + 5 + n);
    const b = this.buf;
    b.writeUInt32BE(5 + n, this.pos);
    b[this.pos + 4] = FrameType.Interest;
    b.writeUInt32BE(seq, this.pos + 5);
    this.pos += 9 + b.write(filter, this.pos + 9, n, 'utf8');
  }

  uninterest(filter: string): void {
    const n = Buffer.byteLength(filter);
    this.reserve(4 + 1 + n);
    const b = this.buf;
    b.writeUInt32BE(1 + n, this.pos);
    b[this.pos + 4] = FrameType.Uninterest;
    this.pos += 5 + b.write(filter, this.pos + 5, n, 'utf8');
  }

  ack(seq: number): void {
    this.reserve(9);
    this.buf.writeUInt32BE(5, this.pos);
    this.buf[this.pos + 4] = FrameType.Ack;
    this.buf.writeUInt32BE(seq, this.pos + 5);
    this.pos += 9;
  }

  /**
   * The frames written since the last call, or undefined if none: a copy of exactly that size,
   * so a write waiting on a slow peer holds only its own bytes; the buffer is reused.
   */
  take(): Buffer | undefined {
    if (this.pos === 0) return undefined;
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    this.pos = 0;
    if (this.buf.length > 1024 * 1024) this.buf = Buffer.allocUnsafe(16 * 1024); // a burst's buffer is not kept
    return out;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }
}

/** Shared by every frame without groups (never written to). */
const NO_GROUPS: string[] = [];

function encodeProperties(props: Properties): Buffer {
  const w = new Writer(propertiesLength(props));
  writeProperties(w, props);
  return w.buf;
}

/** Splits a byte stream into frames; payloads are views of the chunk they arrived in. */
export class FrameReader {
  /** The start of a frame that spans chunks, joined only once it is complete. */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private needed = 0;

  push(chunk: Buffer, visit: (frame: Frame) => void): void {
    let buf = chunk;
    if (this.pendingLength > 0) {
      this.pending.push(chunk);
      this.pendingLength += chunk.length;
      if (this.needed === 0 && this.pendingLength >= 4) this.needed = 4 + Buffer.concat(this.pending, 4).readUInt32BE(0);
      if (this.needed === 0 || this.pendingLength < this.needed) return;
      buf = Buffer.concat(this.pending, this.pendingLength);
      this.pending = [];
      this.pendingLength = 0;
      this.needed = 0;
    }
    let pos = 0;
    while (buf.length - pos >= 4) {
      const size = buf.readUInt32BE(pos);
      if (buf.length - pos - 4 < size) break;
      visit(decodeFrame(buf, pos + 4, pos + 4 + size));
      pos += 4 + size;
    }
    if (pos < buf.length) {
      const rest = buf.subarray(pos);
      this.pending = [rest];
      this.pendingLength = rest.length;
      this.needed = rest.length >= 4 ? 4 + rest.readUInt32BE(0) : 0;
    }
  }
}

/** A frame whose fields run past its end: the link is broken (frames come only from our own workers). */
function overrun(what: string): Error {
  return new RangeError(`multi-core frame: ${what} runs past the end of the frame`);
}

export function decodeFrame(buf: Buffer, start: number, end: number): Frame {
  if (end <= start) throw overrun('the frame type');
  const type = buf[start] as FrameType;
  switch (type) {
    case FrameType.Publish: return decodePublish(buf, start + 1, end);
    case FrameType.Interest:
      if (end - start < 5) throw overrun('an interest');
      return { type, seq: buf.readUInt32BE(start + 1), filter: buf.toString('utf8', start + 5, end) };
    case FrameType.Uninterest: return { type, filter: buf.toString('utf8', start + 1, end) };
    case FrameType.Ack:
      if (end - start !== 5) throw overrun('an ack');
      return { type, seq: buf.readUInt32BE(start + 1) };
    default: throw new Error(`unknown frame type ${String(type)}`);
  }
}

function decodePublish(buf: Buffer, start: number, end: number): Frame {
  let p = start;
  const need = (n: number, what: string): void => {
    if (p + n > end) throw overrun(what);
  };
  need(1, 'the flags');
  const flags = buf[p++]!;
  const retain = (flags & FLAG_RETAIN) !== 0;
  let retainStamp = 0;
  let origin = 0;
  if (retain) {
    need(9, 'the retain stamp');
    retainStamp = buf.readDoubleBE(p);
    origin = buf[p + 8]!;
    p += 9;
  }
  let expiresAt: number | undefined;
  if (flags & FLAG_EXPIRY) {
    need(8, 'the expiry');
    expiresAt = buf.readDoubleBE(p);
    p += 8;
  }
  let id: number | undefined;
  if (flags & FLAG_ID) {
    need(8, 'the message number');
    id = buf.readDoubleBE(p);
    p += 8;
  }
  let target: PublishFrame['target'];
  if (flags & FLAG_TARGET) {
    const texts: string[] = [];
    for (const what of ['the target client', 'the target origin']) {
      need(2, what);
      const n = buf.readUInt16BE(p);
      need(2 + n, what);
      texts.push(buf.toString('utf8', p + 2, p + 2 + n));
      p += 2 + n;
    }
    target = { clientId: texts[0]!, origin: texts[1]! };
  }
  need(2, 'the topic length');
  const topicLength = buf.readUInt16BE(p);
  p += 2;
  need(topicLength + 2, 'the topic');
  const topic = buf.toString('utf8', p, p + topicLength);
  p += topicLength;
  const groupCount = buf.readUInt16BE(p);
  p += 2;
  const groups: string[] = groupCount === 0 ? NO_GROUPS : [];
  for (let i = 0; i < groupCount; i++) {
    need(2, 'a group length');
    const n = buf.readUInt16BE(p);
    need(2 + n, 'a group');
    groups.push(buf.toString('utf8', p + 2, p + 2 + n));
    p += 2 + n;
  }
  let properties: Properties | undefined;
  if (flags & FLAG_PROPERTIES) {
    const r = new Reader(buf, p, end);
    properties = readProperties(r, PacketType.PUBLISH);
    p = r.pos;
  }
  return {
    type: FrameType.Publish, topic, payload: buf.subarray(p, end), qos: (flags & 0x03) as QoS, retain,
    deliver: (flags & FLAG_DELIVER) !== 0, retainStamp, origin, expiresAt, properties, groups, id, target,
  };
}
