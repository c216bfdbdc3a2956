import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodePublish, encodePublishHeader, publishPacketSize, type Properties, type QoS } from '../../src/protocol/index.js';

const propertiesArb: fc.Arbitrary<Properties | undefined> = fc.option(
  fc.record(
    {
      contentType: fc.string({ maxLength: 8 }).filter((s) => !s.includes('\u0000')),
      messageExpiryInterval: fc.integer({ min: 0, max: 0xffff_ffff }),
      subscriptionIdentifiers: fc.array(fc.integer({ min: 1, max: 268_435_455 }), { minLength: 1, maxLength: 3 }),
      userProperties: fc.array(fc.tuple(fc.constantFrom('a', 'k'), fc.constantFrom('', 'v')), { maxLength: 2 }),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);

describe('PUBLISH header encoding (the zero-copy write path)', () => {
  it('header + payload is byte for byte the whole PUBLISH, at levels 4 and 5, with or without properties', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<4 | 5>(4, 5), fc.constantFrom<QoS>(0, 1, 2), fc.boolean(), fc.boolean(),
        fc.stringMatching(/^[a-z/]{1,12}$/), fc.uint8Array({ maxLength: 300 }), propertiesArb,
        (version, qos, retain, dup, topic, bytes, properties) => {
          const payload = Buffer.from(bytes);
          const packetId = qos > 0 ? 42 : undefined;
          const props = version === 5 ? properties : undefined;
          const whole = encodePublish({ type: 3, dup: dup && qos > 0, qos, retain, topic, packetId, payload, properties: props }, version);
          const header = encodePublishHeader(topic, Buffer.byteLength(topic), qos, retain, dup && qos > 0, packetId ?? 0, payload.length, version, props);
          assert.deepEqual(Buffer.concat([header, payload]), whole);
          assert.equal(publishPacketSize(Buffer.byteLength(topic), qos, payload.length, version, props), whole.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
