import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Encryption at rest for stored messages (docs/payload-encryption.md, "At rest"). A sealed value is
 *
 * ```
 * 0xE5 | key id (1) | nonce (12) | ciphertext | tag (16)
 * ```
 * AES-256-GCM with a random nonce per record: a store writes far fewer than 2^32 records under one key (NIST's
 * bound for random GCM nonces), and rotating the key starts the count again. The additional authenticated data is
 * the two header bytes, the part (payload or properties) and the topic, so a sealed value cannot be moved to a
 * record of another topic, nor a record's properties into its payload.
 *
 * The key file holds `keyid:hexkey` lines (key id 0-255, 64 hex digits); the key on the last line seals new records.
 */

export const SEALED_FORMAT = 0xe5;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const HEADER_LENGTH = 2;
export const SEALED_OVERHEAD = HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH;
const KEY_LENGTH = 32;
const MAX_KEY_ID = 255;

/** What a sealed value holds: bound into the authenticated data so the two cannot be swapped. */
export type SealedPart = 'payload' | 'properties';
const PART_BYTE: Record<SealedPart, number> = { payload: 0x50, properties: 0x51 };

/** A sealed value that does not open (wrong key, tampered, another topic), or one under a key id nobody holds. */
export class AtRestError extends Error {
  override readonly name = 'AtRestError';
}

/** A mistake in the key file: the file, the line and the problem; never the key. */
export class AtRestKeyFileError extends Error {
  override readonly name = 'AtRestKeyFileError';
  constructor(readonly file: string, readonly line: number | undefined, readonly problem: string) {
    super(line === undefined ? `${file}: ${problem}` : `${file}:${line}: ${problem}`);
  }
}

/** The keys of a key file by id, and the one that seals new records. Serialises to a digest, never to the keys. */
export class AtRestKeys {
  constructor(readonly file: string, readonly byId: ReadonlyMap<number, Buffer>, readonly currentId: number) {}

  toJSON(): string {
    const digest = createHash('sha256');
    for (const [id, key] of [...this.byId].sort(([a], [b]) => a - b)) digest.update(`${id}:${key.toString('hex')}\n`);
    return `at-rest-keys:${this.currentId}:${digest.digest('base64url')}`;
  }
}

export function parseAtRestKeys(text: string, file: string): AtRestKeys {
  const byId = new Map<number, Buffer>();
  let currentId: number | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (problem: string): never => {
      throw new AtRestKeyFileError(file, index + 1, problem);
    };
    const fields = line.split(':');
    if (fields.length !== 2) fail(`expected "keyid:hexkey", found ${fields.length - 1} colons`);
    const [idText, hex] = fields as [string, string];
    if (!/^\d{1,3}$/.test(idText.trim()) || Number(idText) > MAX_KEY_ID) fail('the key id must be a whole number from 0 to 255');
    const id = Number(idText);
    if (byId.has(id)) fail(`key id ${id} appears twice`);
    const digits = hex.trim();
    if (!/^[0-9a-f]*$/i.test(digits)) fail(`the key of key id ${id} is not hexadecimal`);
    if (digits.length !== KEY_LENGTH * 2) fail(`the key of key id ${id} has ${digits.length} hexadecimal digits; it must have exactly 64 (32 bytes)`);
    byId.set(id, Buffer.from(digits, 'hex'));
    currentId = id;
  });
  if (currentId === undefined) throw new AtRestKeyFileError(file, undefined, 'holds no key (one "keyid:hexkey" line at least; the last one seals new records)');
  return new AtRestKeys(file, byId, currentId);
}

export function readAtRestKeys(file: string): AtRestKeys {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AtRestKeyFileError(file, undefined, `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseAtRestKeys(text, file);
}

/**
 * Seals and opens stored values. Its keys can be replaced while the broker runs (SIGHUP): new records use the new
 * current key at once; keys no longer in the file stay readable in memory until the restart, so records not yet
 * re-encrypted still open.
 */
export class AtRestCipher {
  private readable = new Map<number, Buffer>();
  private current!: { id: number; key: Buffer };
  private file = '';
  /** The digest of the keys last given: the same file again changes nothing. */
  private inForce = '';

  constructor(keys: AtRestKeys) {
    this.use(keys);
  }

  /** Whether these keys differ from the ones in force. */
  differs(keys: AtRestKeys): boolean {
    return JSON.stringify(keys) !== this.inForce;
  }

  get currentKeyId(): number {
    return this.current.id;
  }

  /**
   * Takes a key file's keys; returns the key ids kept only in memory because the file no longer holds them. A key
   * id names one key for good: a file giving an id in force another key is refused (AtRestError), since records
   * sealed under the old one would no longer open and the pass would skip them.
   */
  use(keys: AtRestKeys): number[] {
    for (const [id, key] of keys.byId) {
      const known = this.readable.get(id);
      if (known && !known.equals(key)) throw new AtRestError(`${keys.file}: key id ${id} holds another key than the one in force; a new key needs a new key id`);
    }
    const kept = [...this.readable.keys()].filter((id) => !keys.byId.has(id));
    const readable = new Map(keys.byId);
    for (const id of kept) readable.set(id, this.readable.get(id)!);
    this.readable = readable;
    this.current = { id: keys.currentId, key: keys.byId.get(keys.currentId)! };
    this.file = keys.file;
    this.inForce = JSON.stringify(keys);
    return kept;
  }

  seal(part: SealedPart, topic: string, plain: Buffer): Buffer {
    const sealed = Buffer.allocUnsafe(SEALED_OVERHEAD + plain.length);
    sealed[0] = SEALED_FORMAT;
    sealed[1] = this.current.id;
    const nonce = this.nextNonce();
    nonce.copy(sealed, HEADER_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, nonce, { authTagLength: TAG_LENGTH });
    cipher.setAAD(additionalData(sealed, part, topic));
    const body = cipher.update(plain);
    body.copy(sealed, HEADER_LENGTH + NONCE_LENGTH);
    cipher.final();
    cipher.getAuthTag().copy(sealed, sealed.length - TAG_LENGTH);
    return sealed;
  }

  /** Random nonces drawn in bulk: one randomBytes call costs about as much as the encryption of a record. */
  private nonces = Buffer.alloc(0);
  private noncesUsed = 0;

  private nextNonce(): Buffer {
    if (this.noncesUsed === this.nonces.length) {
      this.nonces = randomBytes(NONCE_LENGTH * 1024);
      this.noncesUsed = 0;
    }
    this.noncesUsed += NONCE_LENGTH;
    return this.nonces.subarray(this.noncesUsed - NONCE_LENGTH, this.noncesUsed);
  }

  open(part: SealedPart, topic: string, sealed: Buffer): Buffer {
    if (sealed.length < SEALED_OVERHEAD || sealed[0] !== SEALED_FORMAT) throw new AtRestError('a stored record is marked encrypted but is not a sealed value (corrupted)');
    const keyId = sealed[1]!;
    const key = this.readable.get(keyId);
    if (!key) throw new AtRestError(`a stored record is encrypted with key id ${keyId}, which is not in ${this.file}; add that key back (records are never dropped)`);
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH), { authTagLength: TAG_LENGTH });
    decipher.setAAD(additionalData(sealed, part, topic));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH));
    const plain = decipher.update(sealed.subarray(HEADER_LENGTH + NONCE_LENGTH, sealed.length - TAG_LENGTH));
    try {
      decipher.final();
    } catch {
      throw new AtRestError(`a stored record (key id ${keyId}) does not authenticate: changed on disk, or written under another key or topic`);
    }
    return plain;
  }

  /** The key id a sealed value was written with. */
  static keyIdOf(sealed: Buffer): number {
    return sealed[1]!;
  }
}

function additionalData(sealed: Buffer, part: SealedPart, topic: string): Buffer {
  const topicLength = Buffer.byteLength(topic);
  const aad = Buffer.allocUnsafe(HEADER_LENGTH + 1 + topicLength);
  aad[0] = sealed[0]!;
  aad[1] = sealed[1]!;
  aad[2] = PART_BYTE[part];
  aad.write(topic, HEADER_LENGTH + 1, 'utf8');
  return aad;
}
