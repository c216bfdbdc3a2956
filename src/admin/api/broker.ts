import type { Route } from '../server.js';
import { HttpError } from '../server.js';
import { API, type ApiRoutes } from './common.js';

/** The broker: the configuration in force with its secrets redacted, and reload (GET /api/v1/broker is the admin listener's own). */

export const REDACTED = '[redacted]';

/**
 * Keys whose values are secrets or derived from them: passwords, passphrases, keys, tokens and their digests, JWT
 * secrets, PSK tables, HTTP headers (an Authorization header). A key naming a file (`…File`, `…file`, `path`) stays:
 * a path says where a secret is, not what it is, and the file's contents are never read into the answer.
 */
const SECRET_KEY = /pass(word|phrase)|secret|token|sha256|digest|credential|^key$|^psk$|authorization|private/i;
const FILE_KEY = /(File|file|Files|files|_file|Path|path|Url|url)$/;

/** A URL with its user information's password replaced (redis://user:pw@host → redis://user:[redacted]@host). */
export function redactUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  try {
    const url = new URL(text);
    if (url.password === '') return text;
    url.password = 'redacted';
    return url.toString().replace(':redacted@', `:${REDACTED}@`);
  } catch {
    return text;
  }
}

/** A deep copy of `value` for showing: secrets redacted, Buffers (certificates, keys) never shown, functions and class instances summarised. */
export function redact(value: unknown, key = ''): unknown {
  if (value === undefined || value === null) return value;
  if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') return undefined;
  const secret = SECRET_KEY.test(key) && !FILE_KEY.test(key);
  const isBytes = Buffer.isBuffer(value) || value instanceof Uint8Array;
  if (typeof value === 'object' && !isBytes) {
    if (key === 'headers') return Object.fromEntries(Object.keys(value).map((k) => [k, REDACTED]));
    if (Array.isArray(value)) return value.map((item) => redact(item, secret ? 'secret' : ''));
    const proto = Object.getPrototypeOf(value) as unknown;
    // A live object (a PSK table, a provider a program passed): only what it is.
    if (proto !== Object.prototype && proto !== null) return secret ? REDACTED : `[${(value as object).constructor?.name ?? 'object'}]`;
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redact(v, k)]).filter(([, v]) => v !== undefined));
  }
  if (secret) return REDACTED;
  if (isBytes) return `[${(value as Uint8Array).length} bytes]`;
  return typeof value === 'string' ? redactUrl(value) : value;
}

export const brokerRoutes: ApiRoutes = ({ server }) => {
  const running = (): NonNullable<typeof server> => {
    if (!server) throw new HttpError(409, 'this broker was not started from a configuration (no server around it): nothing to show or reload');
    return server;
  };
  const routes: Route[] = [
    { method: 'GET', path: `${API}/broker/config`, access: 'read', handle: () => ({ json: redact(running().config()) }) },
    {
      method: 'POST', path: `${API}/broker/reload`, access: 'write',
      handle: () => {
        const result = running().reload();
        return {
          status: result.ok ? 200 : 409,
          json: { ok: result.ok, applied: result.applied, restart_needed: result.restartNeeded, ...(result.error !== undefined && { error: result.error }) },
        };
      },
    },
  ];
  return routes;
};
