import type { PacketType, ProtocolVersion, QoS } from './constants.js';

/**
 * MQTT 5 properties. Carried by the data model for every packet so that MQTT 5
 * support adds codec cases, not new shapes. MQTT 3.1/3.1.1 packets leave it unset.
 */
export interface Properties {
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  subscriptionIdentifiers?: number[];
  sessionExpiryInterval?: number;
  assignedClientIdentifier?: string;
  serverKeepAlive?: number;
  authenticationMethod?: string;
  authenticationData?: Buffer;
  requestProblemInformation?: number;
  willDelayInterval?: number;
  requestResponseInformation?: number;
  responseInformation?: string;
  serverReference?: string;
  reasonString?: string;
  receiveMaximum?: number;
  topicAliasMaximum?: number;
  topicAlias?: number;
  maximumQoS?: number;
  retainAvailable?: number;
  userProperties?: Array<[string, string]>;
  maximumPacketSize?: number;
  wildcardSubscriptionAvailable?: number;
  subscriptionIdentifiersAvailable?: number;
  sharedSubscriptionAvailable?: number;
}

export interface WillMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: Properties;
}

export interface ConnectPacket {
  type: typeof PacketType.CONNECT;
  protocolName: string;
  protocolVersion: ProtocolVersion;
  /** Clean Session (3.1.1) / Clean Start (5.0). */
  clean: boolean;
  keepalive: number;
  clientId: string;
  will?: WillMessage;
  username?: string;
  password?: Buffer;
  properties?: Properties;
}

export interface ConnackPacket {
  type: typeof PacketType.CONNACK;
  sessionPresent: boolean;
  /** 3.1.1 return code, or 5.0 reason code. */
  returnCode: number;
  properties?: Properties;
}

export interface PublishPacket {
  type: typeof PacketType.PUBLISH;
  dup: boolean;
  qos: QoS;
  retain: boolean;
  topic: string;
  /** Present if and only if qos > 0. */
  packetId?: number;
  payload: Buffer;
  properties?: Properties;
}

export interface AckPacket<T extends number> {
  type: T;
  packetId: number;
  reasonCode?: number;
  properties?: Properties;
}
export type PubackPacket = AckPacket<typeof PacketType.PUBACK>;
export type PubrecPacket = AckPacket<typeof PacketType.PUBREC>;
export type PubrelPacket = AckPacket<typeof PacketType.PUBREL>;
export type PubcompPacket = AckPacket<typeof PacketType.PUBCOMP>;

export interface SubscriptionRequest {
  filter: string;
  qos: QoS;
  /** MQTT 5 subscription options; absent in 3.1.1. */
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
}

export interface SubscribePacket {
  type: typeof PacketType.SUBSCRIBE;
  packetId: number;
  subscriptions: SubscriptionRequest[];
  properties?: Properties;
}

export interface SubackPacket {
  type: typeof PacketType.SUBACK;
  packetId: number;
  /** Granted QoS per filter, or a failure code (0x80 in 3.1.1). */
  returnCodes: number[];
  properties?: Properties;
}

export interface UnsubscribePacket {
  type: typeof PacketType.UNSUBSCRIBE;
  packetId: number;
  filters: string[];
  properties?: Properties;
}

export interface UnsubackPacket {
  type: typeof PacketType.UNSUBACK;
  packetId: number;
  /** MQTT 5 only. */
  reasonCodes?: number[];
  properties?: Properties;
}

export interface PingreqPacket { type: typeof PacketType.PINGREQ }
export interface PingrespPacket { type: typeof PacketType.PINGRESP }

export interface DisconnectPacket {
  type: typeof PacketType.DISCONNECT;
  reasonCode?: number;
  properties?: Properties;
}

export interface AuthPacket {
  type: typeof PacketType.AUTH;
  reasonCode: number;
  properties?: Properties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;
