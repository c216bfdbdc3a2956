import { createCipheriv, createDecipheriv, createHmac, randomFillSync } from 'node:crypto';

/**
 * The payload envelope, version 1: a message payload encrypted for the broker by a device too small for TLS
 * ("client-to-broker" protection). No I/O here; docs/payload-encryption.md describes the format byte by byte.
 *
 * ```
 * offset size field
 * 0      1    version = 0x01
 * 1      1    algorithm: 0x01 AES-256-GCM, 0x02 ChaCha20-Poly1305
 * 2      1    key id (0-255)
 * 3      8    counter, unsigned 64-bit big-endian, >= 1
 * 11     12   nonce
 * 23     n    ciphertext
 * 23+n   16   authentication tag
 * ```
 * The additional authenticated data is the 23 header bytes followed by the UTF-8 topic name, so an envelope opens
 * only on the topic it was sealed for.
 */

export const ENVELOPE_VERSION = 0x01;

/** The algorithm byte. Both take 32-byte keys and 12-byte nonces and produce 16-byte tags. */
export const ALGORITHMS = {
  aes256gcm: 0x01,
  chacha20poly1305: 0x02,
} as const;

export type Algorithm = (typeof ALGORITHMS)[keyof typeof ALGORITHMS];

export const HEADER_LENGTH = 23;
export const TAG_LENGTH = 16;
export const KEY_LENGTH = 32;
export const NONCE_LENGTH = 12;
export const MIN_ENVELOPE_LENGTH = HEADER_LENGTH + TAG_LENGTH;
export const MAX_COUNTER = 2n ** 64n - 1n;

const VERSION_OFFSET = 0;
const ALGORITHM_OFFSET = 1;
const KEY_ID_OFFSET = 2;
const COUNTER_OFFSET = 3;
const NONCE_OFFSET = 11;

const ALGORITHM_NAMES: Readonly<Record<Algorithm, string>> = {
  [ALGORITHMS.aes256gcm]: 'AES-256-GCM',
  [ALGORITHMS.chacha20poly1305]: 'ChaCha20-Poly1305',
};

export function algorithmName(algorithm: Algorithm): string {
  return ALGORITHM_NAMES[algorithm];
}

const AEAD_OPTIONS = { authTagLength: TAG_LENGTH } as const;

function isAlgorithm(value: number): value is Algorithm {
  return value === ALGORITHMS.aes256gcm || value === ALGORITHMS.chacha20poly1305;
}

/** An envelope's parts. The byte arrays are views of the bytes parsed, not copies: they live as long as those. */
export interface ParsedEnvelope {
  readonly version: typeof ENVELOPE_VERSION;
  readonly algorithm: Algorithm;
  readonly keyId: number;
  readonly counter: bigint;
  readonly nonce: Uint8Array;
  /** The 23 header bytes, the first part of the additional authenticated data. */
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

export type EnvelopeProblem = 'too-short' | 'unsupported-version' | 'unknown-algorithm' | 'zero-counter';

/** Why bytes are no envelope, as data: parsing runs per message and must not pay for a thrown Error. */
export interface EnvelopeError {
  readonly problem: EnvelopeProblem;
  /** The problem in words, for logs and audit lines. */
  readonly reason: string;
}

export function isEnvelopeError(result: ParsedEnvelope | EnvelopeError): result is EnvelopeError {
  return 'problem' in result;
}

/** Reads the header and cuts the rest into views; authenticates nothing (that is openEnvelope's job). */
export function parseEnvelope(bytes: Uint8Array): ParsedEnvelope | EnvelopeError {
  if (bytes.length < MIN_ENVELOPE_LENGTH) {
    return {
      problem: 'too-short',
      reason: `the payload is ${bytes.length} bytes, shorter than the smallest envelope (${MIN_ENVELOPE_LENGTH}: a ${HEADER_LENGTH}-byte header and a ${TAG_LENGTH}-byte tag)`,
    };
  }
  const version = bytes[VERSION_OFFSET]!;
  if (version !== ENVELOPE_VERSION) {
    return { problem: 'unsupported-version', reason: `envelope version ${version} is not supported (only version ${ENVELOPE_VERSION} is)` };
  }
  const algorithm = bytes[ALGORITHM_OFFSET]!;
  if (!isAlgorithm(algorithm)) {
    return {
      problem: 'unknown-algorithm',
      reason: `algorithm ${algorithm} is unknown (${ALGORITHMS.aes256gcm} is AES-256-GCM, ${ALGORITHMS.chacha20poly1305} ChaCha20-Poly1305)`,
    };
  }
  const high = readUint32(bytes, COUNTER_OFFSET);
  const low = readUint32(bytes, COUNTER_OFFSET + 4);
  if (high === 0 && low === 0) return { problem: 'zero-counter', reason: 'the counter is 0; counters start at 1' };
  const tagStart = bytes.length - TAG_LENGTH;
  return {
    version: ENVELOPE_VERSION,
    algorithm,
    keyId: bytes[KEY_ID_OFFSET]!,
    counter: (BigInt(high) << 32n) | BigInt(low),
    nonce: bytes.subarray(NONCE_OFFSET, HEADER_LENGTH),
    header: bytes.subarray(0, HEADER_LENGTH),
    ciphertext: bytes.subarray(HEADER_LENGTH, tagStart),
    tag: bytes.subarray(tagStart),
  };
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

/**
 * Header and topic side by side, reused by every call: the broker opens an envelope per encrypted message, and
 * this keeps it to one allocation of its own (the plaintext). Synchronous use only, so sharing is safe.
 */
let aadScratch = Buffer.allocUnsafe(HEADER_LENGTH + 256);

/** The additional authenticated data, as a view of the scratch buffer, valid until the next call. */
function additionalData(header: Uint8Array, topic: string): Buffer {
  // A UTF-16 code unit never takes more than 3 UTF-8 bytes, so this bound lets write() never truncate.
  const bound = HEADER_LENGTH + topic.length * 3;
  if (aadScratch.length < bound) aadScratch = Buffer.allocUnsafe(bound);
  aadScratch.set(header, 0);
  const topicLength = aadScratch.write(topic, HEADER_LENGTH, 'utf8');
  return aadScratch.subarray(0, HEADER_LENGTH + topicLength);
}

/**
 * The plaintext of an envelope published to `topic`, or undefined when it does not authenticate: a wrong key, any
 * byte changed, another topic. Never throws, whatever it is given.
 */
export function openEnvelope(key: Uint8Array, envelope: ParsedEnvelope, topic: string): Buffer | undefined {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH || envelope.nonce.length !== NONCE_LENGTH || envelope.tag.length !== TAG_LENGTH) return undefined;
  try {
    const decipher = envelope.algorithm === ALGORITHMS.chacha20poly1305
      ? createDecipheriv('chacha20-poly1305', key, envelope.nonce, AEAD_OPTIONS)
      : envelope.algorithm === ALGORITHMS.aes256gcm
        ? createDecipheriv('aes-256-gcm', key, envelope.nonce, AEAD_OPTIONS)
        : undefined;
    if (decipher === undefined) return undefined;
    // Node reads plaintextLength only in CCM mode; its types ask for it with ChaCha20-Poly1305 too.
    decipher.setAAD(additionalData(envelope.header, topic), { plaintextLength: envelope.ciphertext.length });
    decipher.setAuthTag(envelope.tag);
    const plaintext = decipher.update(envelope.ciphertext);
    // final() checks the tag; what update() returned is worthless until it has.
    decipher.final();
    return plaintext;
  } catch {
    return undefined;
  }
}

/**
 * The key the broker seals deliveries with (broker to client), derived from the shared key: HMAC-SHA256(key,
 * "moat-payload broker-to-client v1"). Each direction has its own key, so an envelope the broker sealed for a
 * device never opens as one the device sent (it could be published back), and the two sides' nonces never meet.
 */
export function deliveryKey(key: Uint8Array): Buffer {
  return createHmac('sha256', key).update(DELIVERY_KEY_LABEL).digest();
}

const DELIVERY_KEY_LABEL = 'moat-payload broker-to-client v1';

export interface SealOptions {
  /** 32 bytes. */
  key: Uint8Array;
  /** 0-255: which of the identity's keys this is. */
  keyId: number;
  /** 1 to 2^64 - 1, greater than every counter sent before under this key: the broker refuses the rest. */
  counter: bigint | number;
  /** Default AES-256-GCM. */
  algorithm?: Algorithm;
  /**
   * 12 bytes, never used twice with one key. Default: 4 random bytes followed by the counter's 8 bytes, so it
   * stays unique for as long as counters never repeat under the key.
   */
  nonce?: Uint8Array;
  /** The topic the envelope will be published to; it opens on no other. */
  topic: string;
  /** Text is encoded as UTF-8. */
  plaintext: Uint8Array | string;
}

/** Encrypts a payload into an envelope. Throws a RangeError or TypeError naming the option that is wrong. */
export function sealEnvelope(options: SealOptions): Buffer {
  const { key, keyId, topic, plaintext } = options;
  const algorithm = options.algorithm ?? ALGORITHMS.aes256gcm;
  if (!(key instanceof Uint8Array)) throw new TypeError('the key must be a Buffer or Uint8Array of 32 bytes');
  if (key.length !== KEY_LENGTH) throw new RangeError(`the key is ${key.length} bytes; it must be ${KEY_LENGTH}`);
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 255) throw new RangeError(`the key id must be an integer from 0 to 255, not ${String(keyId)}`);
  if (typeof algorithm !== 'number' || !isAlgorithm(algorithm)) {
    throw new RangeError(`algorithm ${String(algorithm)} is unknown: use ALGORITHMS.aes256gcm (${ALGORITHMS.aes256gcm}) or ALGORITHMS.chacha20poly1305 (${ALGORITHMS.chacha20poly1305})`);
  }
  const counter = checkedCounter(options.counter);
  if (typeof topic !== 'string') throw new TypeError('the topic must be a string');
  if (typeof plaintext !== 'string' && !(plaintext instanceof Uint8Array)) throw new TypeError('the plaintext must be a string, a Buffer or a Uint8Array');
  if (options.nonce !== undefined && (!(options.nonce instanceof Uint8Array) || options.nonce.length !== NONCE_LENGTH)) {
    throw new RangeError(`the nonce must be ${NONCE_LENGTH} bytes`);
  }

  const body = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  const envelope = Buffer.allocUnsafe(HEADER_LENGTH + body.length + TAG_LENGTH);
  envelope[VERSION_OFFSET] = ENVELOPE_VERSION;
  envelope[ALGORITHM_OFFSET] = algorithm;
  envelope[KEY_ID_OFFSET] = keyId;
  envelope.writeBigUInt64BE(counter, COUNTER_OFFSET);
  if (options.nonce !== undefined) {
    envelope.set(options.nonce, NONCE_OFFSET);
  } else {
    randomNoncePrefix(envelope, NONCE_OFFSET);
    envelope.writeBigUInt64BE(counter, NONCE_OFFSET + 4);
  }
  const header = envelope.subarray(0, HEADER_LENGTH);

  const nonce = envelope.subarray(NONCE_OFFSET, HEADER_LENGTH);
  const cipher = algorithm === ALGORITHMS.chacha20poly1305
    ? createCipheriv('chacha20-poly1305', key, nonce, AEAD_OPTIONS)
    : createCipheriv('aes-256-gcm', key, nonce, AEAD_OPTIONS);
  cipher.setAAD(additionalData(header, topic), { plaintextLength: body.length });
  const ciphertext = cipher.update(body);
  const rest = cipher.final();
  envelope.set(ciphertext, HEADER_LENGTH);
  envelope.set(rest, HEADER_LENGTH + ciphertext.length);
  envelope.set(cipher.getAuthTag(), HEADER_LENGTH + body.length);
  return envelope;
}

/**
 * Random bytes drawn 4 at a time from a pool filled 4 KiB at once: a call into the system's generator costs more
 * than the whole encryption of a small payload.
 */
const randomPool = Buffer.allocUnsafe(4096);
let randomUsed = randomPool.length;

function randomNoncePrefix(into: Buffer, at: number): void {
  if (randomUsed === randomPool.length) {
    randomFillSync(randomPool);
    randomUsed = 0;
  }
  randomPool.copy(into, at, randomUsed, randomUsed + 4);
  randomUsed += 4;
}

/** The counter as a bigint; throws a RangeError or TypeError unless it is an integer from 1 to 2^64 - 1. */
export function checkedCounter(counter: bigint | number): bigint {
  if (typeof counter === 'number') {
    if (!Number.isSafeInteger(counter)) throw new RangeError(`the counter must be an integer (a bigint above 2^53), not ${counter}`);
    counter = BigInt(counter);
  } else if (typeof counter !== 'bigint') {
    throw new TypeError('the counter must be a bigint or an integer number');
  }
  if (counter < 1n || counter > MAX_COUNTER) throw new RangeError(`the counter must be from 1 to 2^64 - 1, not ${counter}`);
  return counter;
}
