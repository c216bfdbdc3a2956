import net from 'node:net';

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (host.startsWith('::ffff:')) return host.slice(7).startsWith('127.');
  return false;
}

export interface AnonymousPolicyInput {
  name: string;
  host: string;
  allowAnonymous: boolean | undefined;
  authenticationConfigured: boolean;
}

export interface AnonymousPolicy {
  allowAnonymous: boolean;
  /** Set when the operator opened a network-reachable listener to everyone. */
  warning?: string;
}

/**
 * Secure by default: anonymous clients are accepted on loopback unless
 * forbidden or authentication is configured, and on any other address only
 * when the operator says so.
 * A reachable listener with no way to authenticate anybody refuses to start.
 */
export function anonymousPolicy(input: AnonymousPolicyInput): AnonymousPolicy {
  // Loopback is open by default only while nothing authenticates anybody: with authentication
  // configured, a local proxy or program must not become a way around it.
  if (isLoopbackHost(input.host)) return { allowAnonymous: input.allowAnonymous ?? !input.authenticationConfigured };
  if (input.allowAnonymous === true) {
    return {
      allowAnonymous: true,
      warning: `listener ${input.name} accepts unauthenticated clients on ${input.host}, reachable from the network`,
    };
  }
  if (!input.authenticationConfigured) {
    throw new Error(
      `listener ${input.name}: refusing to listen on non-loopback address ${input.host} without authentication; ` +
        'configure authentication, or set allow_anonymous: true (allowAnonymous in the library API) to accept anyone',
    );
  }
  return { allowAnonymous: false };
}
