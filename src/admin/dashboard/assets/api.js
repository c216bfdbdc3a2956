// The REST API with the credential the user logged in with. It lives in sessionStorage (this tab only, gone when
// the tab closes) and goes out as an Authorization header on each request: no cookie, so no other site can make
// the browser act with it (no CSRF). `credentials: 'omit'` keeps the browser's own Basic prompt and cache out of it.

const KEY = 'moat.credential';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** { kind: 'basic' | 'token', user?, header } or undefined. */
export function credential() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) ?? 'null') ?? undefined;
  } catch {
    return undefined;
  }
}

export function basicCredential(user, password) {
  // btoa takes Latin-1 only: encode the UTF-8 bytes first.
  const utf8 = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const byte of utf8) binary += String.fromCharCode(byte);
  return { kind: 'basic', user, header: `Basic ${btoa(binary)}` };
}

export function tokenCredential(token) {
  return { kind: 'token', header: `Bearer ${token.trim()}` };
}

export function remember(cred) {
  sessionStorage.setItem(KEY, JSON.stringify(cred));
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

/** Called when an answer says the credential is no longer good (401): the page goes back to the login. */
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/**
 * A request to the admin listener: the parsed JSON (or the text for /metrics); an ApiError with the API's own
 * message otherwise. `cred` replaces the stored credential (the login's first call).
 */
export async function request(method, path, body, cred = credential()) {
  const headers = { accept: 'application/json' };
  if (cred) headers.authorization = cred.header;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: 'omit', cache: 'no-store',
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new ApiError(0, `the broker does not answer (${err.message})`);
  }
  const text = await response.text();
  const json = (response.headers.get('content-type') ?? '').startsWith('application/json') && text !== '' ? JSON.parse(text) : undefined;
  if (!response.ok) {
    const error = new ApiError(response.status, json?.error ?? `${response.status} ${response.statusText}`);
    if (response.status === 401 && cred !== undefined && cred.header === credential()?.header) onUnauthorized(error);
    throw error;
  }
  return json ?? text;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body ?? {});
export const patch = (path, body) => request('PATCH', path, body);
export const del = (path) => request('DELETE', path);

/** A path segment: a client identifier with "/" in it is one segment. */
export const segment = (value) => encodeURIComponent(value);

/** A topic as a path: the whole topic as one encoded segment ("/" as %2F), so empty levels survive. */
export const topicPath = (topic) => encodeURIComponent(topic);

/** A query string from the defined values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}
