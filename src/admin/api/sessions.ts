import type { SessionView } from '../../broker/broker.js';
import { HttpError, type Route } from '../server.js';
import { API, found, iso, page, partial, recordChange, type ApiRoutes } from './common.js';

/** Sessions, online and offline: list (paging), delete (a connected client is disconnected first). */

/** A subscription as the API shows it. */
export function subscriptionJson(s: SessionView['subscriptions'][number]): Record<string, unknown> {
  return {
    filter: s.filter, qos: s.qos, no_local: s.noLocal === true, retain_as_published: s.retainAsPublished === true,
    ...(s.subscriptionId !== undefined && { subscription_identifier: s.subscriptionId }),
  };
}

export function sessionJson(s: SessionView): Record<string, unknown> {
  return {
    client_id: s.clientId, online: s.online, persistent: s.persistent, created_at: iso(s.createdAt),
    left_at: s.online ? null : iso(s.leftAt), expires_at: s.online ? null : iso(s.expiresAt), expiry_interval: s.expiryInterval,
    subscriptions: s.subscriptions.length, inflight: s.inflight, queued: s.queued,
  };
}

/** What a client's or session's detail adds: its subscriptions and the messages it holds. */
export function sessionDetail(s: SessionView): Record<string, unknown> {
  return { subscriptions: s.subscriptions.map(subscriptionJson), inflight: s.inflight, queued: s.queued, queued_bytes: s.queuedBytes };
}

export const sessionRoutes: ApiRoutes = (context) => {
  const { backend } = context;
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/sessions`, access: 'read',
      handle: async ({ query }) => {
        const state = query.get('state');
        if (state !== null && state !== 'online' && state !== 'offline') throw new HttpError(400, `state: expected online or offline, got "${state}"`);
        const { items, missing } = await backend.sessions();
        const sessions = items.filter((s) => state === null || s.online === (state === 'online'));
        const listed = page(sessions, (s) => s.clientId, query);
        return { json: { ...listed, items: listed.items.map(sessionJson), ...partial(missing) } };
      },
    },
    {
      method: 'GET', path: `${API}/sessions/{id}`, access: 'read',
      handle: async ({ params }) => {
        const session = found(await backend.session(params.id!), `session "${params.id}"`);
        return { json: { ...sessionJson(session), ...sessionDetail(session) } };
      },
    },
    {
      method: 'DELETE', path: `${API}/sessions/{id}`, access: 'write',
      handle: async (request) => {
        const session = found(await backend.removeSession(request.params.id!), `session "${request.params.id}"`);
        recordChange(context, request, 'session', session.clientId, 'deleted');
        return { json: { removed: session.clientId, was_online: session.online } };
      },
    },
  ];
  return routes;
};
