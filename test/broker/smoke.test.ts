import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, startBroker, type TestBroker } from '../helpers/broker.js';

describe('broker smoke', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  it('routes a QoS 1 message from a publisher to a subscriber', async () => {
    const sub = await connectClient(tb.url);
    await sub.subscribeAsync('smoke/#', { qos: 1 });
    const received = new Promise<[string, string]>((resolve) => sub.once('message', (t, p) => resolve([t, p.toString()])));
    const pub = await connectClient(tb.url);
    await pub.publishAsync('smoke/1', 'hi', { qos: 1 });
    assert.deepEqual(await received, ['smoke/1', 'hi']);
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  });
});
