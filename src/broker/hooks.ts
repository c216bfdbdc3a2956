import type { Properties, ProtocolVersion, QoS } from '../protocol/index.js';
import type { Message } from './message.js';

type MaybePromise<T> = T | Promise<T>;

/** What the broker knows about a connected client; passed to hooks and events. */
export interface ClientInfo {
  readonly id: string;
  readonly username: string | undefined;
  readonly protocolVersion: ProtocolVersion;
  readonly clean: boolean;
  readonly keepalive: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Name of the listener the client came in through. */
  readonly listener: string;
  /** What authentication established about the client (absent for anonymous clients). */
  readonly identity?: ClientIdentity;
}

/** Who a client is, as the authentication that accepted it says; authorization reads it. */
export interface ClientIdentity {
  /** How the client was authenticated, e.g. "password", "jwt", "http", "scram", "certificate". */
  readonly method: string;
  /** The name permissions are looked up by (the CONNECT user name unless the credentials say otherwise). */
  readonly username?: string;
  readonly groups?: readonly string[];
  /** Permissions carried by the credentials themselves (e.g. a token claim), for the authorizer. */
  readonly permissions?: unknown;
  /** Epoch ms at which the credentials expire; the connection is closed then (MQTT 5: 0xA0). */
  readonly expiresAt?: number;
}

/**
 * A client certificate the transport has verified (TLS with client authentication).
 * Only a verified certificate is ever put here, so a provider may trust it.
 */
export interface CertificateIdentity {
  /** The subject as a distinguished name, e.g. "CN=sensor-7,O=Example". */
  subject: string;
  commonName?: string;
  /** SHA-256 fingerprint, hex with colons, as Node reports it. */
  fingerprint256: string;
  issuer?: string;
}

export interface AuthenticateRequest {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  protocolVersion: ProtocolVersion;
  remoteAddress: string;
  listener: string;
  /** The listener's anonymous policy, for hooks that want to honour it. */
  allowAnonymous: boolean;
  /** Port the client connected from. */
  remotePort: number;
  /** The verified client certificate, when the client connected over TLS with one. */
  certificate?: CertificateIdentity;
  /** The identity whose pre-shared key the client proved in its TLS handshake (TLS-PSK). */
  pskIdentity?: string;
  /** Epoch ms at which the connection opened: the CONNECT timeout runs from here (a hook that makes it wait knows how long is left). */
  openedAt?: number;
}

/**
 * true: accepted; false: refused as bad user name or password.
 * { ok: false, reason: 'notAuthorized' }: refused as not authorized.
 * { ok: false, reason: 'unavailable' }: not judged, as a service the decision needs failed
 * (CONNACK 3 / 0x88 Server unavailable): a failure, which the client can tell from a refusal.
 * undefined: no opinion, ask the next hook (and finally the listener's anonymous policy).
 */
export type AuthenticateResult =
  | boolean
  | undefined
  | { ok: true; identity?: ClientIdentity }
  | { ok: false; reason?: 'badCredentials' | 'notAuthorized' | 'banned' | 'busy' | 'unavailable' };

/** The verdict of a `banned` refusal: CONNACK 5 (not authorized) in 3.1.1, 0x8A Banned in MQTT 5. */
export const BANNED = 0x8a;
/** The verdict of a `busy` refusal: CONNACK 3 (server unavailable) in 3.1.1, 0x89 Server busy in MQTT 5. */
export const SERVER_BUSY = 0x89;

export interface PublishRequest {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** MQTT 5 properties of the message, if any. */
  properties?: Properties;
}

/**
 * The longest a client is held back for going over its publishing allowance: a paused socket's end goes unseen,
 * so a client that went away must not look connected for long. A message that would need longer closes it.
 */
export const MAX_ALLOWANCE_PAUSE_MS = 60_000;

/**
 * A client's allowance for publishing, asked for once when it connects (`BrokerHooks.publishAllowance`).
 * The broker calls `take` for each PUBLISH the client sends, before handling it.
 */
export interface PublishAllowance {
  /** Spends one message of `bytes`: 0 while within the allowance, else the milliseconds until it is in credit again. */
  take(bytes: number, now: number): number;
  /**
   * Past the allowance: `pause` stops reading from the client for that long (nothing is lost: the client's
   * own writes back up; over MAX_ALLOWANCE_PAUSE_MS it is closed); `disconnect` closes the connection (MQTT 5:
   * DISCONNECT 0x96, or 0x97 for bytes).
   */
  readonly action: 'pause' | 'disconnect';
  /** The limit the last `take` that answered non-zero ran into. */
  readonly exceeded: 'messages' | 'bytes';
}

/**
 * Hooks let an embedding program (and Moat's own security providers) decide.
 * Every hook is optional; unused ones cost nothing. `authorizeDelivery` runs for
 * each message and subscriber and must answer synchronously.
 */
export interface BrokerHooks {
  authenticate?(request: AuthenticateRequest): MaybePromise<AuthenticateResult>;
  /**
   * false drops the message (3.1.1: it is still acknowledged, as the protocol has no refusal).
   * `kind` is "will" for a will, checked at CONNECT and again when it is published.
   */
  authorizePublish?(client: ClientInfo, message: PublishRequest, kind?: 'publish' | 'will'): MaybePromise<boolean>;
  /** The QoS to grant (at most the requested one), true to grant as requested, false to refuse. */
  authorizeSubscribe?(client: ClientInfo, subscription: { filter: string; qos: QoS }): MaybePromise<boolean | QoS>;
  authorizeDelivery?(client: ClientInfo, message: PublishRequest): boolean;
  /**
   * Told of every TLS handshake that failed (a certificate that does not verify, a client
   * that does not speak TLS, one that hung up): no MQTT client exists yet. Every such hook is called.
   */
  handshakeFailed?(event: HandshakeFailure): void;
  /**
   * Asked once for each new connection, before anything is read from it: false closes it at once (an address
   * ban). Every such hook must agree.
   */
  acceptConnection?(peer: { remoteAddress: string; remotePort: number }, listener: string, stream: ClosingStream): boolean;
  /**
   * The publishing allowance of a client that just connected (rate limits); undefined: unlimited. Asked once
   * per connection, so a connection without one costs nothing per message. The first answer given is used.
   */
  publishAllowance?(client: ClientInfo): PublishAllowance | undefined;
  /**
   * Asked at CONNECT before any authentication work: `banned` refuses the client (CONNACK 5 / 0x8A Banned). For
   * bans on client identifiers and user names where no authentication hook runs; any one hook may refuse.
   */
  screenConnect?(request: AuthenticateRequest): 'banned' | undefined;
  /** Extra `$SYS` topics and values, read every `sysInterval` seconds (the guard's counters). */
  sysTopics?(): Iterable<[topic: string, value: string]>;
  /**
   * A client's PUBLISH to a `$` topic, which the broker never routes (e.g. `$CONTROL/...` commands): true if the hook
   * takes it (acknowledged as accepted, still not routed), false to refuse it (not authorized), undefined if the topic
   * is not its own. The first hook that answers decides; without one the publish is refused.
   */
  receiveControl?(client: ClientInfo, message: PublishRequest): boolean | undefined;
  /**
   * A client's PUBLISH before anything looks at its payload (retained limits, payload format, authorization,
   * routing): the hook may replace `message.payload` (client-to-broker payload encryption, src/payload). Answers
   * undefined to go on, a refusal reason code (0x80 and above: MQTT 5 PUBACK/PUBREC with it, 3.1.1 acknowledged
   * and dropped), or 0 to acknowledge the publish without routing it (a duplicate already routed).
   */
  openPayload?(client: ClientInfo, message: PublishRequest & { dup: boolean }): number | undefined;
  /**
   * A message about to be delivered to (or queued for) a subscriber: another message to send instead (its payload
   * sealed for that subscriber, src/payload), or undefined to send it as it is. Called once per delivery; the hook
   * shares one replacement among subscribers that would get the same bytes.
   */
  sealDelivery?(client: ClientInfo, message: Message): Message | undefined;
}

/** What a hook may watch of a new connection: its end (to count connections per address). */
export interface ClosingStream {
  once(event: 'close', listener: () => void): unknown;
}

export interface HandshakeFailure {
  /** The listener's name. */
  listener: string;
  remoteAddress: string | undefined;
  /** Node's reason, e.g. "unable to verify the first certificate". */
  reason: string;
}

/**
 * Several hook sets as one: the first definite authentication answer wins, and
 * every authorizer must agree. Stays synchronous unless a hook returns a promise.
 */
export function composeHooks(list: BrokerHooks[]): BrokerHooks {
  if (list.length === 1) return list[0]!;
  const composed: BrokerHooks = {};
  const authenticators = list.flatMap((h) => (h.authenticate ? [h.authenticate.bind(h)] : []));
  // A hook only one set has is used as it is: no wrapper on the per-message path.
  if (authenticators.length === 1) composed.authenticate = authenticators[0]!;
  else if (authenticators.length > 0) {
    composed.authenticate = (request) => {
      const ask = (from: number): MaybePromise<AuthenticateResult> => {
        for (let i = from; i < authenticators.length; i++) {
          const answer = authenticators[i]!(request);
          if (answer instanceof Promise) return answer.then((a) => (a !== undefined ? a : ask(i + 1)));
          if (answer !== undefined) return answer;
        }
        return undefined;
      };
      return ask(0);
    };
  }
  const publishers = list.flatMap((h) => (h.authorizePublish ? [h.authorizePublish.bind(h)] : []));
  if (publishers.length === 1) composed.authorizePublish = publishers[0]!;
  else if (publishers.length > 0) {
    composed.authorizePublish = (client, message, kind) => {
      const ask = (from: number): MaybePromise<boolean> => {
        for (let i = from; i < publishers.length; i++) {
          const answer = publishers[i]!(client, message, kind);
          if (answer instanceof Promise) return answer.then((a) => a && ask(i + 1));
          if (!answer) return false;
        }
        return true;
      };
      return ask(0);
    };
  }
  const subscribers = list.flatMap((h) => (h.authorizeSubscribe ? [h.authorizeSubscribe.bind(h)] : []));
  if (subscribers.length === 1) composed.authorizeSubscribe = subscribers[0]!;
  else if (subscribers.length > 0) {
    composed.authorizeSubscribe = (client, subscription) => {
      const ask = (from: number, granted: QoS): MaybePromise<boolean | QoS> => {
        for (let i = from; i < subscribers.length; i++) {
          const answer = subscribers[i]!(client, { filter: subscription.filter, qos: granted });
          if (answer instanceof Promise) {
            return answer.then((a) => (a === false ? false : ask(i + 1, a === true ? granted : (Math.min(granted, a) as QoS))));
          }
          if (answer === false) return false;
          if (answer !== true) granted = Math.min(granted, answer) as QoS;
        }
        return granted;
      };
      return ask(0, subscription.qos);
    };
  }
  const acceptors = list.flatMap((h) => (h.acceptConnection ? [h.acceptConnection.bind(h)] : []));
  if (acceptors.length === 1) composed.acceptConnection = acceptors[0]!;
  else if (acceptors.length > 0) composed.acceptConnection = (peer, listener, stream) => acceptors.every((accept) => accept(peer, listener, stream));
  const allowances = list.flatMap((h) => (h.publishAllowance ? [h.publishAllowance.bind(h)] : []));
  if (allowances.length === 1) composed.publishAllowance = allowances[0]!;
  else if (allowances.length > 0) {
    composed.publishAllowance = (client) => {
      for (const allowance of allowances) {
        const answer = allowance(client);
        if (answer !== undefined) return answer;
      }
      return undefined;
    };
  }
  const screens = list.flatMap((h) => (h.screenConnect ? [h.screenConnect.bind(h)] : []));
  if (screens.length === 1) composed.screenConnect = screens[0]!;
  else if (screens.length > 0) composed.screenConnect = (request) => (screens.some((screen) => screen(request) === 'banned') ? 'banned' : undefined);
  const sysSources = list.flatMap((h) => (h.sysTopics ? [h.sysTopics.bind(h)] : []));
  if (sysSources.length > 0) composed.sysTopics = () => sysSources.flatMap((source) => [...source()]);
  const deliverers = list.flatMap((h) => (h.authorizeDelivery ? [h.authorizeDelivery.bind(h)] : []));
  if (deliverers.length === 1) composed.authorizeDelivery = deliverers[0]!;
  else if (deliverers.length > 0) {
    composed.authorizeDelivery = (client, message) => deliverers.every((allow) => allow(client, message));
  }
  const controls = list.flatMap((h) => (h.receiveControl ? [h.receiveControl.bind(h)] : []));
  if (controls.length === 1) composed.receiveControl = controls[0]!;
  else if (controls.length > 0) {
    composed.receiveControl = (client, message) => {
      for (const receive of controls) {
        const answer = receive(client, message);
        if (answer !== undefined) return answer;
      }
      return undefined;
    };
  }
  const sealers = list.flatMap((h) => (h.sealDelivery ? [h.sealDelivery.bind(h)] : []));
  if (sealers.length === 1) composed.sealDelivery = sealers[0]!;
  else if (sealers.length > 0) {
    composed.sealDelivery = (client, message) => {
      for (const seal of sealers) {
        const sealed = seal(client, message);
        if (sealed !== undefined) return sealed;
      }
      return undefined;
    };
  }
  const openers = list.flatMap((h) => (h.openPayload ? [h.openPayload.bind(h)] : []));
  if (openers.length === 1) composed.openPayload = openers[0]!;
  else if (openers.length > 0) {
    composed.openPayload = (client, message) => {
      for (const open of openers) {
        const answer = open(client, message);
        if (answer !== undefined) return answer;
      }
      return undefined;
    };
  }
  const listeners = list.flatMap((h) => (h.handshakeFailed ? [h.handshakeFailed.bind(h)] : []));
  if (listeners.length > 0) composed.handshakeFailed = (event) => listeners.forEach((tell) => tell(event));
  return composed;
}
