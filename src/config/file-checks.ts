import { createPrivateKey, createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { TlsListenerOptions } from '../broker/options.js';
import { algorithmsFor, describeKey, isHmac, keyMismatch, keyNeeded, publicKeyFromPem, type JwtAlgorithm } from '../security/jwt-provider.js';
import { parseMosquittoAcl } from '../security/mosquitto-acl.js';
import { parsePasswordFile } from '../security/password-file.js';
import type { ConfigError } from './load.js';
import type { FileAuthentication, FileConfig } from './schema.js';

/**
 * The files a configuration names (TLS certificates and keys, password, ACL and key files, the audit log's
 * directory), read and checked when the configuration is loaded: a missing file, a certificate given as a key
 * or a key that cannot verify a configured algorithm is a configuration error on the line of its key, never a
 * failure after the broker started.
 */

/** Builds the error for a dotted key path: file and line come from the configuration. */
export type Locate = (path: string[], problem: string) => ConfigError;

const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the name is too long',
};

/** A failed file operation in words: "ENOENT (no such file)". */
export function errnoWords(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === undefined) return (err as Error).message;
  const words = ERRNO_WORDS[code];
  return `${code}${words ? ` (${words})` : ''}`;
}

/** "cannot read /etc/moat/passwd: ENOENT (no such file)" */
function cannotRead(file: string, err: unknown): string {
  return `cannot read ${file}: ${errnoWords(err)}`;
}

function readAt(located: Locate, at: string[], file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw located(at, cannotRead(file, err));
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const PEM_ENCRYPTED = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/;

/** The certificates of a PEM file; undefined when one of them does not decode. */
function certificates(pem: string): X509Certificate[] | undefined {
  try {
    return (pem.match(PEM_CERTIFICATE) ?? []).map((block) => new X509Certificate(block));
  } catch {
    return undefined;
  }
}

/** Why a PEM file is not a certificate, in words. */
function notACertificate(file: string, pem: string, what: string): string {
  if (PEM_PRIVATE_KEY.test(pem)) return `${file} holds a private key, not ${what} (PEM)`;
  if (certificates(pem) === undefined) return `${file} holds a certificate that does not decode (damaged PEM)`;
  return `${file} is not ${what} (PEM)`;
}

/**
 * The PEM files of each TLS listener, read and checked now (as node:tls will use them): a certificate that is
 * one, a private key that is one and belongs to it, CA certificates that are certificates.
 */
export function readTlsFiles(config: FileConfig, base: string, located: Locate): Map<number, TlsListenerOptions> {
  const byListener = new Map<number, TlsListenerOptions>();
  config.listeners?.forEach((listener, index) => {
    const t = listener.tls;
    if (!t) return;
    const at = (key: string): string[] => ['listeners', String(index), 'tls', key];
    const certFile = path.resolve(base, t.cert_file);
    const keyFile = path.resolve(base, t.key_file);
    const cert = readAt(located, at('cert_file'), certFile);
    const key = readAt(located, at('key_file'), keyFile);
    const caFile = t.ca_file !== undefined ? path.resolve(base, t.ca_file) : undefined;
    const ca = caFile !== undefined ? readAt(located, at('ca_file'), caFile) : undefined;

    const certPem = cert.toString('latin1');
    const keyPem = key.toString('latin1');
    const chain = certificates(certPem);
    if (!chain?.length) {
      const swapped = PEM_PRIVATE_KEY.test(certPem) && (certificates(keyPem)?.length ?? 0) > 0;
      throw located(at('cert_file'), `${notACertificate(certFile, certPem, 'a certificate')}${swapped ? ': are cert_file and key_file swapped?' : ''}`);
    }
    let privateKey: KeyObject;
    // The passphrase of an encrypted key is kept in a file of its own (readable by the broker only), never in the YAML.
    const passphraseFile = t.key_passphrase_file !== undefined ? path.resolve(base, t.key_passphrase_file) : undefined;
    const passphrase = passphraseFile !== undefined ? readAt(located, at('key_passphrase_file'), passphraseFile).toString('utf8').replace(/\r?\n$/, '') : undefined;
    if (PEM_ENCRYPTED.test(keyPem)) {
      if (passphrase === undefined) {
        throw located(at('key_file'), `${keyFile} is encrypted with a passphrase: give it in a file named by key_passphrase_file, or decrypt the key (openssl pkey -in ${path.basename(keyFile)} -out <new file>)`);
      }
      try {
        privateKey = createPrivateKey({ key, passphrase });
      } catch {
        throw located(at('key_passphrase_file'), `the passphrase in ${passphraseFile} does not decrypt ${keyFile}`);
      }
    } else try {
      privateKey = createPrivateKey(key);
    } catch {
      const what = !PEM_PRIVATE_KEY.test(keyPem) && (certificates(keyPem)?.length ?? 0) > 0 ? 'a certificate, not a private key (PEM)' : 'not a private key (PEM)';
      throw located(at('key_file'), `${keyFile} is ${what}`);
    }
    if (!chain[0]!.checkPrivateKey(privateKey)) {
      throw located(at('key_file'), `the key in ${keyFile} does not belong to the certificate in ${certFile}`);
    }
    if (ca !== undefined) {
      const caPem = ca.toString('latin1');
      if (!certificates(caPem)?.length) throw located(at('ca_file'), notACertificate(caFile!, caPem, 'a CA certificate'));
    }
    const options: TlsListenerOptions = { cert, key };
    if (ca !== undefined) options.ca = ca;
    if (passphrase !== undefined) options.passphrase = passphrase;
    if (t.min_version !== undefined) options.minVersion = t.min_version;
    if (t.ciphers !== undefined) {
      try {
        createSecureContext({ ciphers: t.ciphers });
      } catch (err) {
        throw located(at('ciphers'), `"${t.ciphers}" is not a cipher list OpenSSL accepts: ${opensslWords(err)}`);
      }
      options.ciphers = t.ciphers;
    }
    // What node:tls itself says of them (a key too weak for OpenSSL's security level, …), at the listener's tls key.
    try {
      createSecureContext({ cert, key, ...(ca !== undefined && { ca }), ...(passphrase !== undefined && { passphrase }) });
    } catch (err) {
      throw located(['listeners', String(index), 'tls'], `${certFile} and ${keyFile} cannot be used for TLS: ${opensslWords(err)}`);
    }
    if (t.request_client_certificate !== undefined) options.requestClientCertificate = t.request_client_certificate;
    if (t.require_client_certificate !== undefined) options.requireClientCertificate = t.require_client_certificate;
    byListener.set(index, options);
  });
  return byListener;
}

/** "error:0A00018F:SSL routines::ee key too small" → "ee key too small" */
function opensslWords(err: unknown): string {
  const message = (err as Error).message;
  return /::(.+)$/.exec(message)?.[1] ?? message;
}

/** Password, ACL and key files of the security settings, and the audit log's directory. */
export function checkSecurityFiles(config: FileConfig, base: string, located: Locate): void {
  config.authentication?.forEach((a, i) => {
    const at = (key: string): string[] => ['authentication', String(i), key];
    if (a.type === 'password_file') checkPasswordFile(located, at('path'), path.resolve(base, a.path!));
    if (a.type === 'certificate' && a.also_password_file !== undefined) {
      checkPasswordFile(located, at('also_password_file'), path.resolve(base, a.also_password_file));
    }
    if (a.type === 'jwt') checkJwtKeys(a, base, at, located);
  });
  const aclFile = config.authorization?.acl_file;
  if (aclFile !== undefined) {
    const file = path.resolve(base, aclFile);
    const text = readAt(located, ['authorization', 'acl_file'], file).toString('utf8');
    try {
      parseMosquittoAcl(text, file);
    } catch (err) {
      throw located(['authorization', 'acl_file'], (err as Error).message);
    }
  }
  if (config.audit?.file !== undefined) checkAuditFile(located, ['audit', 'file'], path.resolve(base, config.audit.file));
}

function checkPasswordFile(located: Locate, at: string[], file: string): void {
  const text = readAt(located, at, file).toString('utf8');
  try {
    parsePasswordFile(text, file);
  } catch (err) {
    throw located(at, (err as Error).message);
  }
}

/** "ES256", "RS256 or PS256", "RS256, RS384 or PS256" */
function either(algorithms: readonly string[]): string {
  return algorithms.length <= 1 ? algorithms.join('') : `${algorithms.slice(0, -1).join(', ')} or ${algorithms.at(-1)}`;
}

/** Each configured algorithm must be one its key (secret, public key or key set) can verify. */
function checkJwtKeys(a: FileAuthentication, base: string, at: (key: string) => string[], located: Locate): void {
  const algorithms = a.algorithms!;
  const hmac = algorithms.filter(isHmac);
  const signed = algorithms.filter((alg) => !isHmac(alg));
  if (a.secret_file !== undefined) {
    if (signed.length > 0) {
      throw located(at('algorithms'), `${signed[0]} needs ${keyNeeded(signed[0]!)}, but this provider has a secret_file (a shared secret, for HS256, HS384 and HS512 only)`);
    }
    const file = path.resolve(base, a.secret_file);
    const secret = readAt(located, at('secret_file'), file);
    if (secret.length < 32) throw located(at('secret_file'), `${file} holds ${secret.length} bytes; an HMAC secret needs at least 32`);
    return;
  }
  if (hmac.length > 0) {
    const source = a.public_key_file !== undefined ? 'public_key_file' : a.jwks_file !== undefined ? 'jwks_file' : 'jwks_url';
    throw located(at('algorithms'), `${hmac[0]} needs an HMAC secret (secret_file), but this provider has a ${source}; ${signed.length > 0 ? `list only ${either(signed)}` : 'give the secret in secret_file'}`);
  }
  if (a.public_key_file !== undefined) {
    const file = path.resolve(base, a.public_key_file);
    const pem = readAt(located, at('public_key_file'), file).toString('utf8');
    let key: KeyObject;
    try {
      key = publicKeyFromPem(pem, file);
    } catch (err) {
      throw located(at('public_key_file'), (err as Error).message);
    }
    const usable = algorithmsFor(key);
    for (const alg of algorithms) {
      const mismatch = keyMismatch(key, alg, file);
      if (mismatch === undefined) continue;
      const listed = algorithms.filter((x) => usable.includes(x));
      const advice = listed.length > 0 ? `list only ${either(listed)}` : usable.length > 0 ? `this key verifies ${either(usable)} only` : 'Moat verifies no algorithm with such a key';
      throw located(at('algorithms'), `${mismatch}; ${advice}`);
    }
  }
  if (a.jwks_file !== undefined) checkJwksFile(path.resolve(base, a.jwks_file), algorithms, at, located);
}

function checkJwksFile(file: string, algorithms: readonly JwtAlgorithm[], at: (key: string) => string[], located: Locate): void {
  const text = readAt(located, at('jwks_file'), file).toString('utf8');
  let set: unknown;
  try {
    set = JSON.parse(text);
  } catch (err) {
    throw located(at('jwks_file'), `${file} is not JSON: ${(err as Error).message}`);
  }
  const jwks = (set as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(jwks)) throw located(at('jwks_file'), `${file} is not a JWK set (a JSON object with a "keys" list)`);
  if (jwks.length === 0) throw located(at('jwks_file'), `${file} holds no keys`);
  const keys = jwks.map((jwk: JsonWebKey & { kid?: unknown; alg?: unknown }, i) => {
    const name = `key ${i + 1}${typeof jwk?.kid === 'string' ? ` (kid "${jwk.kid}")` : ''} of ${file}`;
    if (jwk?.d !== undefined) throw located(at('jwks_file'), `${name} is a private key; a JWK set for verification holds public keys only`);
    if (jwk?.kty === 'oct') throw located(at('jwks_file'), `${name} is a shared secret; a JWK set for verification holds public keys only`);
    try {
      return { key: createPublicKey({ key: jwk, format: 'jwk' }), alg: typeof jwk?.alg === 'string' ? jwk.alg : undefined };
    } catch (err) {
      throw located(at('jwks_file'), `${name} is not a usable public key: ${(err as Error).message}`);
    }
  });
  for (const alg of algorithms) {
    if (keys.some((k) => (k.alg === undefined || k.alg === alg) && algorithmsFor(k.key).includes(alg))) continue;
    const held = [...new Set(keys.map((k) => `${describeKey(k.key)}${k.alg !== undefined ? ` for ${k.alg}` : ''}`))].join(', ');
    throw located(at('algorithms'), `${alg} needs ${keyNeeded(alg)}, but ${file} has none (it holds ${held})`);
  }
}

/**
 * The audit log is opened after the configuration is loaded, creating missing directories: an existing file
 * must be a writable file, and the nearest existing directory on its path a writable directory.
 */
function checkAuditFile(located: Locate, at: string[], file: string): void {
  const writable = (target: string): boolean => {
    try {
      accessSync(target, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  };
  let stat: ReturnType<typeof statSync> | undefined;
  try {
    stat = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw located(at, `cannot write to ${file}: ${errnoWords(err)}`);
  }
  if (stat !== undefined) {
    if (stat.isDirectory()) throw located(at, `${file} is a directory, not a file`);
    if (!writable(file)) throw located(at, `cannot write to ${file}: EACCES (permission denied)`);
    return;
  }
  let dir = path.dirname(file);
  for (;;) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(dir).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && path.dirname(dir) !== dir) {
        dir = path.dirname(dir);
        continue;
      }
      throw located(at, `cannot create ${file}: ${errnoWords(err)}`);
    }
    if (!isDirectory) throw located(at, `cannot create ${file}: ${dir} is not a directory`);
    if (!writable(dir)) throw located(at, `cannot create ${file}: the directory ${dir} is not writable (EACCES, permission denied)`);
    return;
  }
}
