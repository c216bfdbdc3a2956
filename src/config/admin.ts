import { createHash } from 'node:crypto';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { TlsListenerOptions } from '../broker/options.js';
import { DEFAULT_ADMIN_PORT, DEFAULT_ADMIN_ROLE, MIN_TOKEN_LENGTH, type AdminOptions, type AdminTls, type AdminToken } from '../admin/options.js';
import { opensslWords, readAt, readCertificatePair, type Locate } from './file-checks.js';
import type { FileConfig } from './schema.js';

/**
 * The `admin:` section as the admin listener uses it: token files read and hashed, the TLS pair read and checked,
 * everything located on its line when it is wrong. Undefined when there is no section (the listener is off).
 */
export function readAdmin(config: FileConfig, base: string, located: Locate): AdminOptions | undefined {
  const admin = config.admin;
  if (!admin) return undefined;
  const names = new Set<string>();
  const tokens = (admin.tokens ?? []).map((t, i): AdminToken => {
    const at = (key: string): string[] => ['admin', 'tokens', String(i), key];
    if (names.has(t.name)) throw located(at('name'), `another token is named "${t.name}" too: each token needs its own name (the audit trail names it)`);
    names.add(t.name);
    if ((t.token_file === undefined) === (t.token_sha256 === undefined)) {
      throw located(t.token_file !== undefined ? at('token_sha256') : ['admin', 'tokens', String(i)], 'needs exactly one of token_file or token_sha256');
    }
    let sha256: Buffer;
    if (t.token_sha256 !== undefined) sha256 = Buffer.from(t.token_sha256, 'hex');
    else {
      const file = path.resolve(base, t.token_file!);
      const token = readAt(located, at('token_file'), file).toString('utf8').split(/\r?\n/)[0]!.trim();
      if (token.length < MIN_TOKEN_LENGTH) {
        throw located(at('token_file'), `the token in ${file} is ${token.length} characters long; a token needs at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32 > ${path.basename(file)})`);
      }
      sha256 = createHash('sha256').update(token).digest();
    }
    const token: AdminToken = { name: t.name, sha256, scopes: t.scopes };
    if (t.expires !== undefined) {
      // A date alone is midnight UTC; a date and time says its zone (Z or an offset).
      const at = /^\d{4}-\d{2}-\d{2}$/.test(t.expires) ? Date.parse(`${t.expires}T00:00:00Z`)
        : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(t.expires) ? Date.parse(t.expires) : NaN;
      if (Number.isNaN(at)) throw located(['admin', 'tokens', String(i), 'expires'], `"${t.expires}" is not a date (2027-01-31) or a date and time with its zone (2027-01-31T18:00:00Z)`);
      token.expiresAt = at;
    }
    return token;
  });
  const options: AdminOptions = {
    host: admin.host ?? '127.0.0.1',
    port: admin.port ?? DEFAULT_ADMIN_PORT,
    metricsAuth: admin.metrics_auth ?? true,
    // One role makes an administrator, for this API and for dynamic security alike (load.ts refuses two).
    adminRole: admin.admin_role ?? config.authorization?.dynamic_security?.admin_role ?? DEFAULT_ADMIN_ROLE,
    tokens,
  };
  if (admin.tls) options.tls = readAdminTls(admin.tls, base, located);
  return options;
}

function readAdminTls(t: NonNullable<NonNullable<FileConfig['admin']>['tls']>, base: string, located: Locate): AdminTls {
  const at = (key: string): string[] => ['admin', 'tls', key];
  const pair: TlsListenerOptions = {};
  const { certFile, keyFile } = readCertificatePair(t.cert_file, t.key_file, t.key_passphrase_file, (name) => path.resolve(base, name), at, located, pair);
  const tls: AdminTls = { cert: pair.cert as Buffer, key: pair.key as Buffer };
  if (pair.passphrase !== undefined) tls.passphrase = pair.passphrase;
  if (t.min_version !== undefined) tls.minVersion = t.min_version;
  if (t.ciphers !== undefined) {
    try {
      createSecureContext({ ciphers: t.ciphers });
    } catch (err) {
      throw located(at('ciphers'), `"${t.ciphers}" is not a cipher list OpenSSL accepts: ${opensslWords(err)}`);
    }
    tls.ciphers = t.ciphers;
  }
  try {
    createSecureContext({ cert: tls.cert, key: tls.key, ...(tls.passphrase !== undefined && { passphrase: tls.passphrase }) });
  } catch (err) {
    throw located(['admin', 'tls'], `${certFile} and ${keyFile} cannot be used for TLS: ${opensslWords(err)}`);
  }
  return tls;
}
