import { parseSharedFilter, type QoS } from '../protocol/index.js';
import type { BrokerHooks, ClientInfo, PublishRequest } from '../broker/hooks.js';
import type { AccessControl, AclRule, Principal } from './acl.js';

export interface AuthorizerEvents {
  /** A refusal, for the audit trail. */
  refused(client: ClientInfo, action: 'publish' | 'subscribe' | 'will', topic: string, reason: string): void;
}

interface ClientState {
  generation: number;
  principal: Principal;
  rules: AclRule[];
  /** Delivery answers by topic, while the rules have not changed. */
  deliveries: Map<string, boolean>;
}

/** Per client: at most this many answers, for topics up to this length (long topics are decided each time). */
const DELIVERY_CACHE_LIMIT = 1024;
const DELIVERY_CACHE_TOPIC_LENGTH = 256;

/** Who a connected client is to the access rules. */
export function principalOf(client: ClientInfo): Principal {
  const identity = client.identity;
  return {
    clientId: client.id,
    // Who authentication said the client is; the CONNECT user name only when nothing vouched for it.
    username: identity ? identity.username : client.username,
    ...(identity?.groups && { groups: identity.groups }),
    ...(Array.isArray(identity?.permissions) && { rules: identity.permissions as AclRule[] }),
  };
}

/**
 * The broker hooks that enforce an AccessControl: publish (and wills),
 * subscribe (a shared subscription is judged by its inner filter) and every
 * delivery, live or retained. Answers are synchronous; a client's resolved
 * rules and its delivery answers are cached until the permissions change, so
 * a change applies to connected clients at once.
 */
export function createAuthorizer(
  acl: AccessControl,
  options: { restrictAll: boolean } = { restrictAll: true },
  events?: AuthorizerEvents,
): Required<Pick<BrokerHooks, 'authorizePublish' | 'authorizeSubscribe' | 'authorizeDelivery'>> {
  const states = new WeakMap<ClientInfo, ClientState>();
  /** restrictAll false: a client whose credentials carry no permissions is not restricted. */
  const unrestricted = (client: ClientInfo): boolean => !options.restrictAll && !Array.isArray(client.identity?.permissions);

  const stateOf = (client: ClientInfo): ClientState => {
    let state = states.get(client);
    if (!state || state.generation !== acl.generation) {
      const principal = principalOf(client);
      state = { generation: acl.generation, principal, rules: acl.rulesFor(principal), deliveries: new Map() };
      states.set(client, state);
    }
    return state;
  };

  return {
    authorizePublish(client: ClientInfo, message: PublishRequest, kind: 'publish' | 'will' = 'publish'): boolean {
      if (unrestricted(client)) return true;
      const state = stateOf(client);
      const decision = acl.publish(state.principal, message.topic, message.qos, message.retain, state.rules);
      if (!decision.allowed) events?.refused(client, kind, message.topic, decision.reason);
      return decision.allowed;
    },

    authorizeSubscribe(client: ClientInfo, subscription: { filter: string; qos: QoS }): boolean | QoS {
      if (unrestricted(client)) return true;
      const state = stateOf(client);
      const filter = parseSharedFilter(subscription.filter)?.filter ?? subscription.filter;
      const decision = acl.subscribe(state.principal, filter, subscription.qos, state.rules);
      if (!decision.allowed) {
        events?.refused(client, 'subscribe', subscription.filter, decision.reason);
        return false;
      }
      return decision.qos;
    },

    authorizeDelivery(client: ClientInfo, message: PublishRequest): boolean {
      if (unrestricted(client)) return true;
      const state = stateOf(client);
      const topic = message.topic;
      if (topic.length > DELIVERY_CACHE_TOPIC_LENGTH) return acl.deliver(state.principal, topic, state.rules);
      let allowed = state.deliveries.get(topic);
      if (allowed === undefined) {
        allowed = acl.deliver(state.principal, topic, state.rules);
        if (state.deliveries.size >= DELIVERY_CACHE_LIMIT) state.deliveries.clear();
        state.deliveries.set(topic, allowed);
      }
      return allowed;
    },
  };
}
