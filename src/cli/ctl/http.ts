import http from 'node:http';
import https from 'node:https';

/**
 * The admin API over node:http(s) (not fetch: a CA file and `insecure` need an agent of our own). Answers are
 * JSON; an answer of 400 or more is an ApiError carrying the API's `{"error": ...}`, and a request that never got
 * an answer is an UnreachableError saying which URL and why, in words.
 */

export type Credentials = { kind: 'bearer'; token: string } | { kind: 'basic'; user: string; password: string };

export interface Connection {
  /** The admin listener's base URL (a path prefix, as behind a reverse proxy, is kept). */
  url: URL;
  credentials?: Credentials;
  /** CA certificates to trust for https. */
  ca?: Buffer;
  /** https without checking the certificate. */
  insecure?: boolean;
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly body: unknown) {
    super(message);
  }
}

export class UnreachableError extends Error {}

export interface Answer {
  status: number;
  /** The body parsed, when it is JSON. */
  json: unknown;
  text: string;
}

/** How long one request may take; the admin listener itself gives a request 10 s. */
const REQUEST_TIMEOUT_MS = 30_000;

export class ApiClient {
  private readonly agent: http.Agent;

  constructor(readonly connection: Connection) {
    const secure = connection.url.protocol === 'https:';
    // One socket kept for the pages of a list; closed by close().
    this.agent = secure
      ? new https.Agent({ keepAlive: true, ...(connection.ca && { ca: connection.ca }), rejectUnauthorized: connection.insecure !== true })
      : new http.Agent({ keepAlive: true });
  }

  /** The answer whatever its status (health probes answer 503 with a body worth showing). */
  request(method: string, path: string, options: { query?: Record<string, string | undefined>; body?: unknown } = {}): Promise<Answer> {
    const url = this.urlFor(path, options.query);
    const headers: Record<string, string> = { accept: 'application/json' };
    const credentials = this.connection.credentials;
    if (credentials?.kind === 'bearer') headers.authorization = `Bearer ${credentials.token}`;
    if (credentials?.kind === 'basic') headers.authorization = `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8').toString('base64')}`;
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body), 'utf8');
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const send = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers, agent: this.agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => reject(this.unreachable(err)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(this.unreachable(err)));
      req.end(payload);
    });
  }

  /** The JSON answer of a request that must succeed, as the shape the caller knows the API gives; ApiError otherwise. */
  async call<T>(method: string, path: string, options: { query?: Record<string, string | undefined>; body?: unknown } = {}): Promise<T> {
    const answer = await this.request(method, path, options);
    if (answer.status >= 400) throw errorOf(answer);
    if (answer.json === undefined) throw new ApiError(answer.status, `the answer from ${this.urlFor(path).href} is not JSON: is ${this.connection.url.href} a Moat admin listener?`, answer.text);
    return answer.json as T;
  }

  get<T>(path: string, query?: Record<string, string | undefined>): Promise<T> {
    return this.call<T>('GET', path, query ? { query } : {});
  }

  /** A text answer (the Prometheus metrics). */
  async text(path: string): Promise<string> {
    const answer = await this.request('GET', path);
    if (answer.status >= 400) throw errorOf(answer);
    return answer.text;
  }

  close(): void {
    this.agent.destroy();
  }

  private urlFor(path: string, query: Record<string, string | undefined> = {}): URL {
    const url = new URL(this.connection.url.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, value);
    return url;
  }

  private unreachable(err: Error & { code?: string }): UnreachableError {
    const where = this.connection.url.href.replace(/\/$/, '');
    return new UnreachableError(`cannot reach ${where}: ${reason(err)}`);
  }
}

function errorOf(answer: Answer): ApiError {
  const body = answer.json as { error?: unknown } | undefined;
  const message = typeof body?.error === 'string' ? body.error : answer.text.trim().slice(0, 200) || 'no message';
  return new ApiError(answer.status, message, answer.json ?? answer.text);
}

const TLS_TRUST = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED',
]);

/** Why a request got no answer, in words, with the way out where there is one. */
function reason(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') return 'connection refused (is the broker running with an admin: section, on this port? set the URL with --url, MOAT_URL or url: in the ctl config file)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `no such host (${err.message})`;
  if (code === 'ETIMEDOUT') return 'no answer in time';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'no route to the host';
  if (code === 'ECONNRESET') return 'the connection was closed before an answer (an http URL for an https listener?)';
  if (TLS_TRUST.has(code)) return `the TLS certificate is not trusted (${code}): give the CA that signed it with --ca FILE or ca: in the ctl config file`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the TLS certificate is not for this host name: ${err.message}`;
  if (code === 'CERT_HAS_EXPIRED') return 'the TLS certificate has expired';
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/i.test(err.message)) return `TLS failed (${err.message}): an https URL for a plain http listener?`;
  return err.message;
}
