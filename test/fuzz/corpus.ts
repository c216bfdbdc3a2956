/**
 * The fuzzer's seed corpus: valid MQTT 3.1, 3.1.1 and 5.0 packets drawn from the codec tests' fast-check
 * arbitraries (deterministically, from the run's seed) and encoded with the project's encoder, each with
 * a layout (where its strings, property blocks and properties lie) so that mutations can aim at fields.
 */
import fc from 'fast-check';
import { encodePacket, PacketType, type ConnectPacket, type Packet, type ProtocolVersion } from '../../src/protocol/index.js';
import { connectArb, packetArbs, varint } from '../helpers/codec.js';
import { connectV5Arb, packetArbsV5, PROPERTY_TABLE, WILL, type PropType } from '../helpers/codec-v5.js';

export type Version = 3 | 4 | 5;
export const VERSIONS: readonly Version[] = [3, 4, 5];

/** A two-byte length-prefixed field: `at` is the offset of the length, the data follows it. */
export interface StringField {
  at: number;
  length: number;
  /** UTF-8 Encoded String (true) or Binary Data (false). */
  utf8: boolean;
  /** The topic name of a PUBLISH, or a topic filter: wildcard and level rules apply. */
  role?: 'topic' | 'filter' | 'clientId' | 'protocolName';
}

export interface PropertyEntry {
  /** Offset of the identifier byte. */
  at: number;
  id: number;
  /** Offset just past the value. */
  end: number;
}

export interface PropertyBlock {
  /** Offset of the property length (a Variable Byte Integer). */
  at: number;
  /** Bytes of the property length. */
  lengthBytes: number;
  /** The packet type, or WILL, whose properties these are. */
  context: number;
  entries: PropertyEntry[];
}

export interface Layout {
  /** Bytes of the fixed header (type byte and remaining length). */
  headerLength: number;
  strings: StringField[];
  props: PropertyBlock[];
}

export interface CorpusEntry {
  version: Version;
  type: number;
  packet: Packet;
  bytes: Buffer;
  layout: Layout;
}

export interface Corpus {
  /** Valid CONNECT packets by version. */
  connects: Record<Version, CorpusEntry[]>;
  /** Every other valid packet type (those only a server sends included) by version. */
  packets: Record<Version, CorpusEntry[]>;
  /** The client-to-server packets among them (PUBLISH, acks, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, AUTH). */
  clientPackets: Record<Version, CorpusEntry[]>;
}

const PROP_TYPES: ReadonlyMap<number, PropType> = new Map(PROPERTY_TABLE.map((p) => [p.id, p.type]));

const SERVER_ONLY: ReadonlySet<number> = new Set([PacketType.CONNACK, PacketType.SUBACK, PacketType.UNSUBACK, PacketType.PINGRESP]);

/** Packets larger than this are kept only a few times per version, so throughput stays in packets, not bytes. */
const LARGE = 2048;
const MAX_LARGE_PER_VERSION = 4;

export interface CorpusOptions {
  seed: number;
  /** CONNECT packets per version (default 48). */
  connects?: number;
  /** Other packets per version (default 480). */
  packets?: number;
}

export function buildCorpus(options: CorpusOptions): Corpus {
  const connects = {} as Record<Version, CorpusEntry[]>;
  const packets = {} as Record<Version, CorpusEntry[]>;
  const clientPackets = {} as Record<Version, CorpusEntry[]>;
  for (const version of VERSIONS) {
    const seed = (options.seed ^ (version * 0x9e3779b1)) | 0;
    const connectArbitrary = version === 5 ? connectV5Arb() : connectArb(version);
    const others = version === 5 ? packetArbsV5() : packetArbs(version);
    const otherArbitrary = fc.oneof(...Object.values(others));
    connects[version] = sampleEntries(connectArbitrary, version, seed, options.connects ?? 48);
    packets[version] = sampleEntries(otherArbitrary, version, seed + 1, options.packets ?? 480);
    clientPackets[version] = packets[version].filter((e) => !SERVER_ONLY.has(e.type));
  }
  return { connects, packets, clientPackets };
}

function sampleEntries(arb: fc.Arbitrary<Packet>, version: Version, seed: number, count: number): CorpusEntry[] {
  const out: CorpusEntry[] = [];
  let large = 0;
  for (const packet of fc.sample(arb, { seed, numRuns: count })) {
    let bytes: Buffer;
    try {
      bytes = encodePacket(packet, version);
    } catch {
      continue;
    }
    if (bytes.length > LARGE && ++large > MAX_LARGE_PER_VERSION) continue;
    out.push({ version, type: packet.type, packet, bytes, layout: layoutOf(bytes, version) });
  }
  return out;
}

/**
 * Encodes a corpus CONNECT again with a user name and password (authenticated runs), with its layout. An
 * MQTT 5 Authentication Method is dropped with them: the credentials are for the password file, not an
 * enhanced method (the corpus's made-up method names stay on the CONNECTs left as they were).
 */
export function withCredentials(entry: CorpusEntry, username: string, password: Buffer): CorpusEntry {
  const packet: ConnectPacket = { ...(entry.packet as ConnectPacket), username, password };
  if (packet.properties?.authenticationMethod !== undefined) {
    const { authenticationMethod: _method, authenticationData: _data, ...rest } = packet.properties;
    packet.properties = rest;
  }
  const bytes = encodePacket(packet, entry.version);
  return { ...entry, packet, bytes, layout: layoutOf(bytes, entry.version) };
}

/** Encodes a corpus CONNECT again with another Client Identifier (or clean flag), with its layout. */
export function withClientId(entry: CorpusEntry, clientId: string, clean?: boolean): CorpusEntry {
  const packet = { ...(entry.packet as ConnectPacket), clientId };
  if (clean !== undefined) packet.clean = clean;
  const bytes = encodePacket(packet, entry.version);
  return { ...entry, packet, bytes, layout: layoutOf(bytes, entry.version) };
}

// ---------------------------------------------------------------- layout of a valid packet

function readVarint(buf: Buffer, pos: number): { value: number; bytes: number } {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4 && pos + i < buf.length; i++) {
    const b = buf[pos + i]!;
    value += (b & 0x7f) * multiplier;
    multiplier *= 128;
    if ((b & 0x80) === 0) return { value, bytes: i + 1 };
  }
  throw new RangeError('bad varint');
}

/**
 * Where the fields of a valid packet lie. Written apart from the codec (it only has to follow valid
 * packets); on anything unexpected it returns what it found so far.
 */
export function layoutOf(buf: Buffer, version: Version): Layout {
  const rl = readVarint(buf, 1);
  const layout: Layout = { headerLength: 1 + rl.bytes, strings: [], props: [] };
  const end = layout.headerLength + rl.value;
  let pos = layout.headerLength;
  const type = buf[0]! >> 4;
  const flags = buf[0]! & 0x0f;
  const str = (utf8: boolean, role?: StringField['role']): void => {
    const length = buf.readUInt16BE(pos);
    const field: StringField = { at: pos, length, utf8 };
    if (role) field.role = role;
    layout.strings.push(field);
    pos += 2 + length;
  };
  const props = (context: number): void => {
    if (version !== 5) return;
    const len = readVarint(buf, pos);
    const block: PropertyBlock = { at: pos, lengthBytes: len.bytes, context, entries: [] };
    pos += len.bytes;
    const stop = pos + len.value;
    while (pos < stop) {
      const at = pos;
      const id = buf[pos++]!;
      switch (PROP_TYPES.get(id)) {
        case 'byte': pos += 1; break;
        case 'u16': pos += 2; break;
        case 'u32': pos += 4; break;
        case 'varint': pos += readVarint(buf, pos).bytes; break;
        case 'utf8': str(true); break;
        case 'binary': str(false); break;
        case 'pair': str(true); str(true); break;
        default: throw new RangeError(`unknown property ${id}`);
      }
      block.entries.push({ at, id, end: pos });
    }
    layout.props.push(block);
  };
  try {
    switch (type) {
      case PacketType.CONNECT: {
        str(true, 'protocolName');
        pos += 1;
        const cf = buf[pos]!;
        pos += 3;
        props(PacketType.CONNECT);
        str(true, 'clientId');
        if (cf & 0x04) {
          props(WILL);
          str(true, 'topic');
          str(false);
        }
        if (cf & 0x80) str(true);
        if (cf & 0x40) str(false);
        break;
      }
      case PacketType.PUBLISH:
        str(true, 'topic');
        if (flags & 0x06) pos += 2;
        props(PacketType.PUBLISH);
        break;
      case PacketType.PUBACK: case PacketType.PUBREC: case PacketType.PUBREL: case PacketType.PUBCOMP:
        pos += 2;
        if (end - pos > 1) {
          pos += 1;
          props(type);
        }
        break;
      case PacketType.SUBSCRIBE:
        pos += 2;
        props(type);
        while (pos < end) {
          str(true, 'filter');
          pos += 1;
        }
        break;
      case PacketType.UNSUBSCRIBE:
        pos += 2;
        props(type);
        while (pos < end) str(true, 'filter');
        break;
      case PacketType.SUBACK: case PacketType.UNSUBACK:
        pos += 2;
        props(type);
        break;
      case PacketType.CONNACK:
        pos += 2;
        props(type);
        break;
      case PacketType.DISCONNECT: case PacketType.AUTH:
        if (end - pos > 1) {
          pos += 1;
          props(type);
        }
        break;
      default:
        break;
    }
  } catch {
    // A partial layout is still useful.
  }
  return layout;
}

export function encodeVarint(n: number): Buffer {
  return Buffer.from(varint(n));
}

export type { ProtocolVersion };
