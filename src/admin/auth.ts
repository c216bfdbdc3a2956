import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuthenticateRequest, AuthenticateResult, BrokerHooks } from '../broker/hooks.js';
import type { AccessControl } from '../security/acl.js';
import { ADMIN_SCOPES, type AdminScope, type AdminToken } from './options.js';

/**
 * Who may use the admin listener: API tokens (`Authorization: Bearer <token>`), each with its scopes, and users
 * (`Authorization: Basic`) that the broker's own authentication chain accepts, guard included (a banned address is
 * refused, failures count toward its bans as MQTT's do), and that hold the admin role in the ACL. A user with
 * the admin role has every scope.
 */

export interface AdminPrincipal {
  /** "token:<name>" or "user:<name>", as the audit trail names it. */
  readonly id: string;
  readonly scopes: readonly AdminScope[];
}

export type AuthOutcome =
  | { ok: true; principal: AdminPrincipal }
  /** 401: no or wrong credentials; 403: known, but not allowed (a missing scope or role, a ban); 503: could not be judged. */
  | { ok: false; status: 401 | 403 | 503; error: string; principal?: string };

export interface AdminAuthSources {
  tokens: readonly AdminToken[];
  adminRole: string;
  /** Judges a user's name and password: `localAdminUsers` in one process, a worker over IPC in multi-core mode. */
  users: AdminUsers;
  /** An address ban in force for this address (the guard's), if any. */
  banned?: (remoteAddress: string) => boolean;
}

/** A user's credentials from `Authorization: Basic`, and where they came from. */
export interface AdminLogin {
  username: string;
  password: Uint8Array;
  remoteAddress: string;
  remotePort: number;
}

/**
 * What the broker's authentication says of an admin login: accepted with the user's roles, or why not: `bad` (wrong
 * name or password), `banned`, `unavailable` (busy, or a provider cannot answer now), `failed` (no answer: an error, or
 * no answer in time), `none` (nothing authenticates users). Plain data: it crosses the IPC of multi-core mode.
 */
export type UserVerdict = { ok: true; name: string; roles: string[] } | { ok: false; reason: 'bad' | 'banned' | 'unavailable' | 'failed' | 'none' };

export type AdminUsers = (login: AdminLogin) => Promise<UserVerdict>;

/**
 * Admin logins judged by this process's security layer: the broker's authentication hook (the chain, wrapped by the
 * guard: an admin user is who MQTT says, and guessing is banned alike) and the roles the ACL gives the user.
 * `authenticate` undefined: nothing authenticates. `acl` undefined: no authorization (no roles).
 */
export function localAdminUsers(authenticate: BrokerHooks['authenticate'], acl: () => AccessControl | undefined): AdminUsers {
  return async ({ username, password, remoteAddress, remotePort }) => {
    if (!authenticate) return { ok: false, reason: 'none' };
    const request: AuthenticateRequest = {
      // No MQTT client identifier: the guard judges the address and the user name.
      clientId: '', username, password: Buffer.from(password.buffer, password.byteOffset, password.byteLength), protocolVersion: 5,
      remoteAddress, remotePort, listener: 'admin', allowAnonymous: false, openedAt: Date.now(),
    };
    let result: AuthenticateResult;
    try {
      result = await authenticate(request);
    } catch {
      return { ok: false, reason: 'failed' };
    }
    if (result === true || (typeof result === 'object' && result.ok)) {
      const identity = typeof result === 'object' && result.ok ? result.identity : undefined;
      const name = identity?.username ?? username;
      const roles = acl()?.roleNames({ clientId: '', username: name, ...(identity?.groups && { groups: identity.groups }) }) ?? [];
      return { ok: true, name, roles };
    }
    if (typeof result === 'object' && !result.ok) {
      if (result.reason === 'banned') return { ok: false, reason: 'banned' };
      if (result.reason === 'busy' || result.reason === 'unavailable') return { ok: false, reason: 'unavailable' };
    }
    return { ok: false, reason: 'bad' };
  };
}

/** Where the request came from, for the authentication chain and the guard. */
export interface Peer {
  remoteAddress: string;
  remotePort: number;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * An admin user's accepted credentials are trusted again for this long without asking the authentication chain: a
 * dashboard polls every 2 s, and each ask costs a provider round trip (an HTTP hook, a JWKS) and an audit line. A
 * password changed, a role taken away or a user-name ban applies to the API within this time; an address ban at once.
 */
export const ADMIN_LOGIN_REUSE_MS = 10_000;
const MAX_REMEMBERED_LOGINS = 256;

export class AdminAuth {
  private readonly remembered = new Map<string, { name: string; roles: string[]; until: number }>();

  constructor(private readonly sources: AdminAuthSources, private readonly now: () => number = Date.now) {}

  /** Authenticates the request's credentials and checks `scope`. */
  async check(authorization: string | undefined, peer: Peer, scope: AdminScope): Promise<AuthOutcome> {
    const outcome = await this.authenticate(authorization, peer);
    if (!outcome.ok) return outcome;
    if (!outcome.principal.scopes.includes(scope)) {
      return { ok: false, status: 403, error: `${outcome.principal.id} does not have the "${scope}" scope`, principal: outcome.principal.id };
    }
    return outcome;
  }

  private async authenticate(authorization: string | undefined, peer: Peer): Promise<AuthOutcome> {
    if (this.sources.banned?.(peer.remoteAddress)) return { ok: false, status: 403, error: 'banned' };
    if (!authorization) return { ok: false, status: 401, error: 'authentication required: an API token (Bearer) or an admin user (Basic)' };
    const space = authorization.indexOf(' ');
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
    const credentials = space < 0 ? '' : authorization.slice(space + 1).trim();
    if (scheme === 'bearer') return this.token(credentials);
    if (scheme === 'basic') return this.user(credentials, peer);
    return { ok: false, status: 401, error: `unsupported authentication scheme "${scheme}": use Bearer or Basic` };
  }

  /** Every token is compared, in constant time, whatever matched: the time taken tells nothing about any token. */
  private token(presented: string): AuthOutcome {
    const digest = sha256(presented);
    let found: AdminToken | undefined;
    for (const token of this.sources.tokens) {
      if (timingSafeEqual(digest, token.sha256) && found === undefined) found = token;
    }
    if (!found) return { ok: false, status: 401, error: 'unknown API token' };
    if (found.expiresAt !== undefined && this.now() >= found.expiresAt) {
      return { ok: false, status: 401, error: `API token "${found.name}" expired at ${new Date(found.expiresAt).toISOString()}`, principal: `token:${found.name}` };
    }
    return { ok: true, principal: { id: `token:${found.name}`, scopes: found.scopes } };
  }

  private async user(credentials: string, peer: Peer): Promise<AuthOutcome> {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { ok: false, status: 401, error: 'malformed Basic credentials' };
    const username = decoded.slice(0, colon);
    const principal = `user:${username}`;
    // Keyed by a digest of the credentials and the address: the same login from elsewhere is asked again.
    const key = sha256(`${peer.remoteAddress}\u0000${credentials}`).toString('base64');
    const known = this.remembered.get(key);
    const fresh = known !== undefined && known.until > this.now();
    const verdict: UserVerdict = fresh
      ? { ok: true, name: known.name, roles: known.roles }
      : await this.sources.users({ username, password: Buffer.from(decoded.slice(colon + 1), 'utf8'), ...peer });
    if (!fresh) {
      this.remembered.delete(key);
      if (verdict.ok) this.remember(key, verdict.name, verdict.roles);
    }
    if (verdict.ok) {
      if (!verdict.roles.includes(this.sources.adminRole)) {
        return { ok: false, status: 403, error: `user ${verdict.name} does not have the "${this.sources.adminRole}" role`, principal: `user:${verdict.name}` };
      }
      return { ok: true, principal: { id: `user:${verdict.name}`, scopes: ADMIN_SCOPES } };
    }
    switch (verdict.reason) {
      case 'none': return { ok: false, status: 401, error: 'no authentication is configured for users: use an API token', principal };
      case 'banned': return { ok: false, status: 403, error: 'banned', principal };
      case 'unavailable': return { ok: false, status: 503, error: 'authentication is unavailable; try again later', principal };
      case 'failed': return { ok: false, status: 503, error: 'authentication failed to answer', principal };
      case 'bad': return { ok: false, status: 401, error: 'bad user name or password', principal };
    }
  }

  private remember(key: string, name: string, roles: string[]): void {
    if (this.remembered.size >= MAX_REMEMBERED_LOGINS) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(key, { name, roles, until: this.now() + ADMIN_LOGIN_REUSE_MS });
  }
}
