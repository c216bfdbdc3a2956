import type { Ban, BanKind, Guard } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { API, field, iso, jsonBody, onlyFields, page, partial, recordChange, type ApiRoutes } from './common.js';

/** Bans: list, add, remove, through the guard's own API (kept in the store; in force at once). */

/** Ban kinds as the API names them. */
const KINDS: Readonly<Record<string, BanKind>> = { address: 'address', network: 'network', client_id: 'clientId', username: 'username' };
const NAMES: Readonly<Record<BanKind, string>> = { address: 'address', network: 'network', clientId: 'client_id', username: 'username' };

export function banJson(ban: Ban): Record<string, unknown> {
  return { kind: NAMES[ban.kind], value: ban.value, reason: ban.reason, since: iso(ban.since), until: iso(ban.until), source: ban.source };
}

export function guardOf(guard: Guard | undefined): Guard {
  if (!guard) throw new HttpError(409, 'the guard is off (no authentication and no guard section, or guard.enabled: false): bans need it');
  return guard;
}

/** A ban through the guard (400 for an address or network it cannot read). */
export function addBan(guard: Guard, kind: BanKind, value: string, reason: string, seconds: number | undefined): Ban {
  if (seconds !== undefined && (!Number.isFinite(seconds) || seconds <= 0)) throw new HttpError(400, 'duration: expected a number of seconds above 0');
  try {
    return guard.ban(kind, value, reason, seconds);
  } catch (err) {
    throw new HttpError(400, `value: ${(err as Error).message}`);
  }
}

function kindOf(name: unknown): BanKind {
  const kind = typeof name === 'string' ? KINDS[name] : undefined;
  if (!kind) throw new HttpError(400, `kind: expected one of ${Object.keys(KINDS).join(', ')}, got ${JSON.stringify(name)}`);
  return kind;
}

export const banRoutes: ApiRoutes = (context) => {
  const { backend } = context;
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/bans`, access: 'read',
      handle: async ({ query }) => {
        const kind = query.has('kind') ? kindOf(query.get('kind')) : undefined;
        const { items, missing } = await backend.bans();
        const listed = page(items.filter((b) => kind === undefined || b.kind === kind), (b) => `${b.kind}:${b.value}`, query);
        return { json: { ...listed, items: listed.items.map(banJson), ...partial(missing) } };
      },
    },
    {
      method: 'POST', path: `${API}/bans`, access: 'write',
      handle: async (request) => {
        const body = jsonBody(request.body);
        onlyFields(body, ['kind', 'value', 'duration', 'reason']);
        const value = field(body, 'value', 'string');
        if (!value) throw new HttpError(400, 'value: required (the address, network, client identifier or user name)');
        const kind = kindOf(body.kind);
        const ban = await backend.ban(kind, value, field(body, 'reason', 'string') ?? 'banned through the admin API', field(body, 'duration', 'number'));
        recordChange(context, request, 'ban', `${NAMES[kind]}:${ban.value}`, 'added', ban.reason);
        return { status: 201, json: banJson(ban) };
      },
    },
    {
      method: 'DELETE', path: `${API}/bans/{kind}/{value}`, access: 'write',
      handle: async (request) => {
        const kind = kindOf(request.params.kind);
        const value = request.params.value!;
        if (!(await backend.unban(kind, value))) throw new HttpError(404, `no ${request.params.kind} ban on "${value}"`);
        recordChange(context, request, 'ban', `${NAMES[kind]}:${value}`, 'removed');
        return { json: { removed: { kind: request.params.kind, value } } };
      },
    },
  ];
  return routes;
};
