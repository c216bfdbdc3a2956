/**
 * Helpers for MQTT 5 codec tests: an independent copy of the specification's
 * property and reason-code tables (MQTT 5.0 sections 2.2.2.2 and 3.x.2.1),
 * raw byte builders for hand-made v5 packets, fast-check arbitraries for valid
 * level-5 packets, and the normalisation that maps a packet to the form the
 * decoder reports (optional reason codes and empty property blocks).
 */
import fc from 'fast-check';
import {
  PacketType,
  type AuthPacket, type ConnackPacket, type ConnectPacket, type DisconnectPacket, type Packet, type Properties,
  type PublishPacket, type QoS, type SubackPacket, type SubscribePacket, type SubscriptionRequest, type UnsubackPacket,
  type UnsubscribePacket, type WillMessage,
} from '../../src/protocol/index.js';
import { lp, packetId, payload, qos, rawPacket, topicFilter, topicName, u16, utf8String, varint } from './codec.js';

const P = PacketType;

// ---------------------------------------------------------------- the specification's tables

/** Context of the will properties of CONNECT (not a packet type). */
export const WILL = 0x100;

export type PropType = 'byte' | 'u16' | 'u32' | 'varint' | 'utf8' | 'binary' | 'pair';

export interface PropSpec {
  id: number;
  name: keyof Properties;
  type: PropType;
  /** Packet types (and WILL) the property may appear in: MQTT 5.0 table 2-4. */
  contexts: readonly number[];
}

const ALL = [P.CONNECT, P.CONNACK, P.PUBLISH, WILL, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.SUBSCRIBE, P.SUBACK,
  P.UNSUBSCRIBE, P.UNSUBACK, P.DISCONNECT, P.AUTH];

/** MQTT 5.0 section 2.2.2.2, table 2-4 (typed out from the specification, not from the codec). */
export const PROPERTY_TABLE: readonly PropSpec[] = [
  { id: 0x01, name: 'payloadFormatIndicator', type: 'byte', contexts: [P.PUBLISH, WILL] },
  { id: 0x02, name: 'messageExpiryInterval', type: 'u32', contexts: [P.PUBLISH, WILL] },
  { id: 0x03, name: 'contentType', type: 'utf8', contexts: [P.PUBLISH, WILL] },
  { id: 0x08, name: 'responseTopic', type: 'utf8', contexts: [P.PUBLISH, WILL] },
  { id: 0x09, name: 'correlationData', type: 'binary', contexts: [P.PUBLISH, WILL] },
  { id: 0x0b, name: 'subscriptionIdentifiers', type: 'varint', contexts: [P.PUBLISH, P.SUBSCRIBE] },
  { id: 0x11, name: 'sessionExpiryInterval', type: 'u32', contexts: [P.CONNECT, P.CONNACK, P.DISCONNECT] },
  { id: 0x12, name: 'assignedClientIdentifier', type: 'utf8', contexts: [P.CONNACK] },
  { id: 0x13, name: 'serverKeepAlive', type: 'u16', contexts: [P.CONNACK] },
  { id: 0x15, name: 'authenticationMethod', type: 'utf8', contexts: [P.CONNECT, P.CONNACK, P.AUTH] },
  { id: 0x16, name: 'authenticationData', type: 'binary', contexts: [P.CONNECT, P.CONNACK, P.AUTH] },
  { id: 0x17, name: 'requestProblemInformation', type: 'byte', contexts: [P.CONNECT] },
  { id: 0x18, name: 'willDelayInterval', type: 'u32', contexts: [WILL] },
  { id: 0x19, name: 'requestResponseInformation', type: 'byte', contexts: [P.CONNECT] },
  { id: 0x1a, name: 'responseInformation', type: 'utf8', contexts: [P.CONNACK] },
  { id: 0x1c, name: 'serverReference', type: 'utf8', contexts: [P.CONNACK, P.DISCONNECT] },
  { id: 0x1f, name: 'reasonString', type: 'utf8',
    contexts: [P.CONNACK, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.SUBACK, P.UNSUBACK, P.DISCONNECT, P.AUTH] },
  { id: 0x21, name: 'receiveMaximum', type: 'u16', contexts: [P.CONNECT, P.CONNACK] },
  { id: 0x22, name: 'topicAliasMaximum', type: 'u16', contexts: [P.CONNECT, P.CONNACK] },
  { id: 0x23, name: 'topicAlias', type: 'u16', contexts: [P.PUBLISH] },
  { id: 0x24, name: 'maximumQoS', type: 'byte', contexts: [P.CONNACK] },
  { id: 0x25, name: 'retainAvailable', type: 'byte', contexts: [P.CONNACK] },
  { id: 0x26, name: 'userProperties', type: 'pair', contexts: ALL },
  { id: 0x27, name: 'maximumPacketSize', type: 'u32', contexts: [P.CONNECT, P.CONNACK] },
  { id: 0x28, name: 'wildcardSubscriptionAvailable', type: 'byte', contexts: [P.CONNACK] },
  { id: 0x29, name: 'subscriptionIdentifiersAvailable', type: 'byte', contexts: [P.CONNACK] },
  { id: 0x2a, name: 'sharedSubscriptionAvailable', type: 'byte', contexts: [P.CONNACK] },
];

/** Properties whose only valid values are 0 and 1. */
export const BOOLEAN_PROPERTIES: ReadonlySet<string> = new Set([
  'payloadFormatIndicator', 'requestProblemInformation', 'requestResponseInformation', 'maximumQoS', 'retainAvailable',
  'wildcardSubscriptionAvailable', 'subscriptionIdentifiersAvailable', 'sharedSubscriptionAvailable',
]);

/** Every context that carries a property block, with a readable name. */
export const CONTEXTS: ReadonlyArray<[string, number]> = [
  ['CONNECT', P.CONNECT], ['will properties', WILL], ['CONNACK', P.CONNACK], ['PUBLISH', P.PUBLISH],
  ['PUBACK', P.PUBACK], ['PUBREC', P.PUBREC], ['PUBREL', P.PUBREL], ['PUBCOMP', P.PUBCOMP],
  ['SUBSCRIBE', P.SUBSCRIBE], ['SUBACK', P.SUBACK], ['UNSUBSCRIBE', P.UNSUBSCRIBE], ['UNSUBACK', P.UNSUBACK],
  ['DISCONNECT', P.DISCONNECT], ['AUTH', P.AUTH],
];

const R = {
  Success: 0x00, GrantedQoS1: 0x01, GrantedQoS2: 0x02, DisconnectWithWill: 0x04, NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11, ContinueAuthentication: 0x18, ReAuthenticate: 0x19,
} as const;

/** Reason codes each packet may carry: MQTT 5.0 tables 3-1, 3-4 .. 3-8, 3-9, 3-10, 3-11, 3-12, 3-13. */
export const REASON_CODES: Readonly<Record<string, readonly number[]>> = {
  CONNACK: [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a,
    0x9b, 0x9c, 0x9d, 0x9f],
  PUBACK: [R.Success, R.NoMatchingSubscribers, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  PUBREC: [R.Success, R.NoMatchingSubscribers, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  PUBREL: [R.Success, 0x92],
  PUBCOMP: [R.Success, 0x92],
  SUBACK: [R.Success, R.GrantedQoS1, R.GrantedQoS2, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
  UNSUBACK: [R.Success, R.NoSubscriptionExisted, 0x80, 0x83, 0x87, 0x8f, 0x91],
  DISCONNECT: [R.Success, R.DisconnectWithWill, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93,
    0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2],
  AUTH: [R.Success, R.ContinueAuthentication, R.ReAuthenticate],
};

// ---------------------------------------------------------------- raw bytes

/** One property: identifier (a one-byte Variable Byte Integer) followed by the value bytes. */
export function prop(id: number, value: readonly number[]): number[] {
  return [...varint(id), ...value];
}
export const pByte = (id: number, v: number): number[] => prop(id, [v & 0xff]);
export const pU16 = (id: number, v: number): number[] => prop(id, u16(v));
export const pU32 = (id: number, v: number): number[] => prop(id, [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
export const pVarint = (id: number, v: number): number[] => prop(id, varint(v));
export const pStr = (id: number, s: string | readonly number[]): number[] => prop(id, lp(s));
export const pBin = (id: number, b: readonly number[]): number[] => prop(id, lp(b));
export const pPair = (k: string | readonly number[], v: string | readonly number[]): number[] => prop(0x26, [...lp(k), ...lp(v)]);

/** A property block: Variable Byte Integer length, then the properties. */
export function block(...props: ReadonlyArray<readonly number[]>): number[] {
  const body = props.flat();
  return [...varint(body.length), ...body];
}
export const NO_PROPS: readonly number[] = [0];

/** A property with a valid value of its type (1, "x", [1], ("k","v")). */
export function sampleProperty(spec: PropSpec): number[] {
  switch (spec.type) {
    case 'byte': return pByte(spec.id, 1);
    case 'u16': return pU16(spec.id, 1);
    case 'u32': return pU32(spec.id, 1);
    case 'varint': return pVarint(spec.id, 1);
    case 'utf8': return pStr(spec.id, 'x');
    case 'binary': return pBin(spec.id, [1]);
    case 'pair': return pPair('k', 'v');
  }
}

export interface RawConnectV5 {
  flags?: number;
  keepalive?: number;
  props?: readonly number[];
  clientId?: string | number[];
  will?: { props?: readonly number[]; topic?: string | number[]; message?: number[]; qos?: number; retain?: boolean };
  username?: string | number[];
  password?: number[];
  level?: number;
}

/** A level-5 CONNECT built field by field. `props`/`will.props` are whole property blocks (default: empty). */
export function rawConnectV5(c: RawConnectV5 = {}): Buffer {
  let flags = 0x02;
  if (c.will) flags |= 0x04 | ((c.will.qos ?? 0) << 3) | (c.will.retain ? 0x20 : 0);
  if (c.username !== undefined) flags |= 0x80;
  if (c.password !== undefined) flags |= 0x40;
  if (c.flags !== undefined) flags = c.flags;
  const level = c.level ?? 5;
  const body = [...lp('MQTT'), level, flags, ...u16(c.keepalive ?? 60)];
  if (level === 5) body.push(...(c.props ?? NO_PROPS));
  body.push(...lp(c.clientId ?? 'client'));
  if (c.will) {
    if (level === 5) body.push(...(c.will.props ?? NO_PROPS));
    body.push(...lp(c.will.topic ?? 'will/t'), ...lp(c.will.message ?? [1, 2, 3]));
  }
  if (c.username !== undefined) body.push(...lp(c.username));
  if (c.password !== undefined) body.push(...lp(c.password));
  return rawPacket(0x10, body);
}

export interface RawPublishV5 {
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  topic?: string | number[];
  packetId?: number;
  /** Whole property block; omit for an empty one, pass [] to leave the property length out. */
  props?: readonly number[];
  payload?: number[];
}

export function rawPublishV5(p: RawPublishV5 = {}): Buffer {
  const q = p.qos ?? 1;
  const flags = ((p.dup ? 1 : 0) << 3) | (q << 1) | (p.retain ? 1 : 0);
  const body = [...lp(p.topic ?? 'a/b')];
  if (q > 0) body.push(...u16(p.packetId ?? 1));
  body.push(...(p.props ?? NO_PROPS), ...(p.payload ?? [0x68, 0x69]));
  return rawPacket(0x30 | flags, body);
}

/** SUBSCRIBE with a property block and (filter, options byte) entries. */
export function rawSubscribeV5(entries: ReadonlyArray<[string | number[], number]>, props: readonly number[] = NO_PROPS, id = 1): Buffer {
  const body = [...u16(id), ...props];
  for (const [filter, options] of entries) body.push(...lp(filter), options);
  return rawPacket(0x82, body);
}

export function rawUnsubscribeV5(filters: ReadonlyArray<string | number[]>, props: readonly number[] = NO_PROPS, id = 1): Buffer {
  const body = [...u16(id), ...props];
  for (const f of filters) body.push(...lp(f));
  return rawPacket(0xa2, body);
}

/** A valid level-5 packet of the given context (packet type or WILL) carrying the given property block. */
export function packetWithProps(context: number, props: readonly number[]): Buffer {
  switch (context) {
    case P.CONNECT: return rawConnectV5({ props });
    case WILL: return rawConnectV5({ will: { props } });
    case P.CONNACK: return rawPacket(0x20, [0, 0, ...props]);
    case P.PUBLISH: return rawPublishV5({ props });
    case P.PUBACK: return rawPacket(0x40, [...u16(1), 0, ...props]);
    case P.PUBREC: return rawPacket(0x50, [...u16(1), 0, ...props]);
    case P.PUBREL: return rawPacket(0x62, [...u16(1), 0, ...props]);
    case P.PUBCOMP: return rawPacket(0x70, [...u16(1), 0, ...props]);
    case P.SUBSCRIBE: return rawSubscribeV5([['a', 0]], props);
    case P.SUBACK: return rawPacket(0x90, [...u16(1), ...props, 0]);
    case P.UNSUBSCRIBE: return rawUnsubscribeV5(['a'], props);
    case P.UNSUBACK: return rawPacket(0xb0, [...u16(1), ...props, 0]);
    case P.DISCONNECT: return rawPacket(0xe0, [0, ...props]);
    case P.AUTH: return rawPacket(0xf0, [0, ...props]);
    default: throw new RangeError(`no property block in context ${context}`);
  }
}

/** The decoded properties of a packet built by packetWithProps. */
export function propsOf(packet: Packet, context: number): Properties | undefined {
  if (context === WILL) return (packet as ConnectPacket).will?.properties;
  return (packet as { properties?: Properties }).properties;
}

// ---------------------------------------------------------------- normalisation

function cleanProperties(props: Properties | undefined): Properties | undefined {
  if (!props) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    out[k] = v;
  }
  return Object.keys(out).length === 0 ? undefined : (out as Properties);
}

/**
 * The packet as a level-5 decoder reports it: empty property blocks are absent;
 * PUBACK/PUBREC/PUBREL/PUBCOMP carry a reason code only when the long form is
 * on the wire (reason code not 0, or properties); DISCONNECT and AUTH always
 * carry one (absent on the wire means 0x00).
 */
export function normalizeV5(packet: Packet): Packet {
  const p = { ...packet } as Packet & { properties?: Properties; reasonCode?: number };
  const props = cleanProperties(p.properties);
  if (props) p.properties = props;
  else delete p.properties;
  if (p.type === P.CONNECT && p.will) {
    const will: WillMessage = { ...p.will };
    const wp = cleanProperties(will.properties);
    if (wp) will.properties = wp;
    else delete will.properties;
    p.will = will;
  }
  if (p.type >= P.PUBACK && p.type <= P.PUBCOMP) {
    if (!props && (p.reasonCode ?? 0) === 0) delete p.reasonCode;
    else p.reasonCode ??= 0;
  }
  if (p.type === P.DISCONNECT || p.type === P.AUTH) p.reasonCode ??= 0;
  return p;
}

// ---------------------------------------------------------------- arbitraries

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u16Arb = fc.integer({ min: 0, max: 0xffff });
const bit = fc.constantFrom(0, 1);

/** Subscription identifiers 1 .. 268,435,455, biased to the Variable Byte Integer size boundaries. */
export const subscriptionIdentifier: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455),
  fc.integer({ min: 1, max: 268_435_455 }),
);

const binary: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.constantFrom(0, 128, 65_535).map((n) => Buffer.alloc(n, 0xa5)) },
);

/** User properties: several pairs, names often repeated (the same name may appear more than once, 3.1.2.11.8). */
export const userProperties: fc.Arbitrary<Array<[string, string]>> = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom('k', 'dup', ''), utf8String(10)), utf8String(12)),
  { minLength: 1, maxLength: 5 },
);

/** A valid value of one property in `context`. */
export function propertyValueArb(spec: PropSpec, context: number): fc.Arbitrary<unknown> {
  switch (spec.name) {
    case 'subscriptionIdentifiers':
      // Several in a PUBLISH (one per matching subscription); at most one in SUBSCRIBE.
      return fc.array(subscriptionIdentifier, { minLength: 1, maxLength: context === P.PUBLISH ? 4 : 1 });
    case 'userProperties': return userProperties;
    case 'responseTopic': return topicName;
    case 'receiveMaximum': return fc.integer({ min: 1, max: 0xffff });
    case 'topicAlias': return fc.integer({ min: 1, max: 0xffff });
    case 'maximumPacketSize': return fc.integer({ min: 1, max: 0xffff_ffff });
    default: break;
  }
  if (BOOLEAN_PROPERTIES.has(spec.name)) return bit;
  switch (spec.type) {
    case 'byte': return bit;
    case 'u16': return u16Arb;
    case 'u32': return u32;
    case 'varint': return subscriptionIdentifier;
    case 'utf8': return utf8String(16);
    case 'binary': return binary;
    case 'pair': return userProperties;
  }
}

/** A valid property set for `context` (a packet type or WILL), or undefined (no properties). */
export function propertiesArb(context: number): fc.Arbitrary<Properties | undefined> {
  const specs = PROPERTY_TABLE.filter((s) => s.contexts.includes(context));
  const some = fc.tuple(...specs.map((s) => fc.option(propertyValueArb(s, context), { nil: undefined, freq: 2 }))).map((values) => {
    const out: Record<string, unknown> = {};
    values.forEach((v, i) => {
      if (v !== undefined) out[specs[i]!.name] = v;
    });
    return Object.keys(out).length === 0 ? undefined : (out as Properties);
  });
  return fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 4, arbitrary: some });
}

function withProps<T extends object>(p: T, props: Properties | undefined): T {
  if (props) (p as T & { properties?: Properties }).properties = props;
  return p;
}

const shareName: fc.Arbitrary<string> = utf8String(8, 1).map((s) => s.replace(/[/+#]/g, '_'));
/** A plain (non-shared) topic filter. */
export const plainFilter: fc.Arbitrary<string> = topicFilter.filter((f) => !f.startsWith('$share/'));
/** `$share/{ShareName}/{filter}` [MQTT-4.8.2-1], [MQTT-4.8.2-2]. */
export const sharedFilter: fc.Arbitrary<string> = fc.tuple(shareName, topicFilter).map(([g, f]) => `$share/${g}/${f}`);

export const subscriptionV5: fc.Arbitrary<SubscriptionRequest> = fc
  .record({
    shared: fc.boolean(),
    plain: plainFilter,
    share: sharedFilter,
    qos,
    noLocal: fc.boolean(),
    retainAsPublished: fc.boolean(),
    retainHandling: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
  })
  .map((r) => ({
    filter: r.shared ? r.share : r.plain,
    qos: r.qos,
    // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
    noLocal: r.shared ? false : r.noLocal,
    retainAsPublished: r.retainAsPublished,
    retainHandling: r.retainHandling,
  }));

export function willV5Arb(): fc.Arbitrary<WillMessage> {
  return fc
    .record({ topic: topicName, payload: binary, qos, retain: fc.boolean(), properties: propertiesArb(WILL) })
    .map((r) => withProps<WillMessage>({ topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain }, r.properties));
}

export interface ConnectShapeV5 {
  will?: boolean;
  username?: boolean;
  password?: boolean;
}

/** A level-5 CONNECT; a password without a user name is allowed in MQTT 5 (3.1.2.9). */
export function connectV5Arb(shape: ConnectShapeV5 = {}): fc.Arbitrary<ConnectPacket> {
  const flag = (v: boolean | undefined) => (v === undefined ? fc.boolean() : fc.constant(v));
  return fc
    .record({
      clean: fc.boolean(),
      keepalive: u16Arb,
      clientId: utf8String(23),
      properties: propertiesArb(P.CONNECT),
      hasWill: flag(shape.will),
      hasUser: flag(shape.username),
      hasPassword: flag(shape.password),
      will: willV5Arb(),
      username: utf8String(20),
      password: binary,
    })
    .map((r) => {
      const p: ConnectPacket = {
        type: P.CONNECT, protocolName: 'MQTT', protocolVersion: 5, clean: r.clean, keepalive: r.keepalive, clientId: r.clientId,
      };
      withProps(p, r.properties);
      if (r.hasWill) p.will = r.will;
      if (r.hasUser) p.username = r.username;
      if (r.hasPassword) p.password = r.password;
      return p;
    });
}

type AckType = typeof P.PUBACK | typeof P.PUBREC | typeof P.PUBREL | typeof P.PUBCOMP;
const ACK_NAMES: Record<AckType, string> = { [P.PUBACK]: 'PUBACK', [P.PUBREC]: 'PUBREC', [P.PUBREL]: 'PUBREL', [P.PUBCOMP]: 'PUBCOMP' };

function ackArb(type: AckType): fc.Arbitrary<Packet> {
  return fc
    .record({
      packetId,
      reasonCode: fc.option(fc.constantFrom(...REASON_CODES[ACK_NAMES[type]]!), { nil: undefined, freq: 4 }),
      properties: propertiesArb(type),
    })
    .map((r) => {
      const p = { type, packetId: r.packetId } as Packet & { reasonCode?: number };
      if (r.reasonCode !== undefined) p.reasonCode = r.reasonCode;
      return withProps(p, r.properties);
    });
}

/** Arbitraries for every level-5 packet type except CONNECT, keyed by type. */
export function packetArbsV5(): Record<number, fc.Arbitrary<Packet>> {
  const codes = (name: string) => fc.constantFrom(...REASON_CODES[name]!);
  return {
    [P.CONNACK]: fc
      .record({ sessionPresent: fc.boolean(), returnCode: codes('CONNACK'), properties: propertiesArb(P.CONNACK) })
      .map((r) => withProps<ConnackPacket>({
        // Session Present is 0 whenever the reason code is not 0 [MQTT-3.2.2-6].
        type: P.CONNACK, sessionPresent: r.returnCode === 0 && r.sessionPresent, returnCode: r.returnCode,
      }, r.properties)),
    [P.PUBLISH]: fc
      .record({
        qos, dup: fc.boolean(), retain: fc.boolean(), topic: topicName, emptyTopic: fc.boolean(), packetId, payload,
        properties: propertiesArb(P.PUBLISH),
      })
      .map((r) => {
        // An empty topic name is valid when a Topic Alias stands for it (3.3.2.3.4).
        const topic = r.emptyTopic && r.properties?.topicAlias !== undefined ? '' : r.topic;
        const p: PublishPacket = { type: P.PUBLISH, qos: r.qos, dup: r.qos > 0 && r.dup, retain: r.retain, topic, payload: r.payload };
        if (r.qos > 0) p.packetId = r.packetId;
        return withProps(p, r.properties);
      }),
    [P.PUBACK]: ackArb(P.PUBACK),
    [P.PUBREC]: ackArb(P.PUBREC),
    [P.PUBREL]: ackArb(P.PUBREL),
    [P.PUBCOMP]: ackArb(P.PUBCOMP),
    [P.SUBSCRIBE]: fc
      .record({ packetId, subscriptions: fc.array(subscriptionV5, { minLength: 1, maxLength: 5 }), properties: propertiesArb(P.SUBSCRIBE) })
      .map((r) => withProps<SubscribePacket>({ type: P.SUBSCRIBE, packetId: r.packetId, subscriptions: r.subscriptions }, r.properties)),
    [P.SUBACK]: fc
      .record({ packetId, returnCodes: fc.array(codes('SUBACK'), { minLength: 1, maxLength: 8 }), properties: propertiesArb(P.SUBACK) })
      .map((r) => withProps<SubackPacket>({ type: P.SUBACK, packetId: r.packetId, returnCodes: r.returnCodes }, r.properties)),
    [P.UNSUBSCRIBE]: fc
      .record({
        packetId,
        filters: fc.array(fc.oneof(plainFilter, sharedFilter), { minLength: 1, maxLength: 5 }),
        properties: propertiesArb(P.UNSUBSCRIBE),
      })
      .map((r) => withProps<UnsubscribePacket>({ type: P.UNSUBSCRIBE, packetId: r.packetId, filters: r.filters }, r.properties)),
    [P.UNSUBACK]: fc
      .record({ packetId, reasonCodes: fc.array(codes('UNSUBACK'), { minLength: 1, maxLength: 8 }), properties: propertiesArb(P.UNSUBACK) })
      .map((r) => withProps<UnsubackPacket>({ type: P.UNSUBACK, packetId: r.packetId, reasonCodes: r.reasonCodes }, r.properties)),
    [P.PINGREQ]: fc.constant({ type: P.PINGREQ } as Packet),
    [P.PINGRESP]: fc.constant({ type: P.PINGRESP } as Packet),
    [P.DISCONNECT]: fc
      .record({ reasonCode: fc.option(codes('DISCONNECT'), { nil: undefined, freq: 4 }), properties: propertiesArb(P.DISCONNECT) })
      .map((r) => {
        const p: DisconnectPacket = { type: P.DISCONNECT };
        if (r.reasonCode !== undefined) p.reasonCode = r.reasonCode;
        return withProps(p, r.properties);
      }),
    [P.AUTH]: fc
      .record({ reasonCode: codes('AUTH'), properties: propertiesArb(P.AUTH) })
      .map((r) => withProps<AuthPacket>({ type: P.AUTH, reasonCode: r.reasonCode }, r.properties)),
  };
}

/** Any level-5 packet other than CONNECT. */
export function anyPacketV5Arb(): fc.Arbitrary<Packet> {
  return fc.oneof(...Object.values(packetArbsV5()));
}

/** A level-5 stream: an optional CONNECT first, then other packets. */
export const packetStreamV5Arb: fc.Arbitrary<Packet[]> = fc
  .tuple(fc.option(connectV5Arb(), { nil: undefined }), fc.array(anyPacketV5Arb(), { maxLength: 10 }))
  .map(([connect, rest]) => (connect ? [connect as Packet, ...rest] : rest));

export { qos as qosArb };
export type { QoS };
