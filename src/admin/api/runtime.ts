import { RuntimeSecurityError, type Binding, type RuntimeSecurity, type RuntimeRule } from '../../security/index.js';
import type { RecordKind } from '../../security/runtime-store.js';
import { HttpError, type Route } from '../server.js';
import type { RuntimeChanges } from '../view.js';
import { API, field, jsonBody, onlyFields, page, recordChange, type ApiContext } from './common.js';

/**
 * What the users, groups and roles endpoints share: their five routes, the runtime store (`security.runtime`) and its
 * refusals as HTTP answers, and bindings and rules read from a request.
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

/** A kind of runtime item (users, groups, roles) as the API serves it: list, create, read, change, delete. */
export interface NamedItems<K extends RecordKind> {
  kind: K;
  /** The path segment: `users`, `groups`, `roles`. */
  plural: string;
  /** The fields a request may change (besides `name` on creation). */
  fields: string[];
  /** The change a request body asks for (HttpError 400 for a bad field). */
  change(body: Record<string, unknown>): RuntimeChanges[K];
}

/** The five routes of a kind of runtime item, through the backend (in multi-core mode, worker 0 changes and every worker follows). */
export function namedItemRoutes<K extends RecordKind>(context: ApiContext, items: NamedItems<K>): Route[] {
  const { backend } = context;
  const base = `${API}/${items.plural}`;
  return [
    {
      method: 'GET', path: base, access: 'read',
      handle: async ({ query }) => ({ json: page(await backend.items(items.kind), (item) => String(item.name), query) }),
    },
    {
      method: 'POST', path: base, access: 'write',
      handle: async (request) => {
        const body = jsonBody(request.body);
        onlyFields(body, ['name', ...items.fields]);
        const name = field(body, 'name', 'string');
        if (name === undefined) throw new HttpError(400, 'name: required');
        const created = await backend.setItem(items.kind, name, items.change(body), true);
        recordChange(context, request, items.kind, name, 'created');
        return { status: 201, json: created };
      },
    },
    { method: 'GET', path: `${base}/{name}`, access: 'read', handle: async ({ params }) => ({ json: await backend.item(items.kind, params.name!) }) },
    {
      method: 'PATCH', path: `${base}/{name}`, access: 'write',
      handle: async (request) => {
        const body = jsonBody(request.body);
        onlyFields(body, items.fields);
        const changed = await backend.setItem(items.kind, request.params.name!, items.change(body), false);
        recordChange(context, request, items.kind, request.params.name!, 'updated');
        return { json: changed };
      },
    },
    {
      method: 'DELETE', path: `${base}/{name}`, access: 'write',
      handle: async (request) => {
        await backend.removeItem(items.kind, request.params.name!);
        recordChange(context, request, items.kind, request.params.name!, 'deleted');
        return { json: { removed: request.params.name } };
      },
    },
  ];
}
