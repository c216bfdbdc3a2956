import {
  ALGORITHMS,
  checkedCounter,
  isEnvelopeError,
  KEY_LENGTH,
  openEnvelope,
  parseEnvelope,
  sealEnvelope,
  type Algorithm,
  type EnvelopeProblem,
  type SealOptions,
} from './envelope.js';

/**
 * `moat-mqtt/payload`: payload encryption for the broker, from a Node client. A device seals each payload into an
 * envelope with a key the broker also holds (its payload key file); the broker opens it before authorization,
 * retained storage and routing. docs/payload-encryption.md describes the format and the key file.
 *
 * ```ts
 * import { CounterSealer } from 'moat-mqtt/payload';
 * const sealer = new CounterSealer({ key, keyId: 0, nextCounter: savedCounter });
 * client.publish('sensors/kitchen', sealer.seal('sensors/kitchen', '21.5'));
 * ```
 */

export {
  ALGORITHMS,
  ENVELOPE_VERSION,
  HEADER_LENGTH,
  KEY_LENGTH,
  MAX_COUNTER,
  MIN_ENVELOPE_LENGTH,
  NONCE_LENGTH,
  TAG_LENGTH,
  algorithmName,
  deliveryKey,
  isEnvelopeError,
  openEnvelope,
  parseEnvelope,
  sealEnvelope,
  type Algorithm,
  type EnvelopeError,
  type EnvelopeProblem,
  type ParsedEnvelope,
  type SealOptions,
} from './envelope.js';
export { PayloadKeyFileError, PayloadKeys, parsePayloadKeys } from './keys.js';

/**
 * Seals `plaintext` into an envelope for `topic`: publish the returned bytes, unchanged, to that topic.
 * Throws a RangeError or TypeError naming the option that is wrong (key length, key id, counter, nonce).
 */
export function seal(options: SealOptions): Buffer {
  return sealEnvelope(options);
}

/** Why `open` refused: the envelope's problem, or 'not-authentic' when it does not open with the key and topic. */
export class EnvelopeOpenError extends Error {
  override readonly name = 'EnvelopeOpenError';
  constructor(readonly problem: EnvelopeProblem | 'not-authentic', message: string) {
    super(message);
  }
}

/**
 * The plaintext of an envelope received on `topic`. Throws EnvelopeOpenError when the bytes are no envelope or do
 * not authenticate (wrong key, changed bytes, another topic). It checks no counter: replays are the receiver's to
 * refuse.
 */
export function open(key: Uint8Array, bytes: Uint8Array, topic: string): Buffer {
  const envelope = parseEnvelope(bytes);
  if (isEnvelopeError(envelope)) throw new EnvelopeOpenError(envelope.problem, envelope.reason);
  const plaintext = openEnvelope(key, envelope, topic);
  if (plaintext === undefined) {
    throw new EnvelopeOpenError('not-authentic', `the envelope (key id ${envelope.keyId}, counter ${envelope.counter}) does not open with this key on topic "${topic}"`);
  }
  return plaintext;
}

export interface CounterSealerOptions {
  /** 32 bytes. */
  key: Uint8Array;
  /** 0-255, default 0. */
  keyId?: number;
  /** Default AES-256-GCM. */
  algorithm?: Algorithm;
  /**
   * The counter of the first envelope, default 1. The broker refuses a counter it has seen under this key, so a
   * client that restarts must start above the last one it sent: keep `nextCounter` somewhere durable, or start
   * from the time (for instance `BigInt(Date.now()) * 1000n`) if the clock only moves forward.
   */
  nextCounter?: bigint | number;
}

/**
 * Seals envelopes with one key and a counter that grows by one per envelope, with the default nonce (4 random
 * bytes and the counter). Not shared between processes: two sealers with one key would send the same counters.
 */
export class CounterSealer {
  private readonly key: Uint8Array;
  private readonly keyId: number;
  private readonly algorithm: Algorithm;
  private counter: bigint;

  constructor(options: CounterSealerOptions) {
    this.key = Uint8Array.from(options.key);
    this.keyId = options.keyId ?? 0;
    this.algorithm = options.algorithm ?? ALGORITHMS.aes256gcm;
    this.counter = checkedCounter(options.nextCounter ?? 1);
    if (this.key.length !== KEY_LENGTH) throw new RangeError(`the key is ${this.key.length} bytes; it must be ${KEY_LENGTH}`);
    if (!Number.isInteger(this.keyId) || this.keyId < 0 || this.keyId > 255) throw new RangeError(`the key id must be an integer from 0 to 255, not ${String(this.keyId)}`);
  }

  /** The counter the next envelope will carry. */
  get nextCounter(): bigint {
    return this.counter;
  }

  /** An envelope of `plaintext` for `topic`; the counter moves on only when sealing succeeded. */
  seal(topic: string, plaintext: Uint8Array | string): Buffer {
    const envelope = sealEnvelope({ key: this.key, keyId: this.keyId, algorithm: this.algorithm, counter: this.counter, topic, plaintext });
    this.counter += 1n;
    return envelope;
  }
}
