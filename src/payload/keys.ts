import { createHash } from 'node:crypto';
import { KEY_LENGTH } from './envelope.js';

/**
 * The payload key file, shaped like Mosquitto's PSK file with an optional key id: one key per line,
 *
 * ```
 * identity:keyid:hexkey
 * identity:hexkey          (key id 0)
 * ```
 * `#` starts a comment line; blank lines are skipped. An identity holds up to 256 keys (ids 0-255) so a device can
 * move to a new key while envelopes sealed with the old one are still in flight.
 */

export class PayloadKeyFileError extends Error {
  override readonly name = 'PayloadKeyFileError';
  constructor(readonly file: string, readonly line: number, readonly problem: string) {
    super(`${file}:${line}: ${problem}`);
  }
}

const MAX_KEY_ID = 255;
const KEY_HEX_DIGITS = KEY_LENGTH * 2;
const KEY_LIKE = /^\s*(0x)?[0-9a-f]{32,}\s*$/i;

/** The keys of every identity, by key id. Serialises to a digest, never to the keys. */
export class PayloadKeys {
  constructor(private readonly byIdentity: ReadonlyMap<string, ReadonlyMap<number, Buffer>>) {}

  get(identity: string, keyId: number): Buffer | undefined {
    return this.byIdentity.get(identity)?.get(keyId);
  }

  has(identity: string): boolean {
    return this.byIdentity.has(identity);
  }

  /** The identity's highest key id: the newest, during a rotation (what the broker seals deliveries with). */
  newestKeyId(identity: string): number | undefined {
    const keys = this.byIdentity.get(identity);
    if (!keys || keys.size === 0) return undefined;
    let newest = -1;
    for (const id of keys.keys()) if (id > newest) newest = id;
    return newest;
  }

  /** How many identities hold keys. */
  get size(): number {
    return this.byIdentity.size;
  }

  identities(): IterableIterator<string> {
    return this.byIdentity.keys();
  }

  /** A digest of the contents: equal files give equal strings (a reload can compare configurations as JSON). */
  toJSON(): string {
    const digest = createHash('sha256');
    const identities = [...this.byIdentity.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const identity of identities) {
      const keys = [...this.byIdentity.get(identity)!].sort(([a], [b]) => a - b);
      for (const [keyId, key] of keys) digest.update(`${identity.length}:${identity}:${keyId}:${key.toString('hex')}\n`);
    }
    return `payload-keys:${digest.digest('base64url')}`;
  }
}

/**
 * Reads a payload key file. Throws PayloadKeyFileError naming the file, the line and the problem; the message never
 * contains a key.
 */
export function parsePayloadKeys(text: string, file: string): PayloadKeys {
  const byIdentity = new Map<string, Map<number, Buffer>>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (problem: string): never => {
      throw new PayloadKeyFileError(file, index + 1, problem);
    };
    const fields = line.split(':');
    if (fields.length < 2 || fields.length > 3) {
      const why = fields.length > 3 ? ' (an identity may not contain ":")' : '';
      fail(`expected "identity:keyid:hexkey" or "identity:hexkey", found ${fields.length - 1} colons${why}`);
    }
    const identity = fields[0]!;
    const keyIdText = fields.length === 3 ? fields[1]! : '0';
    const hex = fields.at(-1)!;
    if (identity === '') fail('the identity is empty');
    // Fields written in the wrong order would put a key where an identity belongs: such an identity is not quoted.
    const named = KEY_LIKE.test(identity) ? "this line's identity" : `"${identity}"`;
    if (identity.trim() !== identity) fail('the identity has spaces around it');

    // The key id is not quoted either: a misplaced key may stand there.
    if (!/^\d{1,3}$/.test(keyIdText) || Number(keyIdText) > MAX_KEY_ID) fail(`the key id of ${named} is not a whole number from 0 to ${MAX_KEY_ID}`);
    const keyId = Number(keyIdText);
    const which = `the key of ${named} (key id ${keyId})`;
    if (hex === '') fail(`${which} is missing`);
    if (/^0x/i.test(hex)) fail(`${which} starts with 0x: write the hexadecimal digits only`);
    if (!/^[0-9a-f]+$/i.test(hex)) fail(`${which} is not hexadecimal`);
    if (hex.length !== KEY_HEX_DIGITS) {
      fail(`${which} has ${hex.length} hexadecimal digits; it must have exactly ${KEY_HEX_DIGITS} (${KEY_LENGTH} bytes)`);
    }

    let keys = byIdentity.get(identity);
    if (keys === undefined) byIdentity.set(identity, (keys = new Map()));
    if (keys.has(keyId)) fail(`${named} has key id ${keyId} twice`);
    keys.set(keyId, Buffer.from(hex, 'hex'));
  });
  return new PayloadKeys(byIdentity);
}
