import { createHash, createHmac, pbkdf2, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password files: Moat's own format (scrypt for passwords, plus SCRAM-SHA-256
 * keys so the file can serve MQTT 5 enhanced authentication without holding
 * passwords) and Mosquitto's `mosquitto_passwd` formats ($7$ PBKDF2-SHA512 and
 * the older $6$ salted SHA-512), read as they are.
 *
 * One user per line, `username:credential[:credential...]`; `#` starts a comment.
 *   alice:scrypt$15$8$1$<salt>$<hash>:scram-sha-256$4096$<salt>$<StoredKey>$<ServerKey>
 *   bob:$7$101$<salt>$<hash>
 * Binary fields are standard base64.
 */

export interface ScryptHash {
  kind: 'scrypt';
  /** log2 of the CPU/memory cost N. */
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

export interface Pbkdf2Hash {
  kind: 'mosquitto-pbkdf2';
  iterations: number;
  salt: Buffer;
  hash: Buffer;
}

export interface Sha512Hash {
  kind: 'mosquitto-sha512';
  salt: Buffer;
  hash: Buffer;
}

export type PasswordHash = ScryptHash | Pbkdf2Hash | Sha512Hash;

/** What SCRAM-SHA-256 needs of a user (RFC 5802 section 3): never the password itself. */
export interface ScramCredential {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface PasswordEntry {
  username: string;
  hash: PasswordHash;
  scram?: ScramCredential;
}

export class PasswordFileError extends Error {
  override readonly name = 'PasswordFileError';
  constructor(readonly file: string, readonly line: number, readonly problem: string) {
    super(`${file}:${line}: ${problem}`);
  }
}

export const DEFAULT_SCRYPT = { logN: 15, r: 8, p: 1 } as const;
export const DEFAULT_SCRAM_ITERATIONS = 4096;
const HASH_LENGTH = 32;

/** Standard base64 of exactly `length` bytes (or at least `min` bytes): a truncated hash must never verify. */
function b64(field: string | undefined, what: string, size: { length?: number; min?: number }): Buffer {
  if (field === undefined || field.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(field)) throw new Error(`${what} is not base64`);
  const bytes = Buffer.from(field, 'base64');
  if (size.length !== undefined && bytes.length !== size.length) throw new Error(`${what} must be ${size.length} bytes, not ${bytes.length}`);
  if (size.min !== undefined && bytes.length < size.min) throw new Error(`${what} must be at least ${size.min} bytes`);
  return bytes;
}

function positiveInt(field: string | undefined, what: string, max: number): number {
  const n = Number(field);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${what} must be an integer from 1 to ${max}`);
  return n;
}

function parseCredential(text: string): PasswordHash | ScramCredential {
  const parts = text.split('$');
  if (text.startsWith('$7$')) {
    // $7$iterations$salt$hash (mosquitto_passwd, Mosquitto 2.0)
    return {
      kind: 'mosquitto-pbkdf2', iterations: positiveInt(parts[2], 'iterations', 10_000_000),
      salt: b64(parts[3], 'salt', { min: 8 }), hash: b64(parts[4], 'hash', { length: 64 }),
    };
  }
  if (text.startsWith('$6$')) {
    return { kind: 'mosquitto-sha512', salt: b64(parts[2], 'salt', { min: 8 }), hash: b64(parts[3], 'hash', { length: 64 }) };
  }
  if (parts[0] === 'scrypt') {
    return {
      kind: 'scrypt', logN: positiveInt(parts[1], 'log2 N', 22), r: positiveInt(parts[2], 'r', 64), p: positiveInt(parts[3], 'p', 16),
      salt: b64(parts[4], 'salt', { min: 8 }), hash: b64(parts[5], 'hash', { length: HASH_LENGTH }),
    };
  }
  if (parts[0] === 'scram-sha-256') {
    return {
      iterations: positiveInt(parts[1], 'iterations', 10_000_000), salt: b64(parts[2], 'salt', { min: 8 }),
      storedKey: b64(parts[3], 'StoredKey', { length: 32 }), serverKey: b64(parts[4], 'ServerKey', { length: 32 }),
    };
  }
  throw new Error(`unknown credential format "${text.slice(0, 12)}…"`);
}

/** Parses a whole file; every problem names the line. */
export function parsePasswordFile(text: string, file: string): Map<string, PasswordEntry> {
  const users = new Map<string, PasswordEntry>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new PasswordFileError(file, index + 1, 'expected "username:password-hash"');
    const username = line.slice(0, colon);
    if (users.has(username)) throw new PasswordFileError(file, index + 1, `user "${username}" appears twice`);
    let hash: PasswordHash | undefined;
    let scram: ScramCredential | undefined;
    // Mosquitto hashes contain no ':'; Moat's credentials are separated by ':'.
    for (const credentialText of line.slice(colon + 1).split(':')) {
      let credential: PasswordHash | ScramCredential;
      try {
        credential = parseCredential(credentialText);
      } catch (err) {
        throw new PasswordFileError(file, index + 1, `user "${username}": ${(err as Error).message}`);
      }
      if ('kind' in credential) hash = credential;
      else scram = credential;
    }
    if (!hash) throw new PasswordFileError(file, index + 1, `user "${username}" has no password hash`);
    users.set(username, scram ? { username, hash, scram } : { username, hash });
  });
  return users;
}

function formatHash(h: PasswordHash): string {
  switch (h.kind) {
    case 'scrypt': return `scrypt$${h.logN}$${h.r}$${h.p}$${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
    case 'mosquitto-pbkdf2': return `$7$${h.iterations}$${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
    case 'mosquitto-sha512': return `$6$${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
  }
}

export function formatEntry(e: PasswordEntry): string {
  const scram = e.scram
    ? `:scram-sha-256$${e.scram.iterations}$${e.scram.salt.toString('base64')}$${e.scram.storedKey.toString('base64')}$${e.scram.serverKey.toString('base64')}`
    : '';
  return `${e.username}:${formatHash(e.hash)}${scram}`;
}

function scryptAsync(password: Buffer, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password, salt, HASH_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key))));
}

function pbkdf2Async(password: Buffer, salt: Buffer, iterations: number, length: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) => pbkdf2(password, salt, iterations, length, digest, (err, key) => (err ? reject(err) : resolve(key))));
}

/** Computes what `hash` would be for `password` (same kind and parameters). */
async function derive(hash: PasswordHash, password: Buffer): Promise<Buffer> {
  switch (hash.kind) {
    case 'scrypt': return scryptAsync(password, hash.salt, hash.logN, hash.r, hash.p);
    case 'mosquitto-pbkdf2': return pbkdf2Async(password, hash.salt, hash.iterations, hash.hash.length, 'sha512');
    case 'mosquitto-sha512': return createHash('sha512').update(password).update(hash.salt).digest();
  }
}

/**
 * Constant-time comparison of the derived key with the stored one. A password containing a NUL byte never
 * matches: HMAC pads a short key with zero bytes, so PBKDF2 and scrypt derive the same key for `pw` and
 * `pw\0` (and Mosquitto's C strings end at the first NUL). It is refused before hashing, yet hashed all the
 * same, so the refusal costs what a wrong password's does.
 */
export async function verifyPassword(hash: PasswordHash, password: Buffer): Promise<boolean> {
  const acceptable = !password.includes(0);
  const derived = await derive(hash, password);
  return derived.length === hash.hash.length && timingSafeEqual(derived, hash.hash) && acceptable;
}

/** The SCRAM-SHA-256 keys of a password (RFC 5802: SaltedPassword = Hi(password, salt, i)). */
export async function scramCredential(password: Buffer, iterations = DEFAULT_SCRAM_ITERATIONS, salt = randomBytes(16)): Promise<ScramCredential> {
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    iterations,
    salt,
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

/** A new entry for `password`: scrypt for plain authentication, SCRAM keys for enhanced authentication. */
export async function createEntry(username: string, password: Buffer, params: { logN: number; r: number; p: number } = DEFAULT_SCRYPT): Promise<PasswordEntry> {
  if (username.length === 0 || username.includes(':') || /[\r\n]/.test(username) || username.startsWith('#') || username.trim() !== username) {
    throw new Error('a user name must be non-empty, contain no ":" or line break, not start with "#" and not start or end with spaces');
  }
  if (password.length === 0) throw new Error('the password must not be empty');
  // verifyPassword never accepts one; SCRAM keys would answer for the password without its trailing NULs too.
  if (password.includes(0)) throw new Error('the password must not contain a NUL byte');
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, params.logN, params.r, params.p);
  return { username, hash: { kind: 'scrypt', ...params, salt, hash }, scram: await scramCredential(password) };
}
