/** MQTT control packet types (fixed header, bits 7-4). */
export const PacketType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
} as const;
export type PacketTypeCode = (typeof PacketType)[keyof typeof PacketType];

export const PACKET_TYPE_NAMES: readonly string[] = [
  'reserved', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP',
  'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH',
];

/** Protocol level byte of CONNECT: 3 = MQTT 3.1 ("MQIsdp"), 4 = 3.1.1, 5 = 5.0. */
export type ProtocolVersion = 3 | 4 | 5;
export const PROTOCOL_NAME_V31 = 'MQIsdp';
export const PROTOCOL_NAME = 'MQTT';

export type QoS = 0 | 1 | 2;

/** Largest value the variable byte integer can carry (4 bytes). */
export const MAX_REMAINING_LENGTH = 268_435_455;
/** MQTT 3.1 limits client identifiers to 23 characters. */
export const MAX_CLIENT_ID_LENGTH_V31 = 23;
