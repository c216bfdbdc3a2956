import type { AuthenticateRequest } from '../broker/hooks.js';
import type { AuthProvider, ProviderAnswer } from './authentication.js';

/**
 * Clients that proved a pre-shared key in their TLS handshake (a listener's `psk_file`): the identity is the user
 * name, as with Mosquitto's `use_identity_as_username`. The key was checked by TLS, so nothing else is asked.
 * Without a PSK identity the provider passes, so it can sit first in the chain in front of password clients.
 */
export interface PskProviderOptions {
  /** A client that sends a user name must send its PSK identity (default true). */
  requireUsernameMatch?: boolean;
}

export class PskProvider implements AuthProvider {
  readonly method = 'psk';

  constructor(private readonly options: PskProviderOptions = {}) {}

  authenticate(request: AuthenticateRequest): ProviderAnswer {
    const identity = request.pskIdentity;
    if (identity === undefined) return { outcome: 'pass' };
    if (request.username !== undefined && (this.options.requireUsernameMatch ?? true) && request.username !== identity) {
      return { outcome: 'refuse', reason: 'badCredentials', why: 'user name does not match the PSK identity' };
    }
    return { outcome: 'accept', identity: { method: this.method, username: identity } };
  }
}
