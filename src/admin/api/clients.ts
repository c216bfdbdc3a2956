import type { ConnectedClientView } from '../../broker/broker.js';
import { AddressSet } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { addBan, banJson, guardOf } from './bans.js';
import { API, field, iso, jsonBody, matches, onlyFields, page, PROTOCOL_NAMES, type ApiRoutes } from './common.js';
import { sessionDetail } from './sessions.js';

/** Connected clients: list (filters, paging), one client with its session's figures, disconnect, ban. */

export function clientJson(c: ConnectedClientView): Record<string, unknown> {
  return {
    id: c.id, user: c.username ?? null, address: c.remoteAddress, port: c.remotePort, listener: c.listener,
    protocol: PROTOCOL_NAMES[c.protocolVersion] ?? String(c.protocolVersion), connected_since: iso(c.connectedAt),
    keep_alive: c.keepalive, clean_start: c.clean, session_expiry_interval: c.sessionExpiryInterval,
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

export const clientRoutes: ApiRoutes = ({ broker, security }) => {
  const connected = (id: string): ConnectedClientView => {
    for (const c of broker.connectedClients()) if (c.id === id) return c;
    throw new HttpError(404, `no client "${id}" is connected`);
  };
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/clients`, access: 'read',
      handle: ({ query }) => {
        const level = protocolLevel(query.get('protocol'));
        const inAddress = addressFilter(query.get('address'));
        const listener = query.get('listener');
        const clients = [...broker.connectedClients()].filter((c) => matches(query.get('id'), c.id) && matches(query.get('user'), c.username)
          && (!inAddress || inAddress(c.remoteAddress)) && (listener === null || c.listener === listener)
          && (level === undefined || c.protocolVersion === level));
        const listed = page(clients, (c) => c.id, query);
        return { json: { ...listed, items: listed.items.map(clientJson) } };
      },
    },
    {
      method: 'GET', path: `${API}/clients/{id}`, access: 'read',
      handle: ({ params }) => {
        const client = connected(params.id!);
        const session = broker.sessionView(client.id);
        return { json: { ...clientJson(client), ...(session && sessionDetail(session)) } };
      },
    },
    {
      method: 'DELETE', path: `${API}/clients/{id}`, access: 'write',
      handle: ({ params }) => {
        const client = connected(params.id!);
        broker.disconnectClient(client.id);
        return { json: { disconnected: client.id, reason_code: 0x98 } };
      },
    },
    {
      method: 'POST', path: `${API}/clients/{id}/ban`, access: 'write',
      handle: ({ params, body }) => {
        const request = jsonBody(body);
        onlyFields(request, ['by', 'duration', 'reason']);
        const guard = guardOf(security.guard);
        const client = connected(params.id!);
        const by = field(request, 'by', 'string') ?? 'address';
        let ban;
        const reason = field(request, 'reason', 'string') ?? `banned through the admin API (client ${client.id})`;
        const duration = field(request, 'duration', 'number');
        if (by === 'address') ban = addBan(guard, 'address', client.remoteAddress, reason, duration);
        else if (by === 'user') {
          if (client.username === undefined) throw new HttpError(400, `client "${client.id}" has no user name: ban it by address or client_id`);
          ban = addBan(guard, 'username', client.username, reason, duration);
        } else if (by === 'client_id') ban = addBan(guard, 'clientId', client.id, reason, duration);
        else throw new HttpError(400, `by: expected address, user or client_id, got "${by}"`);
        // A ban refuses the next connection; the one open now is closed by the same administrative action.
        broker.disconnectClient(client.id, 'banned by an administrator');
        return { status: 201, json: banJson(ban) };
      },
    },
  ];
  return routes;
};
