/**
 * Mutations of one valid packet: fixed-header type and flags, remaining-length varints, string lengths,
 * UTF-8 (ill-formed sequences, U+0000, surrogates), wildcards in topic names, MQTT 5 property
 * identifiers, lengths, values and duplicates, and plain byte damage. Each mutation says whether the
 * result is certainly a packet the broker must refuse by closing the connection (with the rule), or only
 * perhaps (the broker's verdict is then not checked, only that it survives).
 */
import { PacketType } from '../../src/protocol/index.js';
import { PROPERTY_TABLE, WILL } from '../helpers/codec-v5.js';
import { encodeVarint, type CorpusEntry, type PropertyBlock, type StringField } from './corpus.js';
import type { Prng } from './prng.js';

export interface Mutation {
  name: string;
  bytes: Buffer;
  /** Why the broker must close the connection on this packet; undefined when it may accept it. */
  mustClose?: string;
}

type Mutator = (entry: CorpusEntry, rng: Prng) => Mutation | undefined;

/** Replaces `deleteCount` bytes at `at` (an offset in the packet) and fixes the lengths around the edit. */
function splice(entry: CorpusEntry, at: number, deleteCount: number, insert: Buffer, block?: PropertyBlock): Buffer {
  const { bytes, layout } = entry;
  let body = Buffer.concat([bytes.subarray(layout.headerLength, at), insert, bytes.subarray(at + deleteCount)]);
  if (block) {
    const rel = block.at - layout.headerLength;
    let old = 0;
    let mul = 1;
    for (let i = 0; i < block.lengthBytes; i++) {
      old += (body[rel + i]! & 0x7f) * mul;
      mul *= 128;
    }
    const updated = encodeVarint(old + insert.length - deleteCount);
    body = Buffer.concat([body.subarray(0, rel), updated, body.subarray(rel + block.lengthBytes)]);
  }
  return Buffer.concat([Buffer.from([bytes[0]!]), encodeVarint(body.length), body]);
}

/** The property block that holds `offset`, if any. */
function blockAt(entry: CorpusEntry, offset: number): PropertyBlock | undefined {
  for (const block of entry.layout.props) {
    const first = block.at + block.lengthBytes;
    const last = block.entries.length > 0 ? block.entries[block.entries.length - 1]!.end : first;
    if (offset >= first && offset < last) return block;
  }
  return undefined;
}

/** Replaces the data of a string field (its length prefix updated, and the enclosing property block). */
function replaceString(entry: CorpusEntry, field: StringField, data: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(data.length);
  return splice(entry, field.at, 2 + field.length, Buffer.concat([prefix, data]), blockAt(entry, field.at));
}

const body = (entry: CorpusEntry): number => entry.bytes.length - entry.layout.headerLength;
const withByte = (bytes: Buffer, at: number, value: number): Buffer => {
  const out = Buffer.from(bytes);
  out[at] = value;
  return out;
};

/** Fixed-header flags each type must carry [MQTT-2.2.2-2]; PUBLISH (3) has its own. */
const REQUIRED_FLAGS: readonly number[] = [-1, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];

export const ILL_FORMED_UTF8: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['U+0000', [0x00]],
  ['overlong U+0000', [0xc0, 0x80]],
  ['high surrogate U+D800', [0xed, 0xa0, 0x80]],
  ['low surrogate U+DFFF', [0xed, 0xbf, 0xbf]],
  ['byte 0xFF', [0xff]],
  ['lone continuation byte', [0x80]],
  ['truncated sequence', [0xe2, 0x82]],
  ['beyond U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['five-byte sequence', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ['overlong slash', [0xc0, 0xaf]],
];

const UNKNOWN_PROPERTY_IDS = [0x00, 0x04, 0x05, 0x06, 0x07, 0x0a, 0x0c, 0x10, 0x14, 0x1b, 0x1d, 0x20, 0x2b, 0x40, 0x7f];
const PROP_BY_ID = new Map(PROPERTY_TABLE.map((p) => [p.id, p]));
/** Properties that may appear more than once (User Property; Subscription Identifier in a server's PUBLISH). */
const REPEATABLE = new Set([0x26, 0x0b]);
/** Properties a client sends whose value is a byte that must be 0 or 1 (a Protocol Error otherwise). */
const CLIENT_BOOLEAN_BYTES = new Set([0x01, 0x17, 0x19]);
/** Client-sent properties for which 0 is a Protocol Error: Receive Maximum, Topic Alias, Maximum Packet Size. */
const ZERO_IS_ERROR = new Set([0x21, 0x23, 0x27]);
const CLIENT_TYPES = new Set([PacketType.CONNECT, WILL, PacketType.PUBLISH, PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL,
  PacketType.PUBCOMP, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE, PacketType.DISCONNECT, PacketType.AUTH]);

const mutators: Record<string, Mutator> = {
  flags(entry, rng) {
    const type = entry.type;
    if (type === PacketType.PUBLISH) {
      // QoS 3 [MQTT-3.3.1-4].
      return { name: 'flags: PUBLISH QoS 3', bytes: withByte(entry.bytes, 0, (entry.bytes[0]! & 0xf9) | 0x06), mustClose: 'PUBLISH with QoS 3 [MQTT-3.3.1-4]' };
    }
    const required = REQUIRED_FLAGS[type]!;
    let flags = rng.int(16);
    if (flags === required) flags ^= 1 << rng.int(4);
    const tolerated = entry.version === 3 && required === 2 && (flags & ~0x08) === 2; // 3.1 DUP on PUBREL/SUBSCRIBE/UNSUBSCRIBE
    const m: Mutation = { name: `flags: ${flags.toString(2)}`, bytes: withByte(entry.bytes, 0, (type << 4) | flags) };
    if (!tolerated) m.mustClose = 'invalid fixed-header flags [MQTT-2.2.2-2]';
    return m;
  },
  type(entry, rng) {
    const newType = rng.pick([0, 0, 15, rng.range(1, 14)]);
    const m: Mutation = { name: `type ${newType}`, bytes: withByte(entry.bytes, 0, (newType << 4) | (entry.bytes[0]! & 0x0f)) };
    if (newType === 0) m.mustClose = 'reserved packet type 0 [MQTT-2.2.1]';
    else if (newType === 15 && entry.version < 5) m.mustClose = 'AUTH before MQTT 5';
    return m;
  },
  remainingLengthOverlong(entry) {
    const b = entry.bytes;
    return { name: 'remaining length of 5 bytes', bytes: Buffer.concat([Buffer.from([b[0]!, 0xff, 0xff, 0xff, 0xff, 0x7f]), b.subarray(entry.layout.headerLength)]), mustClose: 'remaining length longer than 4 bytes [MQTT-1.5.5]' };
  },
  remainingLengthHuge(entry) {
    const b = entry.bytes;
    return { name: 'remaining length 268435455', bytes: Buffer.concat([Buffer.from([b[0]!, 0xff, 0xff, 0xff, 0x7f]), b.subarray(entry.layout.headerLength)]), mustClose: 'packet larger than the maximum packet size' };
  },
  remainingLengthNonMinimal(entry) {
    const n = body(entry);
    const enc = [...encodeVarint(n)];
    if (enc.length >= 4) return undefined;
    enc[enc.length - 1]! |= 0x80;
    enc.push(0x00);
    return { name: 'remaining length not minimal', bytes: Buffer.concat([Buffer.from([entry.bytes[0]!, ...enc]), entry.bytes.subarray(entry.layout.headerLength)]) };
  },
  remainingLengthDelta(entry, rng) {
    const n = Math.max(0, body(entry) + rng.pick([-3, -2, -1, 1, 2, 5, 100]));
    return { name: `remaining length ${n} for ${body(entry)}`, bytes: Buffer.concat([Buffer.from([entry.bytes[0]!]), encodeVarint(n), entry.bytes.subarray(entry.layout.headerLength)]) };
  },
  truncate(entry, rng) {
    if (entry.bytes.length < 2) return undefined;
    const cut = rng.range(1, entry.bytes.length - 1);
    return { name: `truncated at ${cut}`, bytes: entry.bytes.subarray(0, cut) };
  },
  bitflip(entry, rng) {
    const out = Buffer.from(entry.bytes);
    const flips = rng.range(1, 3);
    for (let i = 0; i < flips; i++) {
      const at = rng.int(out.length);
      out[at] = out[at]! ^ (1 << rng.int(8));
    }
    return { name: `${flips} bit flips`, bytes: out };
  },
  interestingByte(entry, rng) {
    if (body(entry) === 0) return undefined;
    const at = entry.layout.headerLength + rng.int(body(entry));
    const value = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x23, 0x2b, 0x2f, 0x24]);
    return { name: `byte ${at} = ${value}`, bytes: withByte(entry.bytes, at, value) };
  },
  insertBytes(entry, rng) {
    const at = entry.layout.headerLength + rng.int(body(entry) + 1);
    return { name: `bytes inserted at ${at}`, bytes: splice(entry, at, 0, rng.bytes(rng.range(1, 8))) };
  },
  deleteBytes(entry, rng) {
    if (body(entry) === 0) return undefined;
    const at = entry.layout.headerLength + rng.int(body(entry));
    return { name: `bytes deleted at ${at}`, bytes: splice(entry, at, Math.min(rng.range(1, 8), entry.bytes.length - at), Buffer.alloc(0)) };
  },
  stringLength(entry, rng) {
    if (entry.layout.strings.length === 0) return undefined;
    const field = rng.pick(entry.layout.strings);
    const value = rng.pick([0, field.length + 1, Math.max(0, field.length - 1), 0xffff, body(entry)]) & 0xffff;
    const out = Buffer.from(entry.bytes);
    out.writeUInt16BE(value, field.at);
    return { name: `string length ${value} for ${field.length}`, bytes: out };
  },
  illFormedUtf8(entry, rng) {
    const fields = entry.layout.strings.filter((s) => s.utf8);
    if (fields.length === 0) return undefined;
    const field = rng.pick(fields);
    const [what, seq] = rng.pick(ILL_FORMED_UTF8);
    const data = entry.bytes.subarray(field.at + 2, field.at + 2 + field.length);
    const at = rng.int(data.length + 1);
    const bad = Buffer.concat([data.subarray(0, at), Buffer.from(seq), data.subarray(at)]);
    if (bad.length > 0xffff) return undefined;
    return { name: `UTF-8: ${what} in a string`, bytes: replaceString(entry, field, bad), mustClose: `ill-formed UTF-8 string (${what}) [MQTT-1.5.4-1], [MQTT-1.5.4-2]` };
  },
  wildcardInTopic(entry, rng) {
    if (entry.type !== PacketType.PUBLISH) return undefined;
    const field = entry.layout.strings.find((s) => s.role === 'topic');
    if (!field) return undefined;
    const data = entry.bytes.subarray(field.at + 2, field.at + 2 + field.length);
    const at = rng.int(data.length + 1);
    const bad = Buffer.concat([data.subarray(0, at), Buffer.from(rng.pick(['+', '#', '/#', '+/'])), data.subarray(at)]);
    return { name: 'wildcard in a topic name', bytes: replaceString(entry, field, bad), mustClose: 'wildcard in a PUBLISH topic name [MQTT-3.3.2-2]' };
  },
  unknownProperty(entry, rng) {
    const blocks = entry.layout.props.filter((b) => b.entries.length > 0);
    if (blocks.length === 0) return undefined;
    const e = rng.pick(rng.pick(blocks).entries);
    const id = rng.pick(UNKNOWN_PROPERTY_IDS);
    return { name: `property id ${id}`, bytes: withByte(entry.bytes, e.at, id), mustClose: `unknown property identifier 0x${id.toString(16)}` };
  },
  propertyOutOfContext(entry, rng) {
    const blocks = entry.layout.props.filter((b) => b.entries.length > 0);
    if (blocks.length === 0) return undefined;
    const block = rng.pick(blocks);
    const e = rng.pick(block.entries);
    const type = PROP_BY_ID.get(e.id)?.type;
    const others = PROPERTY_TABLE.filter((p) => p.type === type && !p.contexts.includes(block.context));
    if (others.length === 0) return undefined;
    const p = rng.pick(others);
    return { name: `property ${p.name} in context ${block.context}`, bytes: withByte(entry.bytes, e.at, p.id), mustClose: `property ${p.name} not valid in this packet [MQTT-2.2.2-2]` };
  },
  duplicateProperty(entry, rng) {
    const blocks = entry.layout.props.filter((b) => b.entries.some((e) => !REPEATABLE.has(e.id)));
    if (blocks.length === 0) return undefined;
    const block = rng.pick(blocks);
    const e = rng.pick(block.entries.filter((x) => !REPEATABLE.has(x.id)));
    const copy = entry.bytes.subarray(e.at, e.end);
    return { name: `property 0x${e.id.toString(16)} twice`, bytes: splice(entry, e.end, 0, Buffer.from(copy), block), mustClose: `property 0x${e.id.toString(16)} included more than once` };
  },
  propertyLength(entry, rng) {
    if (entry.layout.props.length === 0) return undefined;
    const block = rng.pick(entry.layout.props);
    const out = Buffer.from(entry.bytes);
    // Only the last byte of the varint: the value moves by a small amount or past the packet.
    const last = block.at + block.lengthBytes - 1;
    out[last] = rng.pick([(out[last]! + 1) & 0x7f, (out[last]! - 1) & 0x7f, 0x7f, (out[last]! & 0x80) | 0x00]);
    return { name: 'property length changed', bytes: out };
  },
  propertyLengthOverlong(entry, rng) {
    if (entry.layout.props.length === 0) return undefined;
    const block = rng.pick(entry.layout.props);
    const bad = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]);
    const bytes = splice(entry, block.at, block.lengthBytes, bad);
    return { name: 'property length of 5 bytes', bytes, mustClose: 'Variable Byte Integer longer than 4 bytes [MQTT-1.5.5]' };
  },
  propertyValue(entry, rng) {
    const candidates: Array<{ block: PropertyBlock; at: number; id: number; end: number }> = [];
    for (const block of entry.layout.props) for (const e of block.entries) candidates.push({ block, ...e });
    if (candidates.length === 0) return undefined;
    const c = rng.pick(candidates);
    const spec = PROP_BY_ID.get(c.id);
    const clientSent = CLIENT_TYPES.has(c.block.context);
    if (spec?.type === 'byte') {
      const value = rng.pick([2, 3, 0x7f, 0xff]);
      const m: Mutation = { name: `property ${spec.name} = ${value}`, bytes: withByte(entry.bytes, c.at + 1, value) };
      if (clientSent && CLIENT_BOOLEAN_BYTES.has(c.id)) m.mustClose = `${spec.name} = ${value} (only 0 or 1)`;
      return m;
    }
    if (spec && (spec.type === 'u16' || spec.type === 'u32')) {
      const out = Buffer.from(entry.bytes);
      out.fill(0, c.at + 1, c.end);
      const m: Mutation = { name: `property ${spec.name} = 0`, bytes: out };
      if (clientSent && ZERO_IS_ERROR.has(c.id)) m.mustClose = `${spec.name} = 0 is a Protocol Error`;
      return m;
    }
    if (spec?.type === 'varint' && c.block.context === PacketType.SUBSCRIBE) {
      return { name: 'subscription identifier 0', bytes: splice(entry, c.at + 1, c.end - c.at - 1, Buffer.from([0]), c.block), mustClose: 'subscription identifier 0 [MQTT-3.8.2.1.2]' };
    }
    return undefined;
  },
};

const STRUCTURAL: ReadonlyArray<readonly [number, string]> = [
  [3, 'flags'], [3, 'type'], [1, 'remainingLengthOverlong'], [1, 'remainingLengthHuge'], [2, 'remainingLengthNonMinimal'],
  [3, 'remainingLengthDelta'], [2, 'truncate'], [5, 'bitflip'], [4, 'interestingByte'], [3, 'insertBytes'], [3, 'deleteBytes'],
  [4, 'stringLength'], [6, 'illFormedUtf8'], [2, 'wildcardInTopic'],
];
const PROPERTIES: ReadonlyArray<readonly [number, string]> = [
  [3, 'unknownProperty'], [3, 'propertyOutOfContext'], [3, 'duplicateProperty'], [3, 'propertyLength'], [1, 'propertyLengthOverlong'],
  [4, 'propertyValue'],
];

export const MUTATOR_NAMES: readonly string[] = Object.keys(mutators);

/** One mutation of `entry`, chosen by weight among those that apply (property mutations for MQTT 5 only). */
export function mutate(entry: CorpusEntry, rng: Prng): Mutation {
  const table = entry.version === 5 && entry.layout.props.length > 0 ? [...STRUCTURAL, ...PROPERTIES] : STRUCTURAL;
  for (let attempt = 0; attempt < 8; attempt++) {
    const m = mutators[rng.weighted(table)]!(entry, rng);
    if (m) return m;
  }
  return mutators.bitflip!(entry, rng)!;
}
