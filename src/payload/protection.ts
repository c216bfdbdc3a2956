import type { BrokerHooks, ClientInfo, PublishRequest } from '../broker/hooks.js';
import type { Message } from '../broker/message.js';
import { ReasonCode } from '../protocol/index.js';
import type { AuditLog } from '../security/audit.js';
import { SubscriptionTrie } from '../topics/index.js';
import { deliveryKey, isEnvelopeError, openEnvelope, parseEnvelope, sealEnvelope } from './envelope.js';
import type { OutboundCounters } from './outbound.js';
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
  /**
   * Deliveries on the covered topics to subscribers that hold keys are sealed for them (with their newest key),
   * the broker's counters from here. Absent: deliveries are plaintext.
   */
  reencrypt?: OutboundCounters;
}

/** An MQTT 5 user property that asks for the payload to be opened on any topic: ("moat-payload", "envelope"). */
export const ENVELOPE_MARK = ['moat-payload', 'envelope'] as const;

/** Whether a topic matches one of the filters: the subscription trie's walk, and its cache of recent topics. */
function topicRule(filters: readonly string[]): (topic: string) => boolean {
  const trie = new SubscriptionTrie<true>();
  for (const filter of filters) trie.add(filter, filter, true);
  let matched = false;
  const hit = (): void => {
    matched = true;
  };
  return (topic) => {
    matched = false;
    trie.match(topic, hit);
    return matched;
  };
}

export function payloadProtectionHooks(options: PayloadProtectionOptions): BrokerHooks {
  const coveredTopic = topicRule(options.topics);
  const covered = (message: PublishRequest): boolean => {
    if (coveredTopic(message.topic)) return true;
    const marks = message.properties?.userProperties;
    return marks !== undefined && marks.some(([name, value]) => name === ENVELOPE_MARK[0] && value === ENVELOPE_MARK[1]);
  };
  const audit = (event: 'payload.refused' | 'payload.duplicate', client: ClientInfo, message: PublishRequest, reason: string): void => {
    options.audit.record({
      event, clientId: client.id, username: client.identity?.username ?? client.username,
      remoteAddress: client.remoteAddress, listener: client.listener, topic: message.topic, reason,
    });
  };
  const refuse = (client: ClientInfo, message: PublishRequest, reason: string): number => {
    options.refused?.();
    audit('payload.refused', client, message, reason);
    return ReasonCode.PayloadFormatInvalid;
  };
  // The user name authentication proved, never the one a CONNECT merely carries (an anonymous listener's).
  const identityOf = (client: ClientInfo): string | undefined => (options.identity === 'username' ? client.identity?.username : client.id);
  /** Each key's broker-to-client key, derived once. */
  const deliveryKeys = new WeakMap<Buffer, Buffer>();
  const deliveryKeyOf = (key: Buffer): Buffer => {
    let derived = deliveryKeys.get(key);
    if (!derived) deliveryKeys.set(key, (derived = deliveryKey(key)));
    return derived;
  };
  const outbound = options.reencrypt;
  /** Each message's envelopes by key: subscribers with one key share one encryption, as they share one encoding. */
  const sealedCopies = new WeakMap<Message, Map<string, Message>>();
  const sealDelivery = (client: ClientInfo, message: Message): Message | undefined => {
    const identity = identityOf(client);
    if (identity === undefined) return undefined;
    const keys = options.keys();
    const keyId = keys.newestKeyId(identity);
    if (keyId === undefined || !coveredTopic(message.topic)) return undefined;
    const name = `${identity}\u0000${keyId}`;
    let copies = sealedCopies.get(message);
    const known = copies?.get(name);
    if (known) return known;
    const counter = outbound!.take(name);
    const payload = sealEnvelope({ key: deliveryKeyOf(keys.get(identity, keyId)!), keyId, counter, nonce: outbound!.nonce(counter), topic: message.topic, plaintext: message.payload });
    // A new message: the cached encodings of the plaintext one must not follow it.
    const sealed: Message = { topic: message.topic, payload, qos: message.qos, retain: message.retain, ownsPayload: true };
    if (message.publishedRetain !== undefined) sealed.publishedRetain = message.publishedRetain;
    if (message.expiresAt !== undefined) sealed.expiresAt = message.expiresAt;
    if (message.properties) sealed.properties = message.properties;
    // A retained message is sent again to each new subscriber, which must get a new counter each time.
    if (message.retain) return sealed;
    if (!copies) sealedCopies.set(message, (copies = new Map()));
    copies.set(name, sealed);
    return sealed;
  };
  return {
    ...(outbound && { sealDelivery }),
    openPayload(client, message) {
      const identity = identityOf(client);
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
        // A QoS 1 publish sent again (DUP) after a lost PUBACK: it was routed the first time, acknowledge it. Audited:
        // a recorded envelope played back with DUP set lands here too.
        if (replay === 'replayed' && message.dup && message.qos > 0) {
          audit('payload.duplicate', client, message, `counter ${envelope.counter} of key ${envelope.keyId} resent (DUP): acknowledged, not routed again`);
          return ReasonCode.Success;
        }
        return refuse(client, message, `counter ${envelope.counter} ${replay === 'replayed' ? 'already used' : 'too far behind the newest'} for key ${envelope.keyId}`);
      }
      message.payload = plaintext;
      return undefined;
    },
  };
}
