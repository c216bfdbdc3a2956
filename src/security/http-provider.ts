import { createHash } from 'node:crypto';
import type { AuthenticateRequest, BrokerHooks, ClientIdentity, ClientInfo } from '../broker/hooks.js';
import type { QoS } from '../protocol/index.js';
import { rulesFromPermissions } from './acl.js';
import type { AuthProvider, ProviderAnswer } from './authentication.js';

/**
 * Asking an HTTP service. Authentication POSTs a JSON description of the
 * CONNECT and reads `{ "result": "allow" | "deny" | "ignore", "username"?,
 * "groups"?, "permissions"?: { publish?: [...], subscribe?: [...] },
 * "expires_at"?: epoch seconds }`; an answer whose expires_at has already
 * passed is a refusal. A timeout, an unreachable service, an error status or
 * a malformed answer is a failure, not a refusal: the client is refused as
 * `unavailable` (fail closed: CONNACK 3 / 0x88), or with `failOpen` passed to
 * the next provider, which alone may then let it in. Positive answers are
 * cached for a while (bounded), keyed by a hash of the credentials, never the
 * credentials themselves.
 */

export interface HttpProviderOptions {
  url: string;
  timeoutMs?: number;
  /** How long an "allow" is reused for the same credentials (ms, default 60 s; 0 = never). */
  cacheTtlMs?: number;
  /** Most cached answers (default 10,000; the oldest go first). */
  cacheSize?: number;
  /**
   * When the service cannot answer: refuse as server unavailable (default), or let the next provider
   * decide (it never accepts by itself; if nothing later accepts, the client is told the server is unavailable).
   */
  failOpen?: boolean;
  headers?: Record<string, string>;
}

interface Cached {
  identity: ClientIdentity;
  until: number;
}

async function postJson(url: string, body: unknown, timeoutMs: number, headers: Record<string, string> | undefined): Promise<unknown> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json() as Promise<unknown>;
}

export class HttpAuthProvider implements AuthProvider {
  readonly method = 'http';
  readonly grantsPermissions = true;
  private readonly cache = new Map<string, Cached>();

  constructor(private readonly options: HttpProviderOptions) {}

  private cacheKey(r: AuthenticateRequest): string {
    // Everything the service is told may decide its answer, so everything is in the key.
    return createHash('sha256').update(JSON.stringify([
      r.clientId, r.username ?? null, r.password?.toString('base64') ?? null, r.listener, r.remoteAddress, r.certificate?.fingerprint256 ?? null,
    ])).digest('base64');
  }

  async authenticate(request: AuthenticateRequest): Promise<ProviderAnswer> {
    const key = this.cacheKey(request);
    const cached = this.cache.get(key);
    if (cached && cached.until > Date.now()) return { outcome: 'accept', identity: cached.identity };
    let answer: unknown;
    try {
      answer = await postJson(this.options.url, {
        clientId: request.clientId,
        username: request.username ?? null,
        password: request.password?.toString('utf8') ?? null,
        remoteAddress: request.remoteAddress,
        remotePort: request.remotePort,
        listener: request.listener,
        protocolVersion: request.protocolVersion,
        certificate: request.certificate ?? null,
      }, this.options.timeoutMs ?? 2000, this.options.headers);
    } catch (err) {
      return this.failure(`authentication service unavailable: ${(err as Error).message}`);
    }
    const a = answer as { result?: unknown; username?: unknown; groups?: unknown; permissions?: unknown; expires_at?: unknown } | null;
    if (a?.result === 'ignore') return { outcome: 'pass' };
    if (a?.result === 'deny') return { outcome: 'refuse', reason: 'badCredentials', why: 'denied by the authentication service' };
    if (a?.result !== 'allow') return this.failure('malformed answer from the authentication service');
    const identity: { -readonly [K in keyof ClientIdentity]: ClientIdentity[K] } = { method: this.method };
    const username = typeof a.username === 'string' ? a.username : request.username;
    if (username !== undefined) identity.username = username;
    if (Array.isArray(a.groups) && a.groups.every((g) => typeof g === 'string')) identity.groups = a.groups as string[];
    try {
      if (a.permissions !== undefined) identity.permissions = rulesFromPermissions(a.permissions);
    } catch (err) {
      return this.failure(`malformed answer from the authentication service: ${(err as Error).message}`);
    }
    if (a.expires_at !== undefined && a.expires_at !== null) {
      if (typeof a.expires_at !== 'number' || !Number.isFinite(a.expires_at)) return this.failure('malformed answer from the authentication service: expires_at is not a number');
      identity.expiresAt = a.expires_at * 1000;
      // Accepting it would let the client in (and its messages through) until the next expiry sweep.
      if (identity.expiresAt <= Date.now()) return { outcome: 'refuse', reason: 'badCredentials', why: 'the authentication service allowed the client until an expires_at already past' };
    }
    const ttl = this.options.cacheTtlMs ?? 60_000;
    const until = Math.min(Date.now() + ttl, identity.expiresAt ?? Infinity);
    if (ttl > 0 && until > Date.now()) {
      if (this.cache.size >= (this.options.cacheSize ?? 10_000)) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, { identity, until });
    }
    return { outcome: 'accept', identity };
  }

  /** The service could not answer: refuse as unavailable (fail closed), or pass with the failure noted (fail open). */
  private failure(why: string): ProviderAnswer {
    return this.options.failOpen ? { outcome: 'pass', why, failed: true } : { outcome: 'refuse', reason: 'unavailable', why };
  }

  get cachedAnswers(): number {
    return this.cache.size;
  }
}

/**
 * Optional authorization by the same kind of service: POSTs `{ action: "publish" |
 * "subscribe", clientId, username, topic, qos, retain? }` and expects
 * `{ "result": "allow" | "deny" }`. Failures deny. Deliveries are not asked
 * (they must be decided at once); use rules or token permissions for those.
 */
export function httpAuthorizer(options: HttpProviderOptions): Pick<BrokerHooks, 'authorizePublish' | 'authorizeSubscribe'> {
  const ask = async (body: Record<string, unknown>): Promise<boolean> => {
    try {
      const answer = (await postJson(options.url, body, options.timeoutMs ?? 2000, options.headers)) as { result?: unknown } | null;
      return answer?.result === 'allow';
    } catch {
      return false;
    }
  };
  const who = (client: ClientInfo): Record<string, unknown> => ({ clientId: client.id, username: client.identity?.username ?? client.username ?? null });
  return {
    authorizePublish: (client, message) => ask({ action: 'publish', ...who(client), topic: message.topic, qos: message.qos, retain: message.retain }),
    authorizeSubscribe: (client, subscription: { filter: string; qos: QoS }) =>
      ask({ action: 'subscribe', ...who(client), topic: subscription.filter, qos: subscription.qos }),
  };
}
