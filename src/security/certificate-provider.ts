import type { AuthenticateRequest } from '../broker/hooks.js';
import type { AuthProvider, ProviderAnswer } from './authentication.js';

/**
 * Client certificates verified by a TLS listener: the certificate alone
 * authenticates the client (its common name, or the whole subject, becomes the
 * user name), or together with a password checked by another provider (both
 * must succeed). Without a certificate the provider passes, so it can sit first
 * in the chain in front of password-only clients.
 */
export interface CertificateProviderOptions {
  /** The user name permissions are looked up by: the certificate's common name (default) or its subject. */
  usernameFrom?: 'commonName' | 'subject';
  /** A provider that must also accept the client (e.g. the password file): certificate and password. */
  alsoRequire?: AuthProvider;
  /** A client that sends a user name must send the certificate's (default true). */
  requireUsernameMatch?: boolean;
}

export class CertificateProvider implements AuthProvider {
  readonly method = 'certificate';

  constructor(private readonly options: CertificateProviderOptions = {}) {}

  async authenticate(request: AuthenticateRequest): Promise<ProviderAnswer> {
    const certificate = request.certificate;
    if (!certificate) return { outcome: 'pass' };
    const username = this.options.usernameFrom === 'subject' ? certificate.subject : certificate.commonName;
    if (username === undefined) return { outcome: 'refuse', reason: 'notAuthorized', why: 'the certificate has no common name' };
    if (request.username !== undefined && (this.options.requireUsernameMatch ?? true) && request.username !== username) {
      return { outcome: 'refuse', reason: 'badCredentials', why: "user name does not match the certificate's" };
    }
    const also = this.options.alsoRequire;
    if (also) {
      const second = await also.authenticate({ ...request, username });
      if (second.outcome !== 'accept') {
        return { outcome: 'refuse', reason: 'badCredentials', why: `certificate accepted, but ${also.method}: ${second.outcome === 'refuse' ? second.why : 'no answer'}` };
      }
    }
    return { outcome: 'accept', identity: { method: also ? `certificate+${also.method}` : this.method, username } };
  }

  /** Closes the second provider (a watched password file). */
  close(): void {
    this.options.alsoRequire?.close?.();
  }
}
