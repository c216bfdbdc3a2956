import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ALGORITHMS,
  HEADER_LENGTH,
  MAX_COUNTER,
  MIN_ENVELOPE_LENGTH,
  TAG_LENGTH,
  isEnvelopeError,
  openEnvelope,
  parseEnvelope,
  sealEnvelope,
  type Algorithm,
  type EnvelopeError,
  type ParsedEnvelope,
} from '../../src/payload/envelope.js';
import { CounterSealer, EnvelopeOpenError, open, seal } from '../../src/payload/index.js';

/** The payload envelope, version 1 (docs/payload-encryption.md), against vectors made with Python's cryptography. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Vector {
  name: string;
  algorithm: Algorithm;
  key: string;
  keyId: number;
  counter: string;
  nonce: string;
  topic: string;
  topicHex: string;
  plaintext: string;
  envelope: string;
}

const VECTORS = (JSON.parse(readFileSync(path.join(ROOT, 'test', 'payload', 'vectors.json'), 'utf8')) as { vectors: Vector[] }).vectors;
const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const KEY = Buffer.alloc(32, 0x5a);
const OTHER_KEY = Buffer.alloc(32, 0xa5);

function parsed(bytes: Uint8Array): ParsedEnvelope {
  const result = parseEnvelope(bytes);
  assert.ok(!isEnvelopeError(result), `parses: ${isEnvelopeError(result) ? result.reason : ''}`);
  return result;
}

function failure(bytes: Uint8Array): EnvelopeError {
  const result = parseEnvelope(bytes);
  assert.ok(isEnvelopeError(result), 'refused');
  return result;
}

describe('payload envelope test vectors', () => {
  it('the vectors cover both algorithms, empty and non-empty plaintexts, key ids 0 and 7, a large counter and a non-ASCII topic', () => {
    assert.ok(VECTORS.length >= 6);
    assert.ok(VECTORS.some((v) => v.algorithm === ALGORITHMS.aes256gcm) && VECTORS.some((v) => v.algorithm === ALGORITHMS.chacha20poly1305));
    assert.ok(VECTORS.some((v) => v.plaintext === '') && VECTORS.some((v) => v.plaintext !== ''));
    assert.ok(VECTORS.some((v) => v.keyId === 0) && VECTORS.some((v) => v.keyId === 7));
    assert.ok(VECTORS.some((v) => BigInt(v.counter) > 2n ** 32n));
    assert.ok(VECTORS.some((v) => /[^\x00-\x7f]/.test(v.topic)));
    for (const v of VECTORS) assert.equal(Buffer.from(v.topic, 'utf8').toString('hex'), v.topicHex, `${v.name}: topic and topicHex agree`);
  });

  for (const v of VECTORS) {
    it(`${v.name}: parses into its inputs`, () => {
      const envelope = parsed(hex(v.envelope));
      assert.equal(envelope.version, 1);
      assert.equal(envelope.algorithm, v.algorithm);
      assert.equal(envelope.keyId, v.keyId);
      assert.equal(envelope.counter, BigInt(v.counter));
      assert.equal(Buffer.from(envelope.nonce).toString('hex'), v.nonce);
      assert.equal(envelope.header.length, HEADER_LENGTH);
      assert.equal(envelope.ciphertext.length, v.plaintext.length / 2);
      assert.equal(envelope.tag.length, TAG_LENGTH);
    });

    it(`${v.name}: opens to its plaintext`, () => {
      const plaintext = openEnvelope(hex(v.key), parsed(hex(v.envelope)), v.topic);
      assert.ok(plaintext !== undefined, 'authenticates');
      assert.equal(plaintext.toString('hex'), v.plaintext);
    });

    it(`${v.name}: seals byte for byte into the envelope`, () => {
      const envelope = sealEnvelope({
        key: hex(v.key), keyId: v.keyId, counter: BigInt(v.counter), algorithm: v.algorithm, nonce: hex(v.nonce), topic: v.topic, plaintext: hex(v.plaintext),
      });
      assert.equal(envelope.toString('hex'), v.envelope);
    });
  }
});

describe('parseEnvelope', () => {
  const good = sealEnvelope({ key: KEY, keyId: 9, counter: 0x0102030405060708n, topic: 't', plaintext: 'hello' });

  it('reads the header fields and cuts views of the bytes, not copies', () => {
    const envelope = parsed(good);
    assert.equal(envelope.algorithm, ALGORITHMS.aes256gcm);
    assert.equal(envelope.keyId, 9);
    assert.equal(envelope.counter, 0x0102030405060708n);
    assert.equal(envelope.ciphertext.length, 5);
    for (const [view, offset] of [[envelope.header, 0], [envelope.nonce, 11], [envelope.ciphertext, HEADER_LENGTH], [envelope.tag, good.length - TAG_LENGTH]] as const) {
      assert.equal(view.buffer, good.buffer, 'shares the memory of the input');
      assert.equal(view.byteOffset, good.byteOffset + offset);
    }
  });

  it('the default nonce is 4 random bytes followed by the counter', () => {
    const a = parsed(sealEnvelope({ key: KEY, keyId: 0, counter: 77n, topic: 't', plaintext: '' }));
    const b = parsed(sealEnvelope({ key: KEY, keyId: 0, counter: 77n, topic: 't', plaintext: '' }));
    assert.equal(Buffer.from(a.nonce.subarray(4)).toString('hex'), '000000000000004d');
    assert.notDeepEqual(Buffer.from(a.nonce.subarray(0, 4)), Buffer.from(b.nonce.subarray(0, 4)), 'the first 4 bytes are random');
  });

  it('refuses anything shorter than a header and a tag, naming the length', () => {
    for (const length of [0, 1, HEADER_LENGTH, MIN_ENVELOPE_LENGTH - 1]) {
      const error = failure(good.subarray(0, length));
      assert.equal(error.problem, 'too-short');
      assert.match(error.reason, new RegExp(`is ${length} bytes, shorter than the smallest envelope \\(39`));
    }
    assert.ok(!isEnvelopeError(parseEnvelope(good.subarray(0, MIN_ENVELOPE_LENGTH))), 'an empty plaintext is 39 bytes');
  });

  it('refuses another version, an unknown algorithm and counter 0', () => {
    const changed = (offset: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy[offset] = value;
      return copy;
    };
    for (const version of [0, 2, 0xff]) {
      const error = failure(changed(0, version));
      assert.equal(error.problem, 'unsupported-version');
      assert.match(error.reason, new RegExp(`version ${version} is not supported`));
    }
    for (const algorithm of [0, 3, 0xff]) {
      const error = failure(changed(1, algorithm));
      assert.equal(error.problem, 'unknown-algorithm');
      assert.match(error.reason, new RegExp(`algorithm ${algorithm} is unknown`));
    }
    const zero = Buffer.from(good);
    zero.fill(0, 3, 11);
    assert.deepEqual(failure(zero), { problem: 'zero-counter', reason: 'the counter is 0; counters start at 1' });
    const one = Buffer.from(zero);
    one[10] = 1;
    assert.equal(parsed(one).counter, 1n, 'the least significant byte is the last');
    const top = Buffer.from(zero);
    top[3] = 0x80;
    assert.equal(parsed(top).counter, 2n ** 63n, 'the counter is unsigned');
  });
});

describe('openEnvelope', () => {
  const topic = 'plant/line-3/press';
  for (const algorithm of [ALGORITHMS.aes256gcm, ALGORITHMS.chacha20poly1305]) {
    const name = algorithm === ALGORITHMS.aes256gcm ? 'AES-256-GCM' : 'ChaCha20-Poly1305';
    const bytes = sealEnvelope({ key: KEY, keyId: 3, counter: 1000n, algorithm, topic, plaintext: 'pressure=7.1bar' });

    it(`${name}: opens with its key on its topic`, () => {
      assert.equal(openEnvelope(KEY, parsed(bytes), topic)?.toString(), 'pressure=7.1bar');
    });

    it(`${name}: any single byte changed, in header, ciphertext or tag, and it does not open`, () => {
      for (let offset = 0; offset < bytes.length; offset++) {
        for (const flip of [0x01, 0x80]) {
          const tampered = Buffer.from(bytes);
          tampered[offset]! ^= flip;
          const result = parseEnvelope(tampered);
          // A change of version, algorithm or a counter of 0 is refused by the parser; everything else by the tag.
          if (isEnvelopeError(result)) {
            assert.ok(offset < 11, `only a header byte can make the parser refuse (offset ${offset})`);
            continue;
          }
          assert.equal(openEnvelope(KEY, result, topic), undefined, `byte ${offset} ^ ${flip}`);
        }
      }
    });

    it(`${name}: a header byte the parser accepts, changed, fails authentication`, () => {
      // Algorithms swapped, key id and counter changed: each still parses, none authenticates.
      for (const [offset, value] of [[1, algorithm === 1 ? 2 : 1], [2, 4], [10, 0xe9]] as const) {
        const tampered = Buffer.from(bytes);
        tampered[offset] = value;
        assert.equal(openEnvelope(KEY, parsed(tampered), topic), undefined, `offset ${offset}`);
      }
    });

    it(`${name}: another topic, or another key, and it does not open`, () => {
      const envelope = parsed(bytes);
      for (const other of ['plant/line-3/press/', 'plant/line-3/pres', 'Plant/line-3/press', '', `${topic}\u0000`]) {
        assert.equal(openEnvelope(KEY, envelope, other), undefined, JSON.stringify(other));
      }
      assert.equal(openEnvelope(OTHER_KEY, envelope, topic), undefined);
    });

    it(`${name}: a truncated or extended envelope does not open`, () => {
      assert.equal(openEnvelope(KEY, parsed(bytes.subarray(0, bytes.length - 1)), topic), undefined);
      assert.equal(openEnvelope(KEY, parsed(Buffer.concat([bytes, Buffer.of(0)])), topic), undefined);
      const withoutLast = Buffer.concat([bytes.subarray(0, HEADER_LENGTH + 3), bytes.subarray(HEADER_LENGTH + 4)]);
      assert.equal(openEnvelope(KEY, parsed(withoutLast), topic), undefined);
    });
  }

  it('never throws: keys of the wrong length and hand-made envelopes give undefined', () => {
    const envelope = parsed(sealEnvelope({ key: KEY, keyId: 0, counter: 1n, topic: 't', plaintext: 'x' }));
    for (const key of [Buffer.alloc(0), Buffer.alloc(16), Buffer.alloc(31), Buffer.alloc(33)]) assert.equal(openEnvelope(key, envelope, 't'), undefined);
    assert.equal(openEnvelope('k'.repeat(32) as unknown as Buffer, envelope, 't'), undefined, 'a string is no key, even of 32 characters');
    assert.equal(openEnvelope(KEY, { ...envelope, algorithm: 9 as Algorithm }, 't'), undefined);
    assert.equal(openEnvelope(KEY, { ...envelope, nonce: envelope.nonce.subarray(1) }, 't'), undefined);
    assert.equal(openEnvelope(KEY, { ...envelope, tag: envelope.tag.subarray(4) }, 't'), undefined);
  });

  it('a long topic, and one of multi-byte characters, authenticate like short ones', () => {
    for (const topic of ['a/'.repeat(20_000), '温度/'.repeat(5000), '😀/🌡️']) {
      const bytes = sealEnvelope({ key: KEY, keyId: 0, counter: 1n, topic, plaintext: 'x' });
      assert.equal(openEnvelope(KEY, parsed(bytes), topic)?.toString(), 'x');
      assert.equal(openEnvelope(KEY, parsed(bytes), topic.slice(0, -1)), undefined);
    }
  });
});

describe('sealEnvelope checks its inputs', () => {
  const base = { key: KEY, keyId: 0, counter: 1n, topic: 't', plaintext: 'p' };

  it('accepts the edges: key ids 0 and 255, counters 1 and 2^64 - 1, a number counter', () => {
    for (const options of [{ keyId: 255 }, { counter: MAX_COUNTER }, { counter: 5 }, { counter: Number.MAX_SAFE_INTEGER }]) {
      const envelope = parsed(sealEnvelope({ ...base, ...options }));
      assert.equal(openEnvelope(KEY, envelope, 't')?.toString(), 'p');
    }
    assert.equal(parsed(sealEnvelope({ ...base, counter: MAX_COUNTER })).counter, MAX_COUNTER);
  });

  it('refuses each wrong input with an error that names it', () => {
    const cases: Array<[Partial<Parameters<typeof sealEnvelope>[0]>, RegExp]> = [
      [{ key: Buffer.alloc(16) }, /the key is 16 bytes; it must be 32/],
      [{ key: 'secret' as unknown as Buffer }, /the key must be a Buffer or Uint8Array/],
      [{ keyId: 256 }, /key id must be an integer from 0 to 255, not 256/],
      [{ keyId: -1 }, /key id must be an integer from 0 to 255, not -1/],
      [{ keyId: 1.5 }, /key id must be an integer from 0 to 255, not 1.5/],
      [{ counter: 0n }, /counter must be from 1 to 2\^64 - 1, not 0/],
      [{ counter: -1n }, /counter must be from 1 to 2\^64 - 1, not -1/],
      [{ counter: MAX_COUNTER + 1n }, /counter must be from 1 to 2\^64 - 1, not 18446744073709551616/],
      [{ counter: 2 ** 60 }, /counter must be an integer \(a bigint above 2\^53\)/],
      [{ counter: 1.5 }, /counter must be an integer/],
      [{ counter: '7' as unknown as bigint }, /counter must be a bigint or an integer number/],
      [{ algorithm: 3 as Algorithm }, /algorithm 3 is unknown/],
      [{ nonce: Buffer.alloc(11) }, /the nonce must be 12 bytes/],
      [{ nonce: Buffer.alloc(13) }, /the nonce must be 12 bytes/],
      [{ topic: undefined as unknown as string }, /the topic must be a string/],
      [{ plaintext: 5 as unknown as string }, /the plaintext must be a string, a Buffer or a Uint8Array/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => sealEnvelope({ ...base, ...options }), message, JSON.stringify(options, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)));
    }
  });
});

describe('sealing and opening round-trip (property)', () => {
  it('seal then parse and open gives back the plaintext, for any key, key id, counter, nonce, topic and plaintext', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.integer({ min: 0, max: 255 }),
      fc.bigInt({ min: 1n, max: MAX_COUNTER }),
      fc.constantFrom(ALGORITHMS.aes256gcm, ALGORITHMS.chacha20poly1305),
      fc.option(fc.uint8Array({ minLength: 12, maxLength: 12 }), { nil: undefined }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.uint8Array({ maxLength: 300 }),
      (key, keyId, counter, algorithm, nonce, topic, plaintext) => {
        const bytes = sealEnvelope({ key, keyId, counter, algorithm, nonce, topic, plaintext });
        assert.equal(bytes.length, MIN_ENVELOPE_LENGTH + plaintext.length);
        const envelope = parsed(bytes);
        assert.deepEqual([envelope.keyId, envelope.counter, envelope.algorithm], [keyId, counter, algorithm]);
        if (nonce !== undefined) assert.deepEqual(Buffer.from(envelope.nonce), Buffer.from(nonce));
        assert.deepEqual(openEnvelope(key, envelope, topic), Buffer.from(plaintext));
        assert.equal(openEnvelope(key, envelope, `${topic}/`), undefined);
      },
    ), { numRuns: 300 });
  });
});

describe('moat-mqtt/payload: seal, open and CounterSealer', () => {
  it('is the package subpath moat-mqtt/payload, which loads no broker code', async () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; import: string }> };
    assert.deepEqual(manifest.exports['./payload'], { types: './dist/src/payload/index.d.ts', import: './dist/src/payload/index.js' });
    // Through a variable: tsc would otherwise look for the types in dist, which a first build has not written yet.
    const specifier = 'moat-mqtt/payload';
    const subpath = await import(specifier) as { seal: unknown; open: unknown };
    assert.equal(subpath.seal, seal);
    assert.equal(subpath.open, open);
    const compiled = readFileSync(path.join(ROOT, 'dist', 'src', 'payload', 'index.js'), 'utf8');
    assert.deepEqual([...compiled.matchAll(/^(?:import|export) .*? from '([^']+)';$/gm)].map((m) => m[1]).sort(), ['./envelope.js', './envelope.js', './keys.js']);
  });

  it('open returns the plaintext of what seal made', () => {
    const bytes = seal({ key: KEY, keyId: 1, counter: 5n, algorithm: ALGORITHMS.chacha20poly1305, topic: 'a/b', plaintext: 'hi' });
    assert.equal(open(KEY, bytes, 'a/b').toString(), 'hi');
  });

  it('open throws EnvelopeOpenError saying why: not an envelope, or not authentic', () => {
    const bytes = seal({ key: KEY, keyId: 1, counter: 5n, topic: 'a/b', plaintext: 'hi' });
    assert.throws(() => open(KEY, bytes.subarray(0, 10), 'a/b'), (error: unknown) => {
      assert.ok(error instanceof EnvelopeOpenError);
      assert.equal(error.problem, 'too-short');
      assert.match(error.message, /the payload is 10 bytes/);
      return true;
    });
    assert.throws(() => open(OTHER_KEY, bytes, 'a/b'), (error: unknown) => {
      assert.ok(error instanceof EnvelopeOpenError);
      assert.equal(error.problem, 'not-authentic');
      assert.equal(error.message, 'the envelope (key id 1, counter 5) does not open with this key on topic "a/b"');
      return true;
    });
    assert.throws(() => open(KEY, bytes, 'a/c'), /does not open with this key on topic "a\/c"/);
  });

  it('CounterSealer counts up from nextCounter, one per envelope, with its key id and algorithm', () => {
    const sealer = new CounterSealer({ key: KEY, keyId: 7, algorithm: ALGORITHMS.chacha20poly1305, nextCounter: 41n });
    const first = parsed(sealer.seal('t/1', 'one'));
    const second = parsed(sealer.seal('t/2', Buffer.from('two')));
    assert.deepEqual([first.counter, second.counter, sealer.nextCounter], [41n, 42n, 43n]);
    assert.deepEqual([first.keyId, first.algorithm], [7, ALGORITHMS.chacha20poly1305]);
    assert.notDeepEqual(Buffer.from(first.nonce), Buffer.from(second.nonce));
    assert.equal(openEnvelope(KEY, second, 't/2')?.toString(), 'two');
    const defaults = new CounterSealer({ key: KEY });
    const envelope = parsed(defaults.seal('t', ''));
    assert.deepEqual([envelope.counter, envelope.keyId, envelope.algorithm], [1n, 0, ALGORITHMS.aes256gcm]);
  });

  it('CounterSealer keeps its own copy of the key and checks its options at once', () => {
    const key = Buffer.from(KEY);
    const sealer = new CounterSealer({ key });
    key.fill(0);
    assert.equal(open(KEY, sealer.seal('t', 'x'), 't').toString(), 'x');
    assert.throws(() => new CounterSealer({ key: Buffer.alloc(10) }), /the key is 10 bytes; it must be 32/);
    assert.throws(() => new CounterSealer({ key: KEY, keyId: 300 }), /key id must be an integer from 0 to 255, not 300/);
    assert.throws(() => new CounterSealer({ key: KEY, nextCounter: 0n }), /counter must be from 1/);
  });

  it('CounterSealer stops at 2^64 - 1 rather than wrapping around, and does not move on after a failure', () => {
    const sealer = new CounterSealer({ key: KEY, nextCounter: MAX_COUNTER });
    assert.equal(parsed(sealer.seal('t', 'last')).counter, MAX_COUNTER);
    assert.throws(() => sealer.seal('t', 'one more'), /counter must be from 1 to 2\^64 - 1/);
    const fresh = new CounterSealer({ key: KEY, nextCounter: 9n });
    assert.throws(() => fresh.seal('t', 5 as unknown as string), /plaintext must be/);
    assert.equal(fresh.nextCounter, 9n);
  });
});
