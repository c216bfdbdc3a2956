/**
 * Helpers for codec tests: fast-check arbitraries for valid MQTT 3.1/3.1.1
 * packets, raw byte builders for hand-made (often invalid) packets, and a
 * decode-everything wrapper around PacketDecoder.
 */
import fc from 'fast-check';
import {
  PacketDecoder, PacketType, ProtocolError,
  type ConnectPacket, type Packet, type ProtocolVersion, type PublishPacket, type QoS, type WillMessage,
} from '../../src/protocol/index.js';

// ---------------------------------------------------------------- decoding

export interface DecodeResult {
  packets: Packet[];
  /** Byte length the decoder reported for each packet. */
  lengths: number[];
  /** First error returned by push, if any. */
  error: ProtocolError | undefined;
  /** Every value push returned, in order. */
  returns: Array<ProtocolError | undefined>;
  decoder: PacketDecoder;
}

export interface DecodeOptions {
  /** Protocol level the decoder assumes before any CONNECT (default 4). */
  version?: ProtocolVersion;
  maxPacketSize?: number;
}

/** Pushes each chunk into a fresh decoder and collects everything it reports. */
export function decodeChunks(chunks: readonly Buffer[], options: DecodeOptions = {}): DecodeResult {
  const decoder = options.maxPacketSize === undefined ? new PacketDecoder() : new PacketDecoder(options.maxPacketSize);
  if (options.version !== undefined) decoder.version = options.version;
  const result: DecodeResult = { packets: [], lengths: [], error: undefined, returns: [], decoder };
  for (const chunk of chunks) {
    const ret = decoder.push(chunk, (packet, byteLength) => {
      result.packets.push(packet);
      result.lengths.push(byteLength);
      return true;
    });
    result.returns.push(ret);
    if (ret !== undefined && result.error === undefined) result.error = ret;
  }
  return result;
}

export function decodeBytes(bytes: Buffer | readonly number[], options: DecodeOptions = {}): DecodeResult {
  return decodeChunks([Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)], options);
}

/** Splits `bytes` at the given positions (taken modulo length + 1; duplicates give empty chunks). */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(prev, p));
    prev = p;
  }
  chunks.push(bytes.subarray(prev));
  return chunks;
}

// ---------------------------------------------------------------- raw bytes

export function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

export function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Two-byte length prefix followed by the bytes (strings are UTF-8 encoded). */
export function lp(value: string | readonly number[] | Buffer): number[] {
  const bytes = typeof value === 'string' ? [...Buffer.from(value, 'utf8')] : [...value];
  return [...u16(bytes.length), ...bytes];
}

/** A whole packet: first byte, remaining length, body. */
export function rawPacket(firstByte: number, body: readonly number[]): Buffer {
  return Buffer.from([firstByte, ...varint(body.length), ...body]);
}

export interface RawConnect {
  protocolName?: string | number[];
  level?: number;
  /** Overrides the flags computed from the fields present. */
  flags?: number;
  keepalive?: number;
  clientId?: string | number[];
  will?: { topic: string | number[]; message?: number[]; qos?: number; retain?: boolean };
  username?: string | number[];
  password?: number[];
  trailing?: number[];
}

/** CONNECT bytes built field by field, so single fields can be made invalid. */
export function rawConnect(c: RawConnect = {}): Buffer {
  let flags = 0x02;
  if (c.will) flags |= 0x04 | ((c.will.qos ?? 0) << 3) | (c.will.retain ? 0x20 : 0);
  if (c.username !== undefined) flags |= 0x80;
  if (c.password !== undefined) flags |= 0x40;
  if (c.flags !== undefined) flags = c.flags;
  const body = [
    ...lp(c.protocolName ?? 'MQTT'),
    c.level ?? 4,
    flags,
    ...u16(c.keepalive ?? 60),
    ...lp(c.clientId ?? 'client'),
  ];
  if (c.will) body.push(...lp(c.will.topic), ...lp(c.will.message ?? [1, 2, 3]));
  if (c.username !== undefined) body.push(...lp(c.username));
  if (c.password !== undefined) body.push(...lp(c.password));
  if (c.trailing) body.push(...c.trailing);
  return rawPacket(0x10, body);
}

export interface RawPublish {
  qos?: number;
  dup?: boolean;
  retain?: boolean;
  /** Overrides the whole flag nibble. */
  flags?: number;
  topic?: string | number[];
  packetId?: number;
  payload?: number[];
}

export function rawPublish(p: RawPublish = {}): Buffer {
  const qos = p.qos ?? 0;
  const flags = p.flags ?? (((p.dup ? 1 : 0) << 3) | (qos << 1) | (p.retain ? 1 : 0));
  const body = [...lp(p.topic ?? 'a/b')];
  if (qos > 0) body.push(...u16(p.packetId ?? 1));
  body.push(...(p.payload ?? [0x68, 0x69]));
  return rawPacket(0x30 | flags, body);
}

/** SUBSCRIBE with the given (filter, options byte) entries. */
export function rawSubscribe(entries: ReadonlyArray<[string | number[], number]>, packetId = 1, flags = 0x02): Buffer {
  const body = [...u16(packetId)];
  for (const [filter, options] of entries) body.push(...lp(filter), options);
  return rawPacket(0x80 | flags, body);
}

export function rawUnsubscribe(filters: ReadonlyArray<string | number[]>, packetId = 1, flags = 0x02): Buffer {
  const body = [...u16(packetId)];
  for (const filter of filters) body.push(...lp(filter));
  return rawPacket(0xa0 | flags, body);
}

// ---------------------------------------------------------------- arbitraries

/** One code point that is valid in an MQTT UTF-8 string (not U+0000, not a surrogate). */
const codePoint: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('a', 'b', 'Z', '0', ' ', '$', '/', '-', 'é', 'ß', '€', '中', '\u{1F600}', '\uFEFF', '\u007F', '\u0001') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
).map((c) => (c === '\u0000' ? '\u0001' : c));

/** A valid MQTT UTF-8 string: no U+0000, no lone surrogates. */
export function utf8String(maxLength = 20, minLength = 0): fc.Arbitrary<string> {
  return fc.string({ unit: codePoint, minLength, maxLength });
}

/** A valid topic name: non-empty, no wildcards [MQTT-4.7.3-1], [MQTT-3.3.2-2]. */
export const topicName: fc.Arbitrary<string> = utf8String(24, 1)
  .map((s) => s.replace(/[+#]/g, '_'));

const filterLevel: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: utf8String(6).map((s) => s.replace(/[+#/]/g, '_')) },
  { weight: 1, arbitrary: fc.constant('+') },
);

/** A valid topic filter: '+' whole levels, '#' only as the whole last level. */
export const topicFilter: fc.Arbitrary<string> = fc
  .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((f) => f.length > 0);

export const packetId: fc.Arbitrary<number> = fc.integer({ min: 1, max: 65535 });
export const qos: fc.Arbitrary<QoS> = fc.constantFrom<QoS>(0, 1, 2);

/** Payloads of every remaining-length size class (1, 2 and 3 varint bytes). */
export const payload: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 70_000 }).map((n) => Buffer.alloc(n, n & 0xff)) },
);

/** Binary data of a length that fits a two-byte prefix. */
const shortBinary: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.constantFrom(0, 127, 128, 65_535).map((n) => Buffer.alloc(n, 0x5a)) },
);

export function willArb(): fc.Arbitrary<WillMessage> {
  // fc.record builds null-prototype objects; decoded packets are plain objects.
  return fc.record({ topic: topicName, payload: shortBinary, qos, retain: fc.boolean() }).map((r) => ({ ...r }));
}

export interface ConnectShape {
  will?: boolean;
  username?: boolean;
  password?: boolean;
}

/** A CONNECT at the given level; `shape` pins which optional fields are present (random when omitted). */
export function connectArb(version: 3 | 4, shape: ConnectShape = {}): fc.Arbitrary<ConnectPacket> {
  const flag = (v: boolean | undefined) => (v === undefined ? fc.boolean() : fc.constant(v));
  return fc
    .record({
      clean: fc.boolean(),
      keepalive: fc.integer({ min: 0, max: 65535 }),
      clientId: utf8String(23),
      hasWill: flag(shape.will),
      hasUser: flag(shape.username),
      hasPassword: flag(shape.password),
      will: willArb(),
      username: utf8String(30),
      password: shortBinary,
    })
    .map((r) => {
      const p: ConnectPacket = {
        type: PacketType.CONNECT,
        protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
        protocolVersion: version,
        clean: r.clean,
        keepalive: r.keepalive,
        clientId: r.clientId,
      };
      if (r.hasWill) p.will = r.will;
      // A password requires a user name [MQTT-3.1.2-22].
      if (r.hasUser || r.hasPassword) p.username = r.username;
      if (r.hasPassword) p.password = r.password;
      return p;
    });
}

/** Arbitraries for every packet type except CONNECT, keyed by type, valid at `version`. */
export function packetArbs(version: 3 | 4): Record<number, fc.Arbitrary<Packet>> {
  const ack = <T extends 4 | 5 | 6 | 7 | 11>(type: T) => packetId.map((id) => ({ type, packetId: id }) as Packet);
  return {
    [PacketType.CONNACK]: fc
      .record({ sessionPresent: version === 4 ? fc.boolean() : fc.constant(false), returnCode: fc.integer({ min: 0, max: 5 }) })
      .map((r) => ({ type: PacketType.CONNACK, ...r }) as Packet),
    [PacketType.PUBLISH]: fc
      .record({ qos, dup: fc.boolean(), retain: fc.boolean(), topic: topicName, packetId, payload })
      .map((r) => {
        const p: PublishPacket = { type: PacketType.PUBLISH, qos: r.qos, dup: r.qos > 0 && r.dup, retain: r.retain, topic: r.topic, payload: r.payload };
        if (r.qos > 0) p.packetId = r.packetId;
        return p;
      }),
    [PacketType.PUBACK]: ack(PacketType.PUBACK),
    [PacketType.PUBREC]: ack(PacketType.PUBREC),
    [PacketType.PUBREL]: ack(PacketType.PUBREL),
    [PacketType.PUBCOMP]: ack(PacketType.PUBCOMP),
    [PacketType.SUBSCRIBE]: fc
      .record({ packetId, subscriptions: fc.array(fc.record({ filter: topicFilter, qos }).map((r) => ({ ...r })), { minLength: 1, maxLength: 6 }) })
      .map((r) => ({ type: PacketType.SUBSCRIBE, ...r }) as Packet),
    [PacketType.SUBACK]: fc
      .record({
        packetId,
        // 0x80 (failure) exists only from 3.1.1 on [MQTT-3.9.3-2].
        returnCodes: fc.array(version === 4 ? fc.constantFrom(0, 1, 2, 0x80) : fc.constantFrom(0, 1, 2), { minLength: 1, maxLength: 8 }),
      })
      .map((r) => ({ type: PacketType.SUBACK, ...r }) as Packet),
    [PacketType.UNSUBSCRIBE]: fc
      .record({ packetId, filters: fc.array(topicFilter, { minLength: 1, maxLength: 6 }) })
      .map((r) => ({ type: PacketType.UNSUBSCRIBE, ...r }) as Packet),
    [PacketType.UNSUBACK]: ack(PacketType.UNSUBACK),
    [PacketType.PINGREQ]: fc.constant({ type: PacketType.PINGREQ } as Packet),
    [PacketType.PINGRESP]: fc.constant({ type: PacketType.PINGRESP } as Packet),
    [PacketType.DISCONNECT]: fc.constant({ type: PacketType.DISCONNECT } as Packet),
  };
}

/** Any packet valid at `version` other than CONNECT. */
export function anyPacketArb(version: 3 | 4): fc.Arbitrary<Packet> {
  return fc.oneof(...Object.values(packetArbs(version)));
}

/** A stream as a client or server would see it: an optional CONNECT first, then other packets of the same level. */
export const packetStreamArb: fc.Arbitrary<{ version: 3 | 4; packets: Packet[] }> = fc
  .constantFrom<3 | 4>(3, 4)
  .chain((version) =>
    fc
      .tuple(fc.option(connectArb(version), { nil: undefined }), fc.array(anyPacketArb(version), { maxLength: 12 }))
      .map(([connect, rest]) => ({ version, packets: connect ? [connect as Packet, ...rest] : rest })),
  );

export { ProtocolError };
