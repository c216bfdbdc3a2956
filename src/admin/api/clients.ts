import type { ConnectedClientView } from '../../broker/broker.js';
import { AddressSet, type BanKind } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { banJson } from './bans.js';
import { API, field, found, iso, jsonBody, matches, onlyFields, page, partial, PROTOCOL_NAMES, recordChange, type ApiRoutes } from './common.js';
import { sessionDetail } from './sessions.js';

/** Connected clients: list (filters, paging), one client with its session's figures, disconnect, ban. */

export function clientJson(c: ConnectedClientView, now = Date.now()): Record<string, unknown> {
  const t = c.traffic;
  // Averages over the connection's life; a tool that wants the rate of the moment takes two readings apart.
  const seconds = Math.max(1, (now - c.connectedAt) / 1000);
  const perSecond = (n: number): number => Math.round((n / seconds) * 100) / 100;
  return {
    id: c.id, user: c.username ?? null, address: c.remoteAddress, port: c.remotePort, listener: c.listener,
    protocol: PROTOCOL_NAMES[c.protocolVersion] ?? String(c.protocolVersion), connected_since: iso(c.connectedAt),
    keep_alive: c.keepalive, clean_start: c.clean, session_expiry_interval: c.sessionExpiryInterval,
    messages_in: t.publishesIn, messages_out: t.publishesOut, bytes_in: t.bytesIn, bytes_out: t.bytesOut,
    rates: {
      messages_in_per_second: perSecond(t.publishesIn), messages_out_per_second: perSecond(t.publishesOut),
      bytes_in_per_second: perSecond(t.bytesIn), bytes_out_per_second: perSecond(t.bytesOut),
    },
  };
}

/** `protocol` as asked: 3.1, 3.1.1 or 5 (or the protocol levels 3, 4, 5). */
function protocolLevel(raw: string | null): number | undefined {
  if (raw === null) return undefined;
  const level = ({ '3.1': 3, '3': 3, '3.1.1': 4, '4': 4, '5': 5, '5.0': 5 } as Record<string, number>)[raw];
  if (level === undefined) throw new HttpError(400, `protocol: expected 3.1, 3.1.1 or 5, got "${raw}"`);
  return level;
}

function addressFilter(raw: string | null): ((address: string) => boolean) | undefined {
  if (raw === null) return undefined;
  try {
    const set = new AddressSet([raw]);
    return (address) => set.has(address);
  } catch {
    throw new HttpError(400, `address: expected an IP address or a network in CIDR notation, got "${raw}"`);
  }
}

export const clientRoutes: ApiRoutes = (context) => {
  const { backend } = context;
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/clients`, access: 'read',
      handle: async ({ query }) => {
        const level = protocolLevel(query.get('protocol'));
        const inAddress = addressFilter(query.get('address'));
        const listener = query.get('listener');
        const { items, missing } = await backend.clients();
        const clients = items.filter((c) => matches(query.get('id'), c.id) && matches(query.get('user'), c.username)
          && (!inAddress || inAddress(c.remoteAddress)) && (listener === null || c.listener === listener)
          && (level === undefined || c.protocolVersion === level));
        const listed = page(clients, (c) => c.id, query);
        return { json: { ...listed, items: listed.items.map((c) => clientJson(c)), ...partial(missing) } };
      },
    },
    {
      method: 'GET', path: `${API}/clients/{id}`, access: 'read',
      handle: async ({ params }) => {
        const { client, session } = found(await backend.client(params.id!), `client "${params.id}" connected`);
        return { json: { ...clientJson(client), ...(session && sessionDetail(session)) } };
      },
    },
    {
      method: 'DELETE', path: `${API}/clients/{id}`, access: 'write',
      handle: async (request) => {
        const client = found(await backend.disconnect(request.params.id!), `client "${request.params.id}" connected`);
        recordChange(context, request, 'client', client.id, 'kicked');
        return { json: { disconnected: client.id, reason_code: 0x98 } };
      },
    },
    {
      method: 'POST', path: `${API}/clients/{id}/ban`, access: 'write',
      handle: async (request) => {
        const body = jsonBody(request.body);
        onlyFields(body, ['by', 'duration', 'reason']);
        const by = field(body, 'by', 'string') ?? 'address';
        if (by !== 'address' && by !== 'user' && by !== 'client_id') throw new HttpError(400, `by: expected address, user or client_id, got "${by}"`);
        const reason = field(body, 'reason', 'string');
        const duration = field(body, 'duration', 'number');
        const { client } = found(await backend.client(request.params.id!), `client "${request.params.id}" connected`);
        let kind: BanKind;
        let value: string;
        if (by === 'address') [kind, value] = ['address', client.remoteAddress];
        else if (by === 'client_id') [kind, value] = ['clientId', client.id];
        else {
          if (client.username === undefined) throw new HttpError(400, `client "${client.id}" has no user name: ban it by address or client_id`);
          [kind, value] = ['username', client.username];
        }
        const ban = await backend.ban(kind, value, reason ?? `banned through the admin API (client ${client.id})`, duration);
        recordChange(context, request, 'ban', `${banJson(ban).kind as string}:${ban.value}`, 'added', ban.reason);
        // A ban refuses the next connection; the one open now is closed by the same administrative action.
        const kicked = await backend.disconnect(client.id, 'banned by an administrator');
        if (kicked.item) recordChange(context, request, 'client', client.id, 'kicked', 'banned');
        return { status: 201, json: banJson(ban) };
      },
    },
  ];
  return routes;
};
