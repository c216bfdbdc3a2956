import type { ProtocolVersion, QoS } from '../protocol/index.js';

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
}

/**
 * true: accepted; false: refused as bad user name or password.
 * { ok: false, reason: 'notAuthorized' }: refused as not authorized.
 * undefined: no opinion, ask the next hook (and finally the listener's anonymous policy).
 */
export type AuthenticateResult = boolean | undefined | { ok: boolean; reason?: 'badCredentials' | 'notAuthorized' };

export interface PublishRequest {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
}

/**
 * Hooks let an embedding program (and Moat's own security providers) decide.
 * Every hook is optional; unused ones cost nothing. `authorizeDelivery` runs for
 * each message and subscriber and must answer synchronously.
 */
export interface BrokerHooks {
  authenticate?(request: AuthenticateRequest): MaybePromise<AuthenticateResult>;
  /** false drops the message (3.1.1: it is still acknowledged, as the protocol has no refusal). */
  authorizePublish?(client: ClientInfo, message: PublishRequest): MaybePromise<boolean>;
  /** The QoS to grant (at most the requested one), true to grant as requested, false to refuse. */
  authorizeSubscribe?(client: ClientInfo, subscription: { filter: string; qos: QoS }): MaybePromise<boolean | QoS>;
  authorizeDelivery?(client: ClientInfo, message: PublishRequest): boolean;
}

/** Several hook sets as one: the first definite authentication answer wins, and every authorizer must agree. */
export function composeHooks(list: BrokerHooks[]): BrokerHooks {
  if (list.length === 1) return list[0]!;
  const composed: BrokerHooks = {};
  const authenticators = list.filter((h) => h.authenticate);
  if (authenticators.length > 0) {
    composed.authenticate = async (request) => {
      for (const h of authenticators) {
        const result = await h.authenticate!(request);
        if (result !== undefined) return result;
      }
      return undefined;
    };
  }
  const publishers = list.filter((h) => h.authorizePublish);
  if (publishers.length > 0) {
    composed.authorizePublish = async (client, message) => {
      for (const h of publishers) if (!(await h.authorizePublish!(client, message))) return false;
      return true;
    };
  }
  const subscribers = list.filter((h) => h.authorizeSubscribe);
  if (subscribers.length > 0) {
    composed.authorizeSubscribe = async (client, subscription) => {
      let granted: QoS = subscription.qos;
      for (const h of subscribers) {
        const answer = await h.authorizeSubscribe!(client, { filter: subscription.filter, qos: granted });
        if (answer === false) return false;
        if (answer !== true) granted = Math.min(granted, answer) as QoS;
      }
      return granted;
    };
  }
  const deliverers = list.filter((h) => h.authorizeDelivery);
  if (deliverers.length > 0) {
    composed.authorizeDelivery = (client, message) => deliverers.every((h) => h.authorizeDelivery!(client, message));
  }
  return composed;
}
