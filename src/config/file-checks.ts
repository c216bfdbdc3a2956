import { createPrivateKey, createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { TlsListenerOptions } from '../broker/options.js';
import { algorithmsFor, describeKey, isHmac, keyMismatch, keyNeeded, publicKeyFromPem, type JwtAlgorithm } from '../security/jwt-provider.js';
import { parseMosquittoAcl } from '../security/mosquitto-acl.js';
import { parsePasswordFile } from '../security/password-file.js';
import { parsePskFile, PskFileError, PskKeys } from '../transport/tls-psk.js';
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

export function readAt(located: Locate, at: string[], file: string): Buffer {
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
 * The files of each TLS listener, read and checked now (as node:tls will use them): a certificate that is one, a
 * private key that is one and belongs to it, CA certificates that are certificates, revocation lists that parse and
 * are current, PSK files in Mosquitto's format.
 */
export function readTlsFiles(config: FileConfig, base: string, located: Locate): Map<number, TlsListenerOptions> {
  const byListener = new Map<number, TlsListenerOptions>();
  config.listeners?.forEach((listener, index) => {
    const t = listener.tls;
    if (!t) return;
    const at = (key: string): string[] => ['listeners', String(index), 'tls', key];
    const files: string[] = [];
    const resolve = (name: string): string => {
      const file = path.resolve(base, name);
      files.push(file);
      return file;
    };
    const options: TlsListenerOptions = {};
    let pair: { certFile: string; keyFile: string } | undefined;
    if (t.cert_file === undefined || t.key_file === undefined) {
      // Located at the missing key: the line of the tls block.
      if (t.cert_file !== undefined) throw located(at('key_file'), 'is required but missing: the private key of cert_file');
      if (t.key_file !== undefined) throw located(at('cert_file'), 'is required but missing: the certificate of key_file');
      if (t.psk_file === undefined) throw located(at('cert_file'), 'is required but missing: a TLS listener needs cert_file and key_file (or psk_file, for a listener of pre-shared keys only)');
      if (t.key_passphrase_file !== undefined) throw located(at('key_passphrase_file'), 'only means something with key_file');
    } else {
      pair = readCertificatePair(t.cert_file, t.key_file, t.key_passphrase_file, resolve, at, located, options);
    }
    const requested = t.request_client_certificate === true || t.require_client_certificate === true;
    const caFile = t.ca_file !== undefined ? resolve(t.ca_file) : undefined;
    const ca = caFile !== undefined ? readAt(located, at('ca_file'), caFile) : undefined;
    if (ca !== undefined) {
      const caPem = ca.toString('latin1');
      if (!certificates(caPem)?.length) throw located(at('ca_file'), notACertificate(caFile!, caPem, 'a CA certificate'));
      options.ca = ca;
    }
    if (t.crl_file !== undefined) {
      if (!requested) throw located(at('crl_file'), 'only means something when client certificates are asked for (request_client_certificate or require_client_certificate)');
      options.crl = readCrl(resolve(t.crl_file), at('crl_file'), located);
    }
    if (t.psk_hint !== undefined && t.psk_file === undefined) throw located(at('psk_hint'), 'only means something with psk_file');
    if (t.psk_file !== undefined) {
      if (t.require_client_certificate === true) {
        throw located(at('psk_file'), 'cannot be combined with require_client_certificate: a client that proves a pre-shared key presents no certificate');
      }
      const pskFile = resolve(t.psk_file);
      try {
        options.psk = new PskKeys(parsePskFile(readAt(located, at('psk_file'), pskFile).toString('utf8'), pskFile));
      } catch (err) {
        if (err instanceof PskFileError) throw located(at('psk_file'), err.message);
        throw err;
      }
      if (t.psk_hint !== undefined) options.pskIdentityHint = t.psk_hint;
    }
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
    if (pair !== undefined) {
      try {
        createSecureContext({ cert: options.cert, key: options.key!, ...(ca !== undefined && { ca }), ...(options.passphrase !== undefined && { passphrase: options.passphrase }) });
      } catch (err) {
        throw located(['listeners', String(index), 'tls'], `${pair.certFile} and ${pair.keyFile} cannot be used for TLS: ${opensslWords(err)}`);
      }
    }
    if (t.request_client_certificate !== undefined) options.requestClientCertificate = t.request_client_certificate;
    if (t.require_client_certificate !== undefined) options.requireClientCertificate = t.require_client_certificate;
    options.sourceFiles = files;
    byListener.set(index, options);
  });
  return byListener;
}

/** The server's certificate and key (and the passphrase of an encrypted key) into `options`; returns their files. */
export function readCertificatePair(
  certName: string, keyName: string, passphraseName: string | undefined, resolve: (name: string) => string,
  at: (key: string) => string[], located: Locate, options: TlsListenerOptions,
): { certFile: string; keyFile: string } {
  const certFile = resolve(certName);
  const keyFile = resolve(keyName);
  const cert = readAt(located, at('cert_file'), certFile);
  const key = readAt(located, at('key_file'), keyFile);
  const certPem = cert.toString('latin1');
  const keyPem = key.toString('latin1');
  const chain = certificates(certPem);
  if (!chain?.length) {
    const swapped = PEM_PRIVATE_KEY.test(certPem) && (certificates(keyPem)?.length ?? 0) > 0;
    throw located(at('cert_file'), `${notACertificate(certFile, certPem, 'a certificate')}${swapped ? ': are cert_file and key_file swapped?' : ''}`);
  }
  let privateKey: KeyObject;
  // The passphrase of an encrypted key is kept in a file of its own (readable by the broker only), never in the YAML.
  const passphraseFile = passphraseName !== undefined ? resolve(passphraseName) : undefined;
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
  options.cert = cert;
  options.key = key;
  if (passphrase !== undefined) options.passphrase = passphrase;
  return { certFile, keyFile };
}

const PEM_CRL = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/g;

/**
 * A PEM file of certificate revocation lists: each one parses, and none is past its next update. One PEM block
 * each, as node:tls reads a single CRL from each string it is given.
 */
function readCrl(file: string, at: string[], located: Locate): string[] {
  const crl = readAt(located, at, file);
  const pem = crl.toString('latin1');
  const blocks = [...pem.matchAll(PEM_CRL)];
  if (blocks.length === 0) {
    const what = certificates(pem)?.length ? 'a certificate' : PEM_PRIVATE_KEY.test(pem) ? 'a private key' : 'something else';
    throw located(at, `${file} holds ${what}, not a certificate revocation list (PEM, "BEGIN X509 CRL"; openssl ca -gencrl makes one)`);
  }
  const lists = blocks.map(([block]) => block);
  try {
    createSecureContext({ crl: lists });
  } catch (err) {
    throw located(at, `${file} holds a revocation list that does not parse (damaged PEM): ${opensslWords(err)}`);
  }
  for (const [, body] of blocks) {
    let nextUpdate: Date | undefined;
    try {
      nextUpdate = crlNextUpdate(Buffer.from(body!.replace(/\s+/g, ''), 'base64'));
    } catch {
      nextUpdate = undefined; // OpenSSL read it: its dates are OpenSSL's to judge at the handshake
    }
    if (nextUpdate !== undefined && nextUpdate.getTime() <= Date.now()) {
      throw located(at, `a revocation list in ${file} expired on ${nextUpdate.toISOString()} (its next update): every certificate it covers would be refused; issue a new one (openssl ca -gencrl)`);
    }
  }
  return lists;
}

/**
 * The nextUpdate of a DER CertificateList (RFC 5280 section 5.1): tbsCertList is a SEQUENCE of an optional
 * version, the signature algorithm, the issuer, thisUpdate and an optional nextUpdate. Undefined when it has none.
 */
function crlNextUpdate(der: Buffer): Date | undefined {
  /** The element at `offset`: its tag, where its contents start and where it ends. */
  const element = (offset: number): { tag: number; start: number; end: number } => {
    const tag = der[offset]!;
    let length = der[offset + 1]!;
    let start = offset + 2;
    if (length & 0x80) {
      const bytes = length & 0x7f;
      length = 0;
      for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
      start += bytes;
    }
    return { tag, start, end: start + length };
  };
  const tbs = element(element(0).start);
  let offset = tbs.start;
  if (der[offset] === 0x02) offset = element(offset).end; // version
  offset = element(offset).end; // signature
  offset = element(offset).end; // issuer
  offset = element(offset).end; // thisUpdate
  const next = element(offset);
  if (next.tag !== 0x17 && next.tag !== 0x18) return undefined;
  const text = der.toString('latin1', next.start, next.end);
  // UTCTime YYMMDDHHMMSSZ (years 1950–2049), GeneralizedTime YYYYMMDDHHMMSSZ
  const full = next.tag === 0x17 ? `${Number(text.slice(0, 2)) < 50 ? '20' : '19'}${text}` : text;
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(full);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : undefined;
}

/** "error:0A00018F:SSL routines::ee key too small" → "ee key too small" */
export function opensslWords(err: unknown): string {
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
