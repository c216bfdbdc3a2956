import type { BrokerHooks, ClientInfo, PublishRequest } from '../broker/hooks.js';
import { ReasonCode } from '../protocol/index.js';
import type { AuditLog } from '../security/audit.js';
import { matchesTopic } from '../security/filters.js';
import { isEnvelopeError, openEnvelope, parseEnvelope } from './envelope.js';
import type { PayloadKeys } from './keys.js';
import type { ReplayWindow } from './replay.js';

/**
 * Client-to-broker payload encryption (docs/payload-encryption.md) as a broker hook: a PUBLISH from a client that
 * holds payload keys, to a topic the rules cover, must carry an envelope sealed with one of its keys for that topic.
 * The broker opens it before authorization, retained storage and routing, so everything after sees the plaintext.
 * An envelope that does not open (malformed, unknown key, tampered, sealed for another topic) or that replays a
 * counter is never routed: MQTT 5 gets PUBACK/PUBREC 0x99 Payload format invalid, 3.1.1 an acknowledgement and
 * nothing more; each refusal is audited (`payload.refused`) and counted. Clients without keys, and every topic the
 * rules do not cover, pass as before.
 */

export interface PayloadProtectionOptions {
  /** The keys in force (read at each publish: a reload swaps them). */
  keys(): PayloadKeys;
  /** Whose keys a client uses: those of its user name (default) or of its client identifier. */
  identity: 'username' | 'client_id';
  /** Topic filters whose publishes are opened. */
  topics: readonly string[];
  replay: ReplayWindow;
  audit: AuditLog;
  /** Each refusal, for the guard's counters. */
  refused?(): void;
}

/** An MQTT 5 user property that asks for the payload to be opened on any topic: ("moat-payload", "envelope"). */
export const ENVELOPE_MARK = ['moat-payload', 'envelope'] as const;

export function payloadProtectionHooks(options: PayloadProtectionOptions): BrokerHooks {
  const covered = (message: PublishRequest): boolean => {
    for (const filter of options.topics) if (matchesTopic(filter, message.topic)) return true;
    const marks = message.properties?.userProperties;
    return marks !== undefined && marks.some(([name, value]) => name === ENVELOPE_MARK[0] && value === ENVELOPE_MARK[1]);
  };
  const refuse = (client: ClientInfo, message: PublishRequest, reason: string): number => {
    options.refused?.();
    options.audit.record({
      event: 'payload.refused', clientId: client.id, username: client.identity?.username ?? client.username,
      remoteAddress: client.remoteAddress, listener: client.listener, topic: message.topic, reason,
    });
    return ReasonCode.PayloadFormatInvalid;
  };
  return {
    openPayload(client, message) {
      const identity = options.identity === 'username' ? client.identity?.username ?? client.username : client.id;
      if (identity === undefined) return undefined;
      const keys = options.keys();
      if (!keys.has(identity) || !covered(message)) return undefined;
      const envelope = parseEnvelope(message.payload);
      if (isEnvelopeError(envelope)) return refuse(client, message, `not an envelope: ${envelope.reason}`);
      const key = keys.get(identity, envelope.keyId);
      if (!key) return refuse(client, message, `no key ${envelope.keyId} for ${identity}`);
      const plaintext = openEnvelope(key, envelope, message.topic);
      if (!plaintext) return refuse(client, message, 'authentication failed (another key, a changed byte, or sealed for another topic)');
      // Only an envelope that authenticated may move the counter: a forger cannot burn a device's counters.
      const replay = options.replay.check(`${identity}\u0000${envelope.keyId}`, envelope.counter);
      if (replay !== 'fresh') {
        // A QoS 1 publish sent again (DUP) after a lost PUBACK: it was routed the first time, acknowledge it.
        if (replay === 'replayed' && message.dup && message.qos > 0) return ReasonCode.Success;
        return refuse(client, message, `counter ${envelope.counter} ${replay === 'replayed' ? 'already used' : 'too far behind the newest'} for key ${envelope.keyId}`);
      }
      message.payload = plaintext;
      return undefined;
    },
  };
}
