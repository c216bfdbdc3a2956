import { createHash, createHmac, randomBytes } from 'node:crypto';
import type tls from 'node:tls';
import type { TlsListenerOptions } from '../broker/options.js';

/** How long one set of session ticket keys seals tickets; a ticket older than its keys means a full handshake. */
export const TICKET_KEY_ROTATION_MS = 60 * 60 * 1000;

/**
 * Keys for TLS session tickets (48 random bytes: name, HMAC and AES keys), replaced every `intervalMs`: a
 * recorded session stays open to a stolen key for that long at most (forward secrecy of resumed sessions), and
 * every process that is given the same keys resumes the others' sessions (multi-core workers).
 */
export class TicketKeyRotation {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly apply: (keys: Buffer) => void, private readonly intervalMs = TICKET_KEY_ROTATION_MS) {}

  /** Applies a first set at once, then a new one every interval. */
  start(): void {
    this.rotate();
    this.timer = setInterval(() => this.rotate(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  rotate(): void {
    this.apply(randomBytes(48));
  }
}

/**
 * A TLS server's ticket keys: the shared ones (`set`), bound to the server's credentials. New credentials (a CA or
 * a CRL among them) give new keys, so a ticket sealed before the change does not resume past a check the new
 * credentials would fail; every worker that loads the same credentials derives the same keys.
 */
export class ServerTicketKeys {
  private shared: Buffer | undefined;
  private bound: Buffer;

  constructor(private readonly server: tls.Server, options: TlsListenerOptions) {
    this.bound = credentialDigest(options);
  }

  set(keys: Buffer): void {
    this.shared = keys;
    this.apply();
  }

  /** After `setSecureContext`, which gives the server keys of its own. */
  credentialsChanged(options: TlsListenerOptions): void {
    this.bound = credentialDigest(options);
    this.apply();
  }

  private apply(): void {
    if (this.shared) this.server.setTicketKeys(createHmac('sha384', this.shared).update(this.bound).digest());
  }
}

function credentialDigest(o: TlsListenerOptions): Buffer {
  const hash = createHash('sha256');
  for (const part of [o.cert, o.key, o.ca, o.crl]) {
    for (const item of Array.isArray(part) ? part : [part]) hash.update(item === undefined ? '-' : item).update('\0');
  }
  return hash.digest();
}
