import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createLocalJWKSet, errors, jwtVerify,
  type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions,
} from 'jose';
import type { AuthenticateRequest, ClientIdentity } from '../broker/hooks.js';
import { rulesFromPermissions } from './acl.js';
import type { AuthProvider, ProviderAnswer } from './authentication.js';

/**
 * JWT access tokens carried in the CONNECT password. The signature is checked
 * against a key from a file, a JWKS file or a JWKS URL (`RemoteKeySet`: one
 * fetch at a time, cached, refreshed at most every cooldown, failures backed
 * off), only with the configured
 * algorithms (so `alg: none` and an HMAC token signed with a public key are
 * refused); `exp`, `nbf`, `iss` and `aud` are checked. A claim may carry
 * topic permissions, which the authorizer then enforces, and the connection
 * ends when the token expires (MQTT 5: DISCONNECT 0xA0) unless told otherwise.
 */

export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

/** The key each algorithm verifies with, in words. */
const KEY_NEEDED: Record<JwtAlgorithm, string> = {
  HS256: 'an HMAC secret (secret_file)', HS384: 'an HMAC secret (secret_file)', HS512: 'an HMAC secret (secret_file)',
  RS256: 'an RSA key', RS384: 'an RSA key', RS512: 'an RSA key', PS256: 'an RSA key', PS384: 'an RSA key', PS512: 'an RSA key',
  ES256: 'an EC P-256 key', ES384: 'an EC P-384 key', ES512: 'an EC P-521 key', EdDSA: 'an Ed25519 key',
};
const EC_ALGORITHM: Record<string, JwtAlgorithm> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const EC_NAME: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
const RSA_ALGORITHMS: JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
/** jose refuses shorter RSA keys at every verification. */
const MIN_RSA_BITS = 2048;

export const isHmac = (alg: JwtAlgorithm): boolean => alg.startsWith('HS');

/** What `alg` verifies with: "an RSA key", "an EC P-256 key", "an HMAC secret (secret_file)"… */
export function keyNeeded(alg: JwtAlgorithm): string {
  return KEY_NEEDED[alg];
}

/** A public key in words: "an RSA key (2048 bits)", "an EC P-256 key", "an Ed25519 key". */
export function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') return `an ${type === 'rsa' ? 'RSA' : 'RSA-PSS'} key (${details.modulusLength ?? '?'} bits)`;
  if (type === 'ec') return `an EC ${EC_NAME[details.namedCurve ?? ''] ?? details.namedCurve ?? 'unknown curve'} key`;
  if (type === 'ed25519') return 'an Ed25519 key';
  return `a${/^[aeiou]/i.test(type ?? '') ? 'n' : ''} ${type ?? 'unknown'} key`;
}

/** The algorithms (of those Moat accepts) that can verify a token with this public key; none for a key jose cannot use. */
export function algorithmsFor(key: KeyObject): JwtAlgorithm[] {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa': return (details.modulusLength ?? 0) >= MIN_RSA_BITS ? RSA_ALGORITHMS : [];
    case 'ec': {
      const alg = EC_ALGORITHM[details.namedCurve ?? ''];
      return alg ? [alg] : [];
    }
    case 'ed25519': return ['EdDSA'];
    default: return [];
  }
}

/** Why this public key (from `file`) cannot verify `alg` tokens ("RS256 needs an RSA key, but ec.pem is an EC P-256 key"), or undefined when it can. */
export function keyMismatch(key: KeyObject, alg: JwtAlgorithm, file = 'the key'): string | undefined {
  if (algorithmsFor(key).includes(alg)) return undefined;
  const small = key.asymmetricKeyType === 'rsa' && !isHmac(alg) && RSA_ALGORITHMS.includes(alg);
  return small
    ? `${alg} needs an RSA key of at least ${MIN_RSA_BITS} bits, but ${file} is ${describeKey(key)}`
    : `${alg} needs ${KEY_NEEDED[alg]}, but ${file} is ${describeKey(key)}`;
}

/**
 * The public key of a PEM file holding a public key or a certificate. Anything else (a private key, a file
 * that is no PEM key at all) throws an error saying so in words, naming the file.
 */
export function readPublicKey(file: string): KeyObject {
  return publicKeyFromPem(readKeyFile(file, 'public key'), file);
}

export function publicKeyFromPem(pem: string, file: string): KeyObject {
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(`${file} holds a private key, not a public key: give the public key (openssl pkey -in <key> -pubout) or the certificate`);
  }
  if (!/-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----/.test(pem)) throw new Error(`${file} is not a public key or a certificate (PEM)`);
  try {
    return createPublicKey(pem);
  } catch {
    throw new Error(`${file} is not a readable public key or certificate (its PEM does not decode)`);
  }
}

export interface JwtProviderOptions {
  /** The only algorithms accepted; required, so a token cannot choose its own. */
  algorithms: JwtAlgorithm[];
  /** Exactly one source of keys. */
  secretFile?: string;
  publicKeyFile?: string;
  jwksFile?: string;
  jwksUrl?: string;
  issuer?: string | string[];
  audience?: string | string[];
  /** Claim holding the user name (default "sub"). */
  usernameClaim?: string;
  /** When the client sends a user name, it must equal the claim (default true). */
  requireUsernameMatch?: boolean;
  /** Claim with `{ publish?: string[], subscribe?: string[] }`: the client may do exactly that. */
  permissionsClaim?: string;
  /** Claim with a list of group names for the configured roles. */
  groupsClaim?: string;
  /** Close the connection when the token expires (default true). */
  disconnectOnExpiry?: boolean;
  /** Refuse tokens without `exp` (default true). */
  requireExp?: boolean;
  /**
   * Seconds of clock skew tolerated when a token is checked (default 30): for nbf. Not for exp: a
   * token whose exp has passed on this clock is refused, and a connected client is disconnected at exp.
   */
  clockToleranceSeconds?: number;
  /** JWKS URL: refresh at most this often (ms, default 30 s), keep keys this long (default 10 min), give up a fetch after (default 5 s). */
  jwksCooldownMs?: number;
  jwksCacheMaxAgeMs?: number;
  jwksTimeoutMs?: number;
  /** JWKS URL: after a failed fetch, no other before this delay (ms, default 1 s), doubled on each failure up to the maximum (default 60 s); a success resets it. */
  jwksBackoffMs?: number;
  jwksBackoffMaxMs?: number;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

type KeySource = Uint8Array | KeyObject | JWTVerifyGetKey;

/** The key set of a `jwks_url` cannot be had (fetch failed, or backing off after a failure): a failing service, not bad credentials. */
export class KeySetUnavailable extends Error {
  override readonly name = 'KeySetUnavailable';
  readonly code = 'ERR_JWKS_UNAVAILABLE';
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

interface RemoteKeySetTiming {
  cooldownMs: number;
  cacheMaxAgeMs: number;
  timeoutMs: number;
  backoffMs: number;
  backoffMaxMs: number;
}

/** Why a fetch failed, in words: "no answer in time", "fetch failed (ECONNREFUSED)". */
function fetchFailure(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'no answer in time';
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message} (${cause})` : e.message;
}

/**
 * The keys of a JWKS URL. Whatever the number of CONNECTs, at most one fetch is in flight and they all wait
 * for it. A fetched set is used for `cacheMaxAgeMs`; a token whose key id is not in it refetches once the set
 * is older than `cooldownMs` (a key rotation), and is refused as an unknown key before. A failed fetch (an
 * answer other than 200 with a JWK set, no answer in time, no connection) is followed by no other for a
 * backoff delay, doubled on each further failure up to `backoffMaxMs` and reset by a success: an unreachable
 * identity provider costs one request per delay, whatever the clients do. Meanwhile the last good set still
 * serves (also past its age), and a token whose key it does not have is refused as a service failure.
 */
class RemoteKeySet {
  private keys: LocalKeySet | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private pending: Promise<void> | undefined;
  private failures = 0;
  private retryAt = 0;
  private lastFailure = '';

  constructor(private readonly url: URL, private readonly timing: RemoteKeySetTiming) {}

  /** jose's key lookup for `jwtVerify`. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (this.keys === undefined || Date.now() >= this.fetchedAt + this.timing.cacheMaxAgeMs) {
      try {
        await this.refresh();
      } catch (err) {
        // An old set is better than none while the provider fails: its keys still verify their tokens.
        if (this.keys === undefined) throw err;
      }
    }
    try {
      return await this.keys!(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // A key the set does not have: an unknown key while the set is younger than the cooldown (and was
      // not refused since); otherwise perhaps a rotation, worth one fetch (shared, and refused while backing off).
      if (this.failures === 0 && Date.now() < this.fetchedAt + this.timing.cooldownMs) throw err;
      await this.refresh();
      return this.keys!(header, token);
    }
  };

  /** Fetches the set, joining the fetch in flight; rejects with `KeySetUnavailable` while backing off or when the fetch fails. */
  private refresh(): Promise<void> {
    if (this.pending) return this.pending;
    const now = Date.now();
    if (now < this.retryAt) {
      return Promise.reject(new KeySetUnavailable(`${this.url.href} failed (${this.lastFailure}); not asked again for ${this.retryAt - now} ms`));
    }
    const pending = this.fetchKeys().then((keys) => {
      this.keys = keys;
      this.fetchedAt = Date.now();
      this.failures = 0;
      this.retryAt = 0;
    }, (err: unknown) => {
      this.failures++;
      const delay = Math.min(this.timing.backoffMs * 2 ** (this.failures - 1), this.timing.backoffMaxMs);
      this.retryAt = Date.now() + delay;
      this.lastFailure = fetchFailure(err);
      throw new KeySetUnavailable(`${this.url.href} failed (${this.lastFailure}); not asked again for ${delay} ms`);
    }).finally(() => {
      this.pending = undefined;
    });
    this.pending = pending;
    return pending;
  }

  private async fetchKeys(): Promise<LocalKeySet> {
    const response = await fetch(this.url, {
      redirect: 'manual',
      signal: AbortSignal.timeout(this.timing.timeoutMs),
      headers: { accept: 'application/json, application/jwk-set+json' },
    });
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {});
      throw new Error(`HTTP ${response.status}`);
    }
    let json: unknown;
    try {
      json = await response.json();
    } catch (err) {
      throw new Error(`the answer is not JSON: ${fetchFailure(err)}`);
    }
    try {
      return createLocalJWKSet(json as Parameters<typeof createLocalJWKSet>[0]);
    } catch (err) {
      throw new Error(`the answer is not a JWK set: ${(err as Error).message}`);
    }
  }
}

function readKeyFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read the ${what}: ${(err as Error).message}`);
  }
}

export class JwtProvider implements AuthProvider {
  readonly method = 'jwt';
  readonly grantsPermissions: boolean;
  private readonly key: KeySource;
  private readonly verifyOptions: JWTVerifyOptions;

  constructor(private readonly options: JwtProviderOptions) {
    if (options.algorithms.length === 0) throw new Error('jwt: algorithms must list at least one algorithm');
    const sources = [options.secretFile, options.publicKeyFile, options.jwksFile, options.jwksUrl].filter((s) => s !== undefined);
    if (sources.length !== 1) throw new Error('jwt: give exactly one of secret_file, public_key_file, jwks_file, jwks_url');
    const hmac = options.algorithms.filter(isHmac);
    if (hmac.length > 0 && options.secretFile === undefined) throw new Error(`jwt: ${hmac.join(', ')} needs secret_file`);
    if (options.secretFile !== undefined && hmac.length !== options.algorithms.length) {
      throw new Error('jwt: a secret_file goes with HMAC algorithms (HS256/384/512) only');
    }
    this.grantsPermissions = options.permissionsClaim !== undefined;
    this.key = this.loadKey();
    // A token must say when it ends (`requireExp: false` for issuers that do not).
    this.verifyOptions = { algorithms: options.algorithms, clockTolerance: options.clockToleranceSeconds ?? 30, ...(options.requireExp !== false && { requiredClaims: ['exp'] }) };
    if (options.issuer !== undefined) this.verifyOptions.issuer = options.issuer;
    if (options.audience !== undefined) this.verifyOptions.audience = options.audience;
  }

  /**
   * Everything is read and checked here, synchronously: a key that cannot serve a configured algorithm is an
   * error now, never a rejected promise found later (which once ended the process after "moat started").
   */
  private loadKey(): KeySource {
    const o = this.options;
    if (o.secretFile) {
      let secret: Buffer;
      try {
        secret = readFileSync(o.secretFile);
      } catch (err) {
        throw new Error(`${o.secretFile}: cannot read the HMAC secret: ${(err as Error).message}`);
      }
      if (secret.length < 32) throw new Error(`${o.secretFile}: an HMAC secret must have at least 32 bytes`);
      return new Uint8Array(secret);
    }
    if (o.jwksFile) return createLocalJWKSet(JSON.parse(readKeyFile(o.jwksFile, 'JWKS file')) as Parameters<typeof createLocalJWKSet>[0]);
    if (o.jwksUrl) {
      const timing: RemoteKeySetTiming = {
        cooldownMs: o.jwksCooldownMs ?? 30_000,
        cacheMaxAgeMs: o.jwksCacheMaxAgeMs ?? 600_000,
        timeoutMs: o.jwksTimeoutMs ?? 5000,
        backoffMs: o.jwksBackoffMs ?? 1000,
        backoffMaxMs: o.jwksBackoffMaxMs ?? 60_000,
      };
      for (const [name, ms] of Object.entries(timing)) {
        if (!Number.isFinite(ms) || ms < 0) throw new Error(`jwt: jwks${name[0]!.toUpperCase()}${name.slice(1)} must be a number of milliseconds, 0 or more`);
      }
      return new RemoteKeySet(new URL(o.jwksUrl), timing).getKey;
    }
    const key = readPublicKey(o.publicKeyFile!);
    for (const alg of o.algorithms) {
      const mismatch = keyMismatch(key, alg, o.publicKeyFile);
      if (mismatch) throw new Error(`jwt: ${mismatch}`);
    }
    return key;
  }

  async authenticate(request: AuthenticateRequest): Promise<ProviderAnswer> {
    const token = request.password?.toString('utf8');
    if (token === undefined || !JWT_SHAPE.test(token)) return { outcome: 'pass' };
    let payload: JWTPayload;
    try {
      const key = this.key;
      // Both overloads take the same options; the key is a secret, a key object or a key set.
      payload = (typeof key === 'function' ? await jwtVerify(token, key, this.verifyOptions) : await jwtVerify(token, key, this.verifyOptions)).payload;
    } catch (err) {
      // Every problem of this one token (a key of the wrong type for its algorithm included) refuses this client only.
      // jose reports most problems with a `code`; some (a key of the wrong type) as plain errors.
      const code = (err as { code?: string }).code;
      const why = `token refused: ${code ?? 'ERR'} ${(err as Error).message}`;
      // The key set could not be fetched: a failing service (CONNACK 3 / 0x88), not bad credentials.
      if (err instanceof KeySetUnavailable || code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JOSE_GENERIC' || (err as Error).name === 'TypeError' && /fetch/i.test((err as Error).message)) {
        return { outcome: 'refuse', reason: 'unavailable', why };
      }
      return { outcome: 'refuse', reason: 'badCredentials', why };
    }
    // The clock tolerance forgives skew at validation (a fresh token whose nbf is ahead of this clock);
    // it is no grace period. A token already past its exp here would be accepted only to be cut off at once.
    if (typeof payload.exp === 'number' && payload.exp * 1000 <= Date.now()) {
      return { outcome: 'refuse', reason: 'badCredentials', why: 'token refused: expired (its exp has passed; the clock tolerance does not extend it)' };
    }
    const claimName = this.options.usernameClaim ?? 'sub';
    const claimed = payload[claimName];
    if (typeof claimed !== 'string' || claimed.length === 0) {
      return { outcome: 'refuse', reason: 'badCredentials', why: `token has no ${claimName} claim naming the user` };
    }
    if (request.username !== undefined && (this.options.requireUsernameMatch ?? true) && request.username !== claimed) {
      return { outcome: 'refuse', reason: 'badCredentials', why: `user name does not match the token's ${claimName}` };
    }
    const identity: { -readonly [K in keyof ClientIdentity]: ClientIdentity[K] } = { method: this.method };
    identity.username = claimed;
    if (this.options.groupsClaim) {
      const groups = payload[this.options.groupsClaim];
      if (Array.isArray(groups) && groups.every((g) => typeof g === 'string')) identity.groups = groups;
    }
    if (this.options.permissionsClaim) {
      // A token without the claim grants nothing; a malformed claim refuses the client.
      const claim = payload[this.options.permissionsClaim];
      try {
        identity.permissions = claim === undefined ? [] : rulesFromPermissions(claim);
      } catch (err) {
        return { outcome: 'refuse', reason: 'notAuthorized', why: `token claim ${this.options.permissionsClaim}: ${(err as Error).message}` };
      }
    }
    // Disconnected at exp itself: the clock tolerance is for skew at validation, not a grace period.
    if ((this.options.disconnectOnExpiry ?? true) && typeof payload.exp === 'number') identity.expiresAt = payload.exp * 1000;
    return { outcome: 'accept', identity };
  }
}
