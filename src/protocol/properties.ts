import { PacketType } from './constants.js';
import { malformed, protocolViolation } from './errors.js';
import type { Properties } from './packets.js';
import { type Reader, varintLength, type Writer } from './primitives.js';

type PropertyType = 'byte' | 'u16' | 'u32' | 'varint' | 'utf8' | 'binary' | 'pair';
type PropertyName = keyof Properties;

/** Where a property may appear: packet types, plus WILL for the will properties of CONNECT. */
export const WILL = 0x100;
const P = PacketType;
const ALL_WITH_PROPERTIES = [P.CONNECT, P.CONNACK, P.PUBLISH, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.SUBSCRIBE,
  P.SUBACK, P.UNSUBSCRIBE, P.UNSUBACK, P.DISCONNECT, P.AUTH, WILL];

interface PropertySpec {
  id: number;
  name: PropertyName;
  type: PropertyType;
  allowed: readonly number[];
  /** May appear more than once (user properties; subscription identifiers in PUBLISH). */
  repeatable?: boolean;
  /** Only 0 or 1 are valid values. */
  boolean?: boolean;
  /** Zero is a protocol error. */
  nonZero?: boolean;
}

/** MQTT 5.0 section 2.2.2.2: every property with its identifier, type and the packets it belongs to. */
const SPECS: readonly PropertySpec[] = [
  { id: 0x01, name: 'payloadFormatIndicator', type: 'byte', allowed: [P.PUBLISH, WILL], boolean: true },
  { id: 0x02, name: 'messageExpiryInterval', type: 'u32', allowed: [P.PUBLISH, WILL] },
  { id: 0x03, name: 'contentType', type: 'utf8', allowed: [P.PUBLISH, WILL] },
  { id: 0x08, name: 'responseTopic', type: 'utf8', allowed: [P.PUBLISH, WILL] },
  { id: 0x09, name: 'correlationData', type: 'binary', allowed: [P.PUBLISH, WILL] },
  { id: 0x0b, name: 'subscriptionIdentifiers', type: 'varint', allowed: [P.PUBLISH, P.SUBSCRIBE], repeatable: true, nonZero: true },
  { id: 0x11, name: 'sessionExpiryInterval', type: 'u32', allowed: [P.CONNECT, P.CONNACK, P.DISCONNECT] },
  { id: 0x12, name: 'assignedClientIdentifier', type: 'utf8', allowed: [P.CONNACK] },
  { id: 0x13, name: 'serverKeepAlive', type: 'u16', allowed: [P.CONNACK] },
  { id: 0x15, name: 'authenticationMethod', type: 'utf8', allowed: [P.CONNECT, P.CONNACK, P.AUTH] },
  { id: 0x16, name: 'authenticationData', type: 'binary', allowed: [P.CONNECT, P.CONNACK, P.AUTH] },
  { id: 0x17, name: 'requestProblemInformation', type: 'byte', allowed: [P.CONNECT], boolean: true },
  { id: 0x18, name: 'willDelayInterval', type: 'u32', allowed: [WILL] },
  { id: 0x19, name: 'requestResponseInformation', type: 'byte', allowed: [P.CONNECT], boolean: true },
  { id: 0x1a, name: 'responseInformation', type: 'utf8', allowed: [P.CONNACK] },
  { id: 0x1c, name: 'serverReference', type: 'utf8', allowed: [P.CONNACK, P.DISCONNECT] },
  { id: 0x1f, name: 'reasonString', type: 'utf8', allowed: [P.CONNACK, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.SUBACK, P.UNSUBACK, P.DISCONNECT, P.AUTH] },
  { id: 0x21, name: 'receiveMaximum', type: 'u16', allowed: [P.CONNECT, P.CONNACK], nonZero: true },
  { id: 0x22, name: 'topicAliasMaximum', type: 'u16', allowed: [P.CONNECT, P.CONNACK] },
  { id: 0x23, name: 'topicAlias', type: 'u16', allowed: [P.PUBLISH], nonZero: true },
  { id: 0x24, name: 'maximumQoS', type: 'byte', allowed: [P.CONNACK], boolean: true },
  { id: 0x25, name: 'retainAvailable', type: 'byte', allowed: [P.CONNACK], boolean: true },
  { id: 0x26, name: 'userProperties', type: 'pair', allowed: ALL_WITH_PROPERTIES, repeatable: true },
  { id: 0x27, name: 'maximumPacketSize', type: 'u32', allowed: [P.CONNECT, P.CONNACK], nonZero: true },
  { id: 0x28, name: 'wildcardSubscriptionAvailable', type: 'byte', allowed: [P.CONNACK], boolean: true },
  { id: 0x29, name: 'subscriptionIdentifiersAvailable', type: 'byte', allowed: [P.CONNACK], boolean: true },
  { id: 0x2a, name: 'sharedSubscriptionAvailable', type: 'byte', allowed: [P.CONNACK], boolean: true },
];

const BY_ID = new Map(SPECS.map((s) => [s.id, s]));
const BY_NAME = new Map(SPECS.map((s) => [s.name, s]));

/** Reads a property block for `context` (a packet type or WILL); validates ids, types, duplicates and values. */
export function readProperties(r: Reader, context: number): Properties | undefined {
  const length = r.varint('property length');
  if (length === 0) return undefined;
  if (length > r.remaining) throw malformed('property length exceeds the packet');
  const end = r.pos + length;
  const props: Properties = {};
  const seen = new Set<number>();
  while (r.pos < end) {
    const id = r.varint('property identifier');
    const spec = BY_ID.get(id);
    if (!spec || !spec.allowed.includes(context)) {
      throw malformed(`property 0x${id.toString(16)} is not valid in this packet`);
    }
    if (seen.has(id) && !(spec.repeatable && (spec.name !== 'subscriptionIdentifiers' || context === P.PUBLISH))) {
      throw protocolViolation(`property ${spec.name} appears more than once`);
    }
    seen.add(id);
    const value = readValue(r, spec);
    if (r.pos > end) throw malformed(`property ${spec.name} runs past the property block`);
    if (spec.boolean && value !== 0 && value !== 1) throw protocolViolation(`property ${spec.name} must be 0 or 1`);
    if (spec.nonZero && value === 0) throw protocolViolation(`property ${spec.name} must not be 0`);
    assign(props, spec, value);
  }
  return props;
}

function readValue(r: Reader, spec: PropertySpec): number | string | Buffer | [string, string] {
  switch (spec.type) {
    case 'byte': return r.u8(spec.name);
    case 'u16': return r.u16(spec.name);
    case 'u32': return r.u32(spec.name);
    case 'varint': return r.varint(spec.name);
    case 'utf8': return r.utf8(spec.name);
    case 'binary': return r.binary(spec.name);
    case 'pair': return [r.utf8('user property name'), r.utf8('user property value')];
  }
}

function assign(props: Properties, spec: PropertySpec, value: number | string | Buffer | [string, string]): void {
  const bag = props as Record<string, unknown>;
  if (spec.name === 'userProperties') ((bag.userProperties ??= []) as Array<[string, string]>).push(value as [string, string]);
  else if (spec.name === 'subscriptionIdentifiers') ((bag.subscriptionIdentifiers ??= []) as number[]).push(value as number);
  else bag[spec.name] = value;
}

/** Byte length of the encoded property block, length prefix included. */
export function propertiesLength(props: Properties | undefined): number {
  const body = propertiesBodyLength(props);
  return varintLength(body) + body;
}

function propertiesBodyLength(props: Properties | undefined): number {
  if (!props) return 0;
  let total = 0;
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined) continue;
    const spec = BY_NAME.get(name as PropertyName);
    if (!spec) throw new RangeError(`unknown property ${name}`);
    if (spec.name === 'userProperties') {
      for (const [k, v] of value as Array<[string, string]>) total += 1 + 4 + Buffer.byteLength(k) + Buffer.byteLength(v);
    } else if (spec.name === 'subscriptionIdentifiers') {
      for (const id of value as number[]) total += 1 + varintLength(id);
    } else {
      total += 1 + valueLength(spec.type, value as number | string | Buffer);
    }
  }
  return total;
}

function valueLength(type: PropertyType, value: number | string | Buffer): number {
  switch (type) {
    case 'byte': return 1;
    case 'u16': return 2;
    case 'u32': return 4;
    case 'varint': return varintLength(value as number);
    case 'utf8': return 2 + Buffer.byteLength(value as string);
    case 'binary': return 2 + (value as Buffer).length;
    case 'pair': throw new RangeError('pair handled by caller');
  }
}

export function writeProperties(w: Writer, props: Properties | undefined): void {
  w.varint(propertiesBodyLength(props));
  if (!props) return;
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined) continue;
    const spec = BY_NAME.get(name as PropertyName)!;
    if (spec.name === 'userProperties') {
      for (const [k, v] of value as Array<[string, string]>) {
        w.u8(spec.id);
        w.utf8(k, Buffer.byteLength(k));
        w.utf8(v, Buffer.byteLength(v));
      }
    } else if (spec.name === 'subscriptionIdentifiers') {
      for (const id of value as number[]) {
        w.u8(spec.id);
        w.varint(id);
      }
    } else {
      w.u8(spec.id);
      writeValue(w, spec.type, value as number | string | Buffer);
    }
  }
}

function writeValue(w: Writer, type: PropertyType, value: number | string | Buffer): void {
  switch (type) {
    case 'byte': return w.u8(value as number);
    case 'u16': return w.u16(value as number);
    case 'u32': return w.u32(value as number);
    case 'varint': return w.varint(value as number);
    case 'utf8': return w.utf8(value as string, Buffer.byteLength(value as string));
    case 'binary': return w.binary(value as Buffer);
    case 'pair': throw new RangeError('pair handled by caller');
  }
}
