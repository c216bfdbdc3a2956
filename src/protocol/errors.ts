import { ReasonCode, reasonName } from './reason-codes.js';

/**
 * A violation of the MQTT protocol by the peer. The only error the codec ever
 * reports: the connection that produced it is closed (in MQTT 5 after a
 * DISCONNECT carrying `reasonCode`).
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    readonly reasonCode: number = ReasonCode.MalformedPacket,
    /** Normative statement of the specification that was violated, e.g. "MQTT-3.1.0-1". */
    readonly specRef?: string,
  ) {
    super(specRef ? `${message} [${specRef}]` : message);
  }

  get reason(): string {
    return reasonName(this.reasonCode);
  }
}

export function malformed(message: string, specRef?: string): ProtocolError {
  return new ProtocolError(message, ReasonCode.MalformedPacket, specRef);
}

export function protocolViolation(message: string, specRef?: string): ProtocolError {
  return new ProtocolError(message, ReasonCode.ProtocolError, specRef);
}
