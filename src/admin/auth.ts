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
  /** The broker's authentication hook (the chain, wrapped by the guard); undefined when nothing authenticates. */
  authenticate: BrokerHooks['authenticate'];
  /** The permissions in force (roles of users and groups); undefined without authorization. */
  acl: AccessControl | undefined;
  /** An address ban in force for this address (the guard's), if any. */
  banned?: (remoteAddress: string) => boolean;
}

/** Where the request came from, for the authentication chain and the guard. */
export interface Peer {
  remoteAddress: string;
  remotePort: number;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

export class AdminAuth {
  constructor(private readonly sources: AdminAuthSources) {}

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
    return { ok: true, principal: { id: `token:${found.name}`, scopes: found.scopes } };
  }

  private async user(credentials: string, peer: Peer): Promise<AuthOutcome> {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { ok: false, status: 401, error: 'malformed Basic credentials' };
    const username = decoded.slice(0, colon);
    const authenticate = this.sources.authenticate;
    if (!authenticate) return { ok: false, status: 401, error: 'no authentication is configured for users: use an API token', principal: `user:${username}` };
    const request: AuthenticateRequest = {
      // No MQTT client identifier: the guard judges the address and the user name.
      clientId: '', username, password: Buffer.from(decoded.slice(colon + 1), 'utf8'), protocolVersion: 5,
      remoteAddress: peer.remoteAddress, remotePort: peer.remotePort, listener: 'admin', allowAnonymous: false, openedAt: Date.now(),
    };
    let result: AuthenticateResult;
    try {
      result = await authenticate(request);
    } catch {
      return { ok: false, status: 503, error: 'authentication failed to answer', principal: `user:${username}` };
    }
    const principal = `user:${username}`;
    if (result === true || (typeof result === 'object' && result.ok)) {
      const identity = typeof result === 'object' && result.ok ? result.identity : undefined;
      const name = identity?.username ?? username;
      const roles = this.sources.acl?.roleNames({ clientId: '', username: name, ...(identity?.groups && { groups: identity.groups }) }) ?? [];
      if (!roles.includes(this.sources.adminRole)) {
        return { ok: false, status: 403, error: `user ${name} does not have the "${this.sources.adminRole}" role`, principal: `user:${name}` };
      }
      return { ok: true, principal: { id: `user:${name}`, scopes: ADMIN_SCOPES } };
    }
    if (typeof result === 'object' && !result.ok) {
      if (result.reason === 'banned') return { ok: false, status: 403, error: 'banned', principal };
      if (result.reason === 'busy' || result.reason === 'unavailable') return { ok: false, status: 503, error: 'authentication is unavailable; try again later', principal };
    }
    return { ok: false, status: 401, error: 'bad user name or password', principal };
  }
}
