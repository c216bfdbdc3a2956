import type { Ban, BanKind, Guard } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { API, field, iso, jsonBody, onlyFields, page, type ApiRoutes } from './common.js';

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

export const banRoutes: ApiRoutes = ({ security }) => {
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/bans`, access: 'read',
      handle: ({ query }) => {
        const bans = guardOf(security.guard).bans.list().filter((b) => !query.has('kind') || b.kind === kindOf(query.get('kind')));
        const listed = page(bans, (b) => `${b.kind}:${b.value}`, query);
        return { json: { ...listed, items: listed.items.map(banJson) } };
      },
    },
    {
      method: 'POST', path: `${API}/bans`, access: 'write',
      handle: ({ body }) => {
        const request = jsonBody(body);
        onlyFields(request, ['kind', 'value', 'duration', 'reason']);
        const value = field(request, 'value', 'string');
        if (!value) throw new HttpError(400, 'value: required (the address, network, client identifier or user name)');
        const ban = addBan(guardOf(security.guard), kindOf(request.kind), value, field(request, 'reason', 'string') ?? 'banned through the admin API', field(request, 'duration', 'number'));
        return { status: 201, json: banJson(ban) };
      },
    },
    {
      method: 'DELETE', path: `${API}/bans/{kind}/{value}`, access: 'write',
      handle: ({ params }) => {
        const guard = guardOf(security.guard);
        const kind = kindOf(params.kind);
        const value = params.value!;
        const ban = guard.bans.list().find((b) => b.kind === kind && b.value === value);
        if (ban?.source === 'config') throw new HttpError(409, `this ban is in the configuration file (guard.bans); remove it there and reload`);
        if (!guard.unban(kind, value)) throw new HttpError(404, `no ${params.kind} ban on "${value}"`);
        return { json: { removed: { kind: params.kind, value } } };
      },
    },
  ];
  return routes;
};
