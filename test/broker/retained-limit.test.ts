import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { publishAcked, rawClient } from '../helpers/v5-flow.js';

describe('bounded growth: max_retained_messages', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxRetainedMessages: 2 } });
  });
  after(() => tb.close());

  it('refuses a retained message on a new topic beyond the limit (MQTT 5: PUBACK 0x97), counts it, and keeps the others', async () => {
    const client = await rawClient(tb.port);
    try {
      assert.equal((await publishAcked(client, { topic: 'lim/a', payload: '1', qos: 1, retain: true })).reasonCode ?? 0, 0x10);
      assert.equal((await publishAcked(client, { topic: 'lim/b', payload: '2', qos: 1, retain: true })).reasonCode ?? 0, 0x10);
      const refused = await publishAcked(client, { topic: 'lim/c', payload: '3', qos: 1, retain: true });
      assert.equal(refused.reasonCode, 0x97, 'Quota exceeded');
      assert.equal(tb.broker.stats.retainedRefused, 1);
      assert.equal(tb.broker.retained.size, 2);
      // Replacing and clearing existing topics is always possible.
      assert.notEqual((await publishAcked(client, { topic: 'lim/a', payload: 'new', qos: 1, retain: true })).reasonCode, 0x97);
      await publishAcked(client, { topic: 'lim/b', payload: '', qos: 1, retain: true });
      assert.equal(tb.broker.retained.size, 1);
      assert.notEqual((await publishAcked(client, { topic: 'lim/c', payload: '3', qos: 1, retain: true })).reasonCode, 0x97);
    } finally {
      client.destroy();
    }
  });
});
