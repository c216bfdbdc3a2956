import type { AuthenticateRequest, AuthenticateResult, BrokerHooks, ClientIdentity } from '../broker/hooks.js';
import type { AuditLog } from './audit.js';

type MaybePromise<T> = T | Promise<T>;

/** What one provider says about a CONNECT. */
export type ProviderAnswer =
  /** The credentials are good: this is who the client is. */
  | { outcome: 'accept'; identity: ClientIdentity }
  /** The credentials are this provider's to judge, and they are wrong (or the client may not connect). */
  | { outcome: 'refuse'; reason: 'badCredentials' | 'notAuthorized' | 'banned' | 'busy'; why: string }
  /** Not this provider's kind of credentials (or a user it does not know): ask the next one. */
  | { outcome: 'pass'; why?: string };

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
 * The providers, tried in configured order: the first definite answer wins.
 * When all pass, a client that presented a user name or password is refused
 * as bad credentials (CONNACK 4 / 0x86), exactly as a wrong password is, so the
 * answer does not tell whether the user exists; a client that presented nothing
 * is left to the listener's anonymous policy. A provider that throws refuses
 * (fail closed). Every accept and refusal goes to the audit log; secrets never do.
 */
export function createAuthChain(providers: readonly AuthProvider[], audit: AuditLog): NonNullable<BrokerHooks['authenticate']> {
  return (request) => {
    const finish = (answer: ProviderAnswer, method: string | undefined): AuthenticateResult => {
      const who = { clientId: request.clientId, username: request.username, remoteAddress: request.remoteAddress, listener: request.listener };
      if (answer.outcome === 'accept') {
        // The user the client is from now on (a certificate's, a token's), which the CONNECT may not name.
        audit.record({ event: 'connect.accepted', ...who, username: answer.identity.username ?? request.username, method: answer.identity.method });
        return { ok: true, identity: answer.identity };
      }
      if (answer.outcome === 'refuse') {
        audit.record({ event: 'connect.refused', ...who, method, reason: answer.why });
        return { ok: false, reason: answer.reason };
      }
      if (request.username === undefined && request.password === undefined) {
        audit.record({ event: request.allowAnonymous ? 'connect.anonymous' : 'connect.refused', ...who, reason: request.allowAnonymous ? undefined : 'no credentials and anonymous access is off' });
        return undefined;
      }
      audit.record({ event: 'connect.refused', ...who, reason: 'no provider accepted the credentials' });
      return { ok: false, reason: 'badCredentials' };
    };

    const ask = (from: number): MaybePromise<AuthenticateResult> => {
      for (let i = from; i < providers.length; i++) {
        const provider = providers[i]!;
        let answer: MaybePromise<ProviderAnswer>;
        try {
          answer = provider.authenticate(request);
        } catch (err) {
          return finish({ outcome: 'refuse', reason: 'notAuthorized', why: `${provider.method} failed: ${(err as Error).message}` }, provider.method);
        }
        if (answer instanceof Promise) {
          return answer.then(
            (a) => (a.outcome === 'pass' ? ask(i + 1) : finish(a, provider.method)),
            (err: unknown) => finish({ outcome: 'refuse', reason: 'notAuthorized', why: `${provider.method} failed: ${(err as Error).message}` }, provider.method),
          );
        }
        if (answer.outcome !== 'pass') return finish(answer, provider.method);
      }
      return finish({ outcome: 'pass' }, undefined);
    };
    return ask(0);
  };
}
