import type { Route } from '../server.js';
import { HttpError } from '../server.js';
import { API, partial, recordChange, type ApiRoutes } from './common.js';

/** The broker: the configuration in force with its secrets redacted, and reload (GET /api/v1/broker is the admin listener's own). */

export const REDACTED = '[redacted]';

/**
 * Keys whose values are secrets or derived from them: passwords, passphrases, keys, tokens and their digests, JWT
 * secrets, PSK tables, HTTP headers (an Authorization header). A key naming a file (`…File`, `…file`, `path`) stays:
 * a path says where a secret is, not what it is, and the file's contents are never read into the answer.
 */
const SECRET_KEY = /pass(word|phrase)|secret|token|sha256|digest|credential|^key$|^psk$|authorization|private/i;
const FILE_KEY = /(File|file|Files|files|_file|Path|path|Url|url)$/;

/** Query (or fragment) parameters whose values are secrets: `?password=`, `?token=`, `?secret=`, `?key=`, `?api_key=`, `?sig=`... */
const SECRET_PARAM = /pass|secret|token|key|auth|sig|credential|private/i;

/** `?a=1&password=x#access_token=y` with the secret values replaced. */
function redactParams(part: string): string {
  return part.replace(/([?&;#])([^=&;#]+)=([^&;#]*)/g, (all, separator: string, name: string, value: string) => {
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      // a malformed name is judged as written
    }
    return value !== '' && SECRET_PARAM.test(decoded) ? `${separator}${name}=${REDACTED}` : all;
  });
}

/**
 * A URL with its secrets replaced: the password of its user information (redis://user:pw@host →
 * redis://user:[redacted]@host) and the values of query parameters that name a secret (redis://host/?password=x).
 */
export function redactUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  let shown = text;
  if (url.password !== '') {
    url.password = 'redacted';
    shown = url.toString().replace(':redacted@', `:${REDACTED}@`);
  }
  const query = shown.search(/[?#]/);
  return query < 0 ? shown : shown.slice(0, query) + redactParams(shown.slice(query));
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

export const brokerRoutes: ApiRoutes = (context) => {
  const { server } = context;
  const running = (): NonNullable<typeof server> => {
    if (!server) throw new HttpError(409, 'this broker was not started from a configuration (no server around it): nothing to show or reload');
    return server;
  };
  const routes: Route[] = [
    { method: 'GET', path: `${API}/broker/config`, access: 'read', handle: () => ({ json: redact(running().config()) }) },
    {
      method: 'POST', path: `${API}/broker/reload`, access: 'write',
      handle: async (request) => {
        const result = await running().reload();
        const applied = result.applied.length > 0 ? `applied: ${result.applied.join(', ')}` : 'nothing changed';
        if (result.ok) recordChange(context, request, 'config', 'configuration file', 'reloaded', applied);
        return {
          status: result.ok ? 200 : 409,
          json: {
            ok: result.ok, applied: result.applied, restart_needed: result.restartNeeded, ...(result.error !== undefined && { error: result.error }),
            ...partial(result.missing ?? []),
          },
        };
      },
    },
  ];
  return routes;
};
