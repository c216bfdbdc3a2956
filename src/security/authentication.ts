import type { AuthenticateRequest, AuthenticateResult, ClientIdentity } from '../broker/hooks.js';
import type { AuditLog } from './audit.js';

type MaybePromise<T> = T | Promise<T>;

/** What one provider says about a CONNECT. */
export type ProviderAnswer =
  /** The credentials are good: this is who the client is. */
  | { outcome: 'accept'; identity: ClientIdentity }
  /**
   * The credentials are this provider's to judge, and they are wrong (or the client may not connect);
   * `unavailable`: they could not be judged, as a service the provider needs failed (fail closed).
   */
  | { outcome: 'refuse'; reason: 'badCredentials' | 'notAuthorized' | 'banned' | 'busy' | 'unavailable'; why: string }
  /**
   * Not this provider's kind of credentials (or a user it does not know): ask the next one.
   * `failed`: the provider could not judge them, as a service it needs failed, and passes them on
   * (fail open); if nothing after it accepts the client, the client is told the server is unavailable.
   */
  | { outcome: 'pass'; why?: string; failed?: boolean };

/**
 * One way of checking credentials (a password file, JWTs, an HTTP service,
 * a client certificate...). A verified TLS client certificate arrives in the
 * request like a user name does, so a certificate provider can stand alone or
 * before a password provider without the chain changing.
 */
export interface AuthProvider {
  readonly method: string;
  /** The identities it accepts may carry permissions (e.g. a token claim): an authorizer is needed even without configured rules. */
  readonly grantsPermissions?: boolean;
  authenticate(request: AuthenticateRequest): MaybePromise<ProviderAnswer>;
  close?(): void;
}

/**
 * A refusal the client is told as `unavailable`: a provider refused the credentials after another had failed
 * open, and the outage must not tell a wrong password from an unknown user. `concealed` is the refusal the
 * answer hides, for the guard to count as a failed authentication; the broker reads only `ok` and `reason`.
 */
export interface ConcealedRefusal {
  ok: false;
  reason: 'unavailable';
  concealed: 'badCredentials' | 'notAuthorized';
}

/** What the chain answers: an `authenticate` hook's answer, or one that conceals a refusal. */
export type ChainResult = AuthenticateResult | ConcealedRefusal;

/** The authentication chain: an `authenticate` hook whose answers may carry a concealed refusal. */
export type AuthChain = (request: AuthenticateRequest) => MaybePromise<ChainResult>;

/**
 * The providers, tried in configured order: the first definite answer wins.
 * When all pass, a client that presented a user name or password is refused
 * as bad credentials (CONNACK 4 / 0x86), exactly as a wrong password is, so the
 * answer does not tell whether the user exists; a client that presented nothing
 * is left to the listener's anonymous policy.
 *
 * A failure is not a refusal: a provider that throws, or whose service fails,
 * refuses as `unavailable` (fail closed: CONNACK 3 / 0x88 Server unavailable).
 * One that fails open passes instead; then only a later acceptance lets the
 * client in (or, without credentials, the listener's anonymous policy), and
 * anything else is answered `unavailable` too, a later refusal of the
 * credentials included: the failed service might have accepted them, and an
 * outage must not tell a wrong password from an unknown user (the answer carries
 * the refusal it conceals, so the guard counts it all the same). A ban or a busy
 * refusal stands. Every accept and refusal goes to the audit log; secrets never do.
 */
export function createAuthChain(providers: readonly AuthProvider[], audit: AuditLog): AuthChain {
  return (request) => {
    /** `failed`: why a provider before this answer failed open, if one did. */
    const finish = (answer: ProviderAnswer, method: string | undefined, failed: string | undefined): ChainResult => {
      const who = { clientId: request.clientId, username: request.username, remoteAddress: request.remoteAddress, listener: request.listener };
      if (answer.outcome === 'accept') {
        // The user the client is from now on (a certificate's, a token's), which the CONNECT may not name.
        audit.record({ event: 'connect.accepted', ...who, username: answer.identity.username ?? request.username, method: answer.identity.method });
        return { ok: true, identity: answer.identity };
      }
      if (answer.outcome === 'refuse') {
        if (failed !== undefined && (answer.reason === 'badCredentials' || answer.reason === 'notAuthorized')) {
          audit.record({ event: 'connect.refused', ...who, method, reason: `${answer.why}; ${failed}` });
          return { ok: false, reason: 'unavailable', concealed: answer.reason };
        }
        audit.record({ event: 'connect.refused', ...who, method, reason: answer.why });
        return { ok: false, reason: answer.reason };
      }
      if (request.username === undefined && request.password === undefined) {
        if (failed !== undefined && !request.allowAnonymous) {
          audit.record({ event: 'connect.refused', ...who, reason: `no credentials and anonymous access is off; ${failed}` });
          return { ok: false, reason: 'unavailable' };
        }
        audit.record({ event: request.allowAnonymous ? 'connect.anonymous' : 'connect.refused', ...who, reason: request.allowAnonymous ? undefined : 'no credentials and anonymous access is off' });
        return undefined;
      }
      if (failed !== undefined) {
        audit.record({ event: 'connect.refused', ...who, reason: `no provider accepted the credentials; ${failed}` });
        return { ok: false, reason: 'unavailable' };
      }
      audit.record({ event: 'connect.refused', ...who, reason: 'no provider accepted the credentials' });
      return { ok: false, reason: 'badCredentials' };
    };

    const broke = (provider: AuthProvider, err: unknown, failed: string | undefined): ChainResult =>
      finish({ outcome: 'refuse', reason: 'unavailable', why: `${provider.method} failed: ${(err as Error).message}` }, provider.method, failed);

    const ask = (from: number, failed: string | undefined): MaybePromise<ChainResult> => {
      for (let i = from; i < providers.length; i++) {
        const provider = providers[i]!;
        let answer: MaybePromise<ProviderAnswer>;
        try {
          answer = provider.authenticate(request);
        } catch (err) {
          return broke(provider, err, failed);
        }
        if (answer instanceof Promise) {
          return answer.then(
            (a) => (a.outcome === 'pass' ? ask(i + 1, failedOpen(provider, a, failed)) : finish(a, provider.method, failed)),
            (err: unknown) => broke(provider, err, failed),
          );
        }
        if (answer.outcome !== 'pass') return finish(answer, provider.method, failed);
        failed = failedOpen(provider, answer, failed);
      }
      return finish({ outcome: 'pass' }, undefined, failed);
    };
    return ask(0, undefined);
  };
}

/** The first failure a pass reports, in words for the audit trail. */
function failedOpen(provider: AuthProvider, answer: { why?: string; failed?: boolean }, before: string | undefined): string | undefined {
  if (before !== undefined || !answer.failed) return before;
  return `${provider.method} failed open: ${answer.why ?? 'service unavailable'}`;
}
