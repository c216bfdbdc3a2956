/**
 * Every return/reason code the broker sends or understands, in one typed table.
 * MQTT 3.1/3.1.1 CONNACK return codes and SUBACK failure share the byte with the
 * MQTT 5 reason codes of the same meaning, so the table keeps them apart by name.
 */
export const ConnectReturnCode = {
  Accepted: 0x00,
  UnacceptableProtocolVersion: 0x01,
  IdentifierRejected: 0x02,
  ServerUnavailable: 0x03,
  BadUsernameOrPassword: 0x04,
  NotAuthorized: 0x05,
} as const;
export type ConnectReturnCodeValue = (typeof ConnectReturnCode)[keyof typeof ConnectReturnCode];

/** SUBACK return code of a refused filter in MQTT 3.1.1. */
export const SUBACK_FAILURE_V4 = 0x80;

/** MQTT 5.0 reason codes (section 2.4). */
export const ReasonCode = {
  Success: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;
export type ReasonCodeValue = (typeof ReasonCode)[keyof typeof ReasonCode];

const REASON_NAMES = new Map<number, string>(
  Object.entries(ReasonCode).map(([name, code]) => [code, name]),
);

export function reasonName(code: number): string {
  return REASON_NAMES.get(code) ?? `0x${code.toString(16).padStart(2, '0')}`;
}

const R = ReasonCode;
/** Reason codes each MQTT 5 packet may carry (section 3.x.2.1). */
export const VALID_REASON_CODES: Readonly<Record<string, ReadonlySet<number>>> = {
  CONNACK: new Set([R.Success, R.UnspecifiedError, R.MalformedPacket, R.ProtocolError, R.ImplementationSpecificError,
    R.UnsupportedProtocolVersion, R.ClientIdentifierNotValid, R.BadUserNameOrPassword, R.NotAuthorized,
    R.ServerUnavailable, R.ServerBusy, R.Banned, R.BadAuthenticationMethod, R.TopicNameInvalid, R.PacketTooLarge,
    R.QuotaExceeded, R.PayloadFormatInvalid, R.RetainNotSupported, R.QoSNotSupported, R.UseAnotherServer,
    R.ServerMoved, R.ConnectionRateExceeded]),
  PUBACK: new Set([R.Success, R.NoMatchingSubscribers, R.UnspecifiedError, R.ImplementationSpecificError,
    R.NotAuthorized, R.TopicNameInvalid, R.PacketIdentifierInUse, R.QuotaExceeded, R.PayloadFormatInvalid]),
  PUBREL: new Set([R.Success, R.PacketIdentifierNotFound]),
  SUBACK: new Set([R.GrantedQoS1 - 1, R.GrantedQoS1, R.GrantedQoS2, R.UnspecifiedError, R.ImplementationSpecificError,
    R.NotAuthorized, R.TopicFilterInvalid, R.PacketIdentifierInUse, R.QuotaExceeded,
    R.SharedSubscriptionsNotSupported, R.SubscriptionIdentifiersNotSupported, R.WildcardSubscriptionsNotSupported]),
  UNSUBACK: new Set([R.Success, R.NoSubscriptionExisted, R.UnspecifiedError, R.ImplementationSpecificError,
    R.NotAuthorized, R.TopicFilterInvalid, R.PacketIdentifierInUse]),
  DISCONNECT: new Set([R.Success, R.DisconnectWithWillMessage, R.UnspecifiedError, R.MalformedPacket, R.ProtocolError,
    R.ImplementationSpecificError, R.NotAuthorized, R.ServerBusy, R.ServerShuttingDown, R.KeepAliveTimeout,
    R.SessionTakenOver, R.TopicFilterInvalid, R.TopicNameInvalid, R.ReceiveMaximumExceeded, R.TopicAliasInvalid,
    R.PacketTooLarge, R.MessageRateTooHigh, R.QuotaExceeded, R.AdministrativeAction, R.PayloadFormatInvalid,
    R.RetainNotSupported, R.QoSNotSupported, R.UseAnotherServer, R.ServerMoved, R.SharedSubscriptionsNotSupported,
    R.ConnectionRateExceeded, R.MaximumConnectTime, R.SubscriptionIdentifiersNotSupported,
    R.WildcardSubscriptionsNotSupported]),
  AUTH: new Set([R.Success, R.ContinueAuthentication, R.ReAuthenticate]),
};
