import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { ALGORITHMS, MAX_COUNTER, isEnvelopeError, openEnvelope, parseEnvelope, sealEnvelope, type Algorithm } from '../../src/payload/envelope.js';
import { killAll, run } from '../helpers/process.js';

/**
 * Envelopes between Moat and an independent implementation, test/payload/reference.py, built on Python's
 * `cryptography` (Debian's python3-cryptography, which npm test installs): each side opens what the other sealed,
 * for random inputs, and refuses what was sealed for another topic.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = '/usr/bin/python3';
const REFERENCE = path.join(ROOT, 'test', 'payload', 'reference.py');
const PREREQUISITES = path.join(ROOT, 'scripts', 'test-prerequisites.mjs');

interface Case {
  algorithm: Algorithm;
  key: Uint8Array;
  keyId: number;
  counter: bigint;
  nonce: Uint8Array;
  topic: string;
  plaintext: Uint8Array;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Random inputs, the same on every run (a fixed seed), with the edges fast-check favours: empty, 0, 2^64 - 1. */
function randomCases(count: number, seed: number): Case[] {
  return fc.sample(fc.record({
    algorithm: fc.constantFrom<Algorithm>(ALGORITHMS.aes256gcm, ALGORITHMS.chacha20poly1305),
    key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    keyId: fc.integer({ min: 0, max: 255 }),
    counter: fc.bigInt({ min: 1n, max: MAX_COUNTER }),
    nonce: fc.uint8Array({ minLength: 12, maxLength: 12 }),
    topic: fc.string({ unit: 'grapheme', maxLength: 30 }),
    plaintext: fc.uint8Array({ maxLength: 200 }),
  }), { numRuns: count, seed });
}

/** Sends each request to reference.py as a JSON line and returns its answers in order. */
async function python(requests: object[]): Promise<Array<Record<string, string | null>>> {
  const result = await run(PYTHON, [REFERENCE, 'serve'], { input: requests.map((r) => JSON.stringify(r)).join('\n') + '\n', limitMs: 30_000 });
  assert.equal(result.code, 0, `reference.py: ${result.stderr}`);
  const answers = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, string | null>);
  assert.equal(answers.length, requests.length);
  return answers;
}

/** Another topic for the negative cases: appending a character changes the AAD whatever the topic was. */
const elsewhere = (topic: string): string => `${topic}#`;

describe('payload envelopes between Moat and Python cryptography', () => {
  after(killAll);

  it('npm test installs python3-cryptography, and this machine has it', async () => {
    const { PREREQUISITES: listed } = await import(PREREQUISITES) as { PREREQUISITES: Array<{ pkg: string; check?: () => boolean }> };
    const entry = listed.find((p) => p.pkg === 'python3-cryptography');
    assert.ok(entry?.check, 'a prerequisite with a check for the module');
    assert.equal(entry.check(), true);
  });

  it('Moat opens what Python sealed, and only on its topic', async () => {
    const cases = randomCases(200, 19);
    const sealed = await python(cases.map((c) => ({
      op: 'seal', algorithm: c.algorithm, key: hex(c.key), keyId: c.keyId, counter: c.counter.toString(), nonce: hex(c.nonce), topic: c.topic, plaintext: hex(c.plaintext),
    })));
    cases.forEach((c, i) => {
      const envelope = parseEnvelope(Buffer.from(sealed[i]!.envelope!, 'hex'));
      assert.ok(!isEnvelopeError(envelope), `case ${i} parses`);
      assert.deepEqual([envelope.algorithm, envelope.keyId, envelope.counter], [c.algorithm, c.keyId, c.counter]);
      assert.equal(openEnvelope(c.key, envelope, c.topic)?.toString('hex'), hex(c.plaintext), `case ${i} opens`);
      assert.equal(openEnvelope(c.key, envelope, elsewhere(c.topic)), undefined, `case ${i} on another topic`);
      // The same inputs sealed here give the same bytes: the two implementations agree on every byte.
      const ours = sealEnvelope({ ...c, plaintext: c.plaintext });
      assert.equal(ours.toString('hex'), sealed[i]!.envelope, `case ${i} byte for byte`);
    });
  });

  it('Python opens what Moat sealed (default nonces included), and only on its topic', async () => {
    const cases = randomCases(200, 2025);
    const envelopes = cases.map((c, i) => sealEnvelope({ ...c, nonce: i % 2 === 0 ? c.nonce : undefined }));
    const requests = cases.flatMap((c, i) => [
      { op: 'open', key: hex(c.key), topic: c.topic, envelope: hex(envelopes[i]!) },
      { op: 'open', key: hex(c.key), topic: elsewhere(c.topic), envelope: hex(envelopes[i]!) },
    ]);
    const answers = await python(requests);
    cases.forEach((c, i) => {
      assert.equal(answers[2 * i]!.plaintext, hex(c.plaintext), `case ${i} opens`);
      assert.equal(answers[2 * i + 1]!.plaintext, null, `case ${i} on another topic`);
    });
  });
});
