import { createHash, constants } from 'node:crypto';
import tls from 'node:tls';

/**
 * TLS-PSK: clients that hold a pre-shared key instead of a certificate (RFC 4279 for TLS 1.2, external PSKs of
 * RFC 8446 for TLS 1.3). Keys come from a Mosquitto `psk_file`; a client that proves the key of an identity is
 * that identity (`PeerInfo.pskIdentity`), as with Mosquitto's `use_identity_as_username`.
 *
 * Node hands the server side to OpenSSL's TLS 1.2 PSK callback, which OpenSSL also consults for TLS 1.3 external
 * PSKs, with SHA-256 as their hash: so both versions work as long as a SHA-256 TLS 1.3 suite is chosen, which the
 * cipher order below makes sure of (OpenSSL would otherwise pick TLS_AES_256_GCM_SHA384 first and ignore the PSK).
 */

/** A line of a PSK file is `identity:hexkey`; OpenSSL takes identities of up to 128 bytes in every version. */
const MAX_IDENTITY_BYTES = 128;
/** The longest key OpenSSL's PSK callbacks accept (PSK_MAX_PSK_LEN in OpenSSL 1.1.1). */
const MAX_KEY_BYTES = 256;

/**
 * TLS 1.2 PSK suites, forward-secret and AEAD first. Node's default list excludes every PSK suite (`!PSK`), so a
 * listener with keys needs these; OpenSSL has no ECDHE-PSK suite with GCM.
 */
export const PSK_CIPHERS = [
  'ECDHE-PSK-CHACHA20-POLY1305',
  'PSK-AES256-GCM-SHA384', 'PSK-AES128-GCM-SHA256', 'PSK-CHACHA20-POLY1305',
  'ECDHE-PSK-AES256-CBC-SHA384', 'ECDHE-PSK-AES128-CBC-SHA256',
].join(':');

/** TLS 1.3 suites with SHA-256 first: the hash a TLS 1.3 external PSK is used with. */
const TLS13_SHA256_FIRST = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384';

/** The cipher list of a listener with PSK keys and no `ciphers` of its own: PSK suites first, then Node's defaults. */
export function pskCipherList(): string {
  const rest = tls.DEFAULT_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_') && c !== '!PSK');
  return [TLS13_SHA256_FIRST, PSK_CIPHERS, ...rest].join(':');
}

export class PskFileError extends Error {
  override readonly name = 'PskFileError';
  constructor(readonly file: string, readonly line: number, readonly problem: string) {
    super(`${file}:${line}: ${problem}`);
  }
}

/**
 * Mosquitto's PSK file: one `identity:key` per line, the key in hexadecimal (no leading 0x); `#` starts a comment
 * line, blank lines are skipped. Throws PskFileError naming file and line.
 */
export function parsePskFile(text: string, file: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (problem: string): never => {
      throw new PskFileError(file, index + 1, problem);
    };
    const colon = line.indexOf(':');
    if (colon <= 0) fail('expected "identity:hexkey"');
    const identity = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (Buffer.byteLength(identity) > MAX_IDENTITY_BYTES) fail(`the identity is longer than ${MAX_IDENTITY_BYTES} bytes`);
    if (keys.has(identity)) fail(`identity "${identity}" appears twice`);
    if (hex === '') fail(`identity "${identity}" has no key`);
    if (/^0x/i.test(hex)) fail(`the key of "${identity}" starts with 0x: write the hexadecimal digits only`);
    if (!/^[0-9a-f]+$/i.test(hex)) fail(`the key of "${identity}" is not hexadecimal`);
    if (hex.length % 2 !== 0) fail(`the key of "${identity}" has an odd number of hexadecimal digits`);
    if (hex.length / 2 > MAX_KEY_BYTES) fail(`the key of "${identity}" is longer than ${MAX_KEY_BYTES} bytes`);
    keys.set(identity, Buffer.from(hex, 'hex'));
  });
  return keys;
}

/**
 * The keys of a listener, by identity. The server's PSK callback is fixed when the server is made, so a reload
 * replaces the contents of this object rather than the object. Serialises to a digest (a reload compares
 * configurations as JSON), never to the keys.
 */
export class PskKeys {
  private keys: ReadonlyMap<string, Buffer>;

  constructor(keys: ReadonlyMap<string, Buffer>) {
    this.keys = keys;
  }

  get(identity: string): Buffer | undefined {
    return this.keys.get(identity);
  }

  get size(): number {
    return this.keys.size;
  }

  /** Takes the keys of `next`: handshakes from now on use them. */
  replace(next: PskKeys): void {
    this.keys = next.keys;
  }

  toJSON(): string {
    const digest = createHash('sha256');
    for (const [identity, key] of [...this.keys].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      digest.update(`${identity.length}:${identity}:${key.toString('hex')}\n`);
    }
    return `psk:${digest.digest('base64url')}`;
  }
}

/** The identity whose key the last PSK lookup of a socket found; set during the handshake. */
const lookedUp = new WeakMap<tls.TLSSocket, string>();

/** The server options of a listener with PSK keys: the lookup, the identity hint (TLS 1.2 only). */
export function pskServerOptions(keys: Pick<ReadonlyMap<string, Buffer>, 'get'>, hint: string | undefined): Pick<tls.TlsOptions, 'pskCallback' | 'pskIdentityHint'> {
  return {
    pskCallback(socket: tls.TLSSocket, identity: string): Buffer | null {
      const key = keys.get(identity);
      // A later lookup in the same handshake (a second ClientHello) decides; one that failed clears the first.
      if (key === undefined) lookedUp.delete(socket);
      else lookedUp.set(socket, identity);
      return key ?? null;
    },
    ...(hint !== undefined && { pskIdentityHint: hint }),
  };
}

/**
 * What a listener with PSK keys adds to its secure context: no session tickets. A resumed session skips the PSK
 * lookup and OpenSSL keeps no identity for a TLS 1.3 one, so every connection proves its key afresh (a PSK
 * handshake costs no public-key operation to speak of anyway). Such a listener gets no session cache either.
 */
export const PSK_SECURE_OPTIONS = constants.SSL_OP_NO_TICKET;

/**
 * The identity a client proved with its handshake; undefined without one. A lookup alone proves nothing: in TLS 1.3
 * OpenSSL drops a PSK whose hash does not match the chosen suite and goes on with a certificate handshake, so the
 * PSK counts only if the session was established with it (TLS 1.3 reports that as a resumed session; TLS 1.2 by
 * a PSK cipher suite).
 */
export function provenPskIdentity(socket: tls.TLSSocket): string | undefined {
  const identity = lookedUp.get(socket);
  if (identity === undefined) return undefined;
  const proven = socket.getProtocol() === 'TLSv1.3' ? socket.isSessionReused() : !socket.isSessionReused() && /PSK/.test(socket.getCipher().name);
  return proven ? identity : undefined;
}
