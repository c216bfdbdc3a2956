import type tls from 'node:tls';
import type { TlsListenerOptions } from '../broker/options.js';

/**
 * TLS 1.2 session resumption by session id (RFC 5246 section 7.3): Node keeps no session cache of its own (it turns
 * OpenSSL's internal one off), so a server resumes session ids only if something answers its `newSession` and
 * `resumeSession` events. This is that something, bounded: at most `maxEntries` sessions, each for the server's
 * session timeout. Session tickets (TLS 1.2 and 1.3) need none of it.
 */

const TLS1_3_VERSION = 0x0304;

/** How long OpenSSL lets a TLS session be resumed when the server sets no `sessionTimeout`, in seconds. */
const OPENSSL_SESSION_TIMEOUT = 7200;
/** Sessions kept by default: about 0.3 KiB each, 1 KiB and more with a client certificate in them. */
const DEFAULT_MAX_ENTRIES = 10_000;

export interface SessionCacheOptions {
  /** Most sessions kept; past it the oldest goes. */
  maxEntries?: number;
  /** How long a session can be resumed, in seconds (default: the server's `sessionTimeout`, else OpenSSL's 7200). */
  ttlSeconds?: number;
  /** Milliseconds now (tests). */
  now?: () => number;
}

export class TlsSessionCache {
  /** By session id (hex), oldest first: a Map iterates in insertion order. */
  private readonly sessions = new Map<string, { data: Buffer; expires: number }>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  hits = 0;
  misses = 0;

  constructor(private readonly ttlMs: number, options: Pick<SessionCacheOptions, 'maxEntries' | 'now'> = {}) {
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  set(id: Buffer, data: Buffer): void {
    const key = id.toString('hex');
    this.sessions.delete(key); // a renewed session goes to the end
    this.sessions.set(key, { data, expires: this.now() + this.ttlMs });
    // Expired ones first (they are oldest), then the oldest live ones, until it fits.
    for (const [oldest, entry] of this.sessions) {
      if (this.sessions.size <= this.maxEntries && entry.expires > this.now()) break;
      this.sessions.delete(oldest);
    }
  }

  get(id: Buffer): Buffer | undefined {
    const key = id.toString('hex');
    const entry = this.sessions.get(key);
    if (entry !== undefined && entry.expires <= this.now()) this.sessions.delete(key);
    const data = entry !== undefined && entry.expires > this.now() ? entry.data : undefined;
    if (data === undefined) this.misses++;
    else this.hits++;
    return data;
  }

  /**
   * Forgets every session: done when the server's credentials change (attachSessionCache), as a resumed session
   * skips certificate verification and a revoked client certificate must not come back through one.
   */
  clear(): void {
    this.sessions.clear();
  }
}

/**
 * Gives a TLS server (a TLS listener's, or a wss listener's HTTPS server) a session cache, so TLS 1.2 clients that
 * offer a session id resume it; `setSecureContext` (new credentials) then also empties it. Not for a listener with
 * PSK keys (undefined is returned): its connections prove their key every time (see tls-psk.ts).
 */
export function attachSessionCache(server: tls.Server, options: TlsListenerOptions, cacheOptions: SessionCacheOptions = {}): TlsSessionCache | undefined {
  if (options.psk !== undefined) return undefined;
  const timeout = cacheOptions.ttlSeconds ?? (server as tls.Server & { sessionTimeout?: number }).sessionTimeout ?? OPENSSL_SESSION_TIMEOUT;
  const cache = new TlsSessionCache(timeout * 1000, cacheOptions);
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    // TLS 1.3 sessions resume by their ticket, which carries them (OpenSSL reports them all the same).
    if (sessionVersion(data) !== TLS1_3_VERSION) cache.set(id, data);
    done(); // the handshake waits for it
  });
  server.on('resumeSession', (id: Buffer, done: (err: Error | null, data?: Buffer | null) => void) => {
    done(null, cache.get(id) ?? null);
  });
  // New credentials (a CA or a CRL among them) make every cached session suspect, as resuming skips verification.
  const setSecureContext = server.setSecureContext.bind(server);
  server.setSecureContext = (context: tls.SecureContextOptions): void => {
    setSecureContext(context);
    cache.clear();
  };
  return cache;
}

/**
 * The protocol version of a session as OpenSSL serialises it (SSL_SESSION_ASN1: a SEQUENCE whose first two
 * INTEGERs are the format version and the protocol version, 0x0303 for TLS 1.2); undefined if it does not read so.
 */
export function sessionVersion(der: Buffer): number | undefined {
  if (der[0] !== 0x30) return undefined;
  let offset = 2;
  const length = der[1] ?? 0;
  if (length & 0x80) offset += length & 0x7f;
  const integer = (): number | undefined => {
    if (der[offset] !== 0x02) return undefined;
    const size = der[offset + 1] ?? 0;
    if (size < 1 || size > 4 || offset + 2 + size > der.length) return undefined;
    const value = der.readUIntBE(offset + 2, size);
    offset += 2 + size;
    return value;
  };
  if (integer() === undefined) return undefined;
  return integer();
}
