/** What the admin listener is configured with (`admin:` in the YAML file, docs/operations.md). */

/** What an API token may do: `read` the API, `write` through it (change things), scrape `metrics`. */
export type AdminScope = 'read' | 'write' | 'metrics';

export const ADMIN_SCOPES: readonly AdminScope[] = ['read', 'write', 'metrics'];

export interface AdminToken {
  /** Who the token speaks for, in the audit trail. */
  name: string;
  /** SHA-256 of the token (from `token_sha256`, or of the first line of `token_file`): the token itself is never kept. */
  sha256: Buffer;
  scopes: readonly AdminScope[];
  /** Epoch ms from which the token is refused (401, "expired"); absent: it does not expire. */
  expiresAt?: number;
}

export interface AdminTls {
  cert: Buffer;
  key: Buffer;
  passphrase?: string;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  ciphers?: string;
}

export interface AdminOptions {
  host: string;
  port: number;
  tls?: AdminTls;
  /** false: /metrics is open to anyone who can reach the port. */
  metricsAuth: boolean;
  /** The role (authorization.roles) an authenticated user needs to use the admin listener. */
  adminRole: string;
  tokens: AdminToken[];
}

/** The default port: EMQX's dashboard port, which operators of MQTT brokers know (Mosquitto has no admin listener). */
export const DEFAULT_ADMIN_PORT = 18083;
export const DEFAULT_ADMIN_ROLE = 'admin';
/** A token from a file shorter than this is refused at load: a token must not be guessable. */
export const MIN_TOKEN_LENGTH = 32;
