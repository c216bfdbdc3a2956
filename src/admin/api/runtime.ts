import { RuntimeSecurityError, type Binding, type RuntimeSecurity, type RuntimeRule } from '../../security/index.js';
import { HttpError } from '../server.js';

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
