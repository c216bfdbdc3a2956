import { RuntimeSecurityError, type Binding, type RuntimeSecurity, type RuntimeRule } from '../../security/index.js';
import { HttpError, type Route } from '../server.js';
import { API, field, jsonBody, onlyFields, page } from './common.js';

/**
 * What the users, groups and roles endpoints share: the runtime store (`security.runtime`), its refusals as HTTP
 * answers, and bindings and rules read from a request.
 */

export function runtimeOf(runtime: RuntimeSecurity | undefined): RuntimeSecurity {
  if (!runtime) {
    throw new HttpError(409, 'runtime users, groups and roles are off: they need authentication configured (any provider) or authorization.dynamic_security.enabled');
  }
  return runtime;
}

/** The runtime store's refusals: notFound 404, invalid 400, exists and declared (the configuration defines the name) 409. */
export function runtimeCall<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw asHttp(err);
  }
}

export async function runtimeCallAsync<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw asHttp(err);
  }
}

function asHttp(err: unknown): unknown {
  if (!(err instanceof RuntimeSecurityError)) return err;
  const status = err.code === 'notFound' ? 404 : err.code === 'invalid' ? 400 : 409;
  return new HttpError(status, err.message);
}

/** A list of bindings: names, or `{ name, priority }`. */
export function bindingsOf(value: unknown, what: string): Binding[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw new HttpError(400, `${what}: expected a list of names or { name, priority }`);
  return value.map((b, i): Binding => {
    if (typeof b === 'string') return { name: b };
    if (typeof b === 'object' && b !== null && typeof (b as Binding).name === 'string') {
      const { name, priority } = b as Binding;
      if (priority !== undefined && !Number.isInteger(priority)) throw new HttpError(400, `${what}[${i}].priority: expected an integer`);
      return { name, ...(priority !== undefined && { priority }) };
    }
    throw new HttpError(400, `${what}[${i}]: expected a name or { name, priority }`);
  });
}

/** A role's rules: `{ filter, actions: [publish|subscribe|receive...], effect: allow|deny, priority? }` (checked by the store). */
export function rulesOf(value: unknown): RuntimeRule[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw new HttpError(400, 'rules: expected a list of { filter, actions, effect, priority? }');
  return value.map((r, i): RuntimeRule => {
    if (typeof r !== 'object' || r === null) throw new HttpError(400, `rules[${i}]: expected { filter, actions, effect, priority? }`);
    const { filter, actions, effect, priority, ...rest } = r as Record<string, unknown>;
    if (Object.keys(rest).length > 0) throw new HttpError(400, `rules[${i}]: unknown field ${Object.keys(rest).map((k) => `"${k}"`).join(', ')}`);
    return { filter, actions, effect, ...(priority !== undefined && { priority }) } as RuntimeRule;
  });
}

export const text = (value: unknown, what: string): string | undefined => {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, `${what}: expected a string`);
  return value;
};

/** A kind of named runtime item (groups, roles) as the API serves it: list, create, read, change, delete. */
export interface NamedItems<Change> {
  /** The path segment: `groups`, `roles`. */
  plural: string;
  /** The fields a request may change (besides `name` on creation). */
  fields: string[];
  list(runtime: RuntimeSecurity): string[];
  /** The item as JSON; HttpError 404 if there is none. */
  json(runtime: RuntimeSecurity, name: string): Record<string, unknown>;
  change(body: Record<string, unknown>): Change;
  set(runtime: RuntimeSecurity, name: string, change: Change, create: boolean): void;
  remove(runtime: RuntimeSecurity, name: string): void;
}

/** The five routes of a kind of named runtime item, on `security.runtime`. */
export function namedItemRoutes<Change>(security: { runtime: RuntimeSecurity | undefined }, items: NamedItems<Change>): Route[] {
  const runtime = (): RuntimeSecurity => runtimeOf(security.runtime);
  const base = `${API}/${items.plural}`;
  return [
    {
      method: 'GET', path: base, access: 'read',
      handle: ({ query }) => {
        const r = runtime();
        const listed = page(items.list(r), (n) => n, query);
        return { json: { ...listed, items: listed.items.map((n) => items.json(r, n)) } };
      },
    },
    {
      method: 'POST', path: base, access: 'write',
      handle: ({ body }) => {
        const request = jsonBody(body);
        onlyFields(request, ['name', ...items.fields]);
        const name = field(request, 'name', 'string');
        if (name === undefined) throw new HttpError(400, 'name: required');
        const r = runtime();
        runtimeCall(() => items.set(r, name, items.change(request), true));
        return { status: 201, json: items.json(r, name) };
      },
    },
    { method: 'GET', path: `${base}/{name}`, access: 'read', handle: ({ params }) => ({ json: items.json(runtime(), params.name!) }) },
    {
      method: 'PATCH', path: `${base}/{name}`, access: 'write',
      handle: ({ params, body }) => {
        const request = jsonBody(body);
        onlyFields(request, items.fields);
        const r = runtime();
        runtimeCall(() => items.set(r, params.name!, items.change(request), false));
        return { json: items.json(r, params.name!) };
      },
    },
    {
      method: 'DELETE', path: `${base}/{name}`, access: 'write',
      handle: ({ params }) => {
        runtimeCall(() => items.remove(runtime(), params.name!));
        return { json: { removed: params.name } };
      },
    },
  ];
}
