import type { AuthenticateRequest } from '../broker/hooks.js';
import type { AuthProvider, ProviderAnswer } from './authentication.js';
import { PasswordProvider, type PasswordProviderLimits } from './password-provider.js';
import type { RuntimeSecurity } from './runtime-store.js';

/**
 * Authenticates the users kept at runtime (RuntimeSecurity): the password check is the password provider's (scrypt,
 * the fair gate, a stand-in hash for unknown users, accepted credentials remembered until the hash changes). It
 * comes after the configured providers, so a user a password file defines is the file's. A user bound to a Client
 * Identifier is refused (not authorized) with any other. Its users are always judged by the permissions in force
 * (their identity carries an empty permission list), even where no rules are configured: a runtime user has what
 * its roles give, nothing more.
 */
export class RuntimeProvider implements AuthProvider {
  readonly method = 'password';
  readonly grantsPermissions = true;
  private readonly passwords: PasswordProvider;

  constructor(private readonly users: RuntimeSecurity, limits: PasswordProviderLimits = {}) {
    this.passwords = new PasswordProvider(users, limits);
  }

  async authenticate(request: AuthenticateRequest): Promise<ProviderAnswer> {
    const answer = await this.passwords.authenticate(request);
    if (answer.outcome !== 'accept') return answer;
    const bound = this.users.clientIdOf(request.username!);
    if (bound !== undefined && bound !== request.clientId) return { outcome: 'refuse', reason: 'notAuthorized', why: 'the user is bound to another client identifier' };
    return { outcome: 'accept', identity: { ...answer.identity, permissions: [] } };
  }
}
