import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, startBroker, waitFor, type TestBroker } from '../../helpers/broker.js';

const DAY = 24 * 3600 * 1000;

describe('MQTT 5 session expiry over days', () => {
  let tb: TestBroker;
  before(async () => {
    // These clients are anonymous: without this, limits.max_session_expiry_anonymous (a day) would cap them.
    tb = await startBroker({ limits: { maxSessionExpiryAnonymous: 0 } });
  });
  after(() => tb.close());

  it('[MQTT-3.1.2-23] a 30-day session survives 29 days offline and is gone after 31 (no timer overflow past 24.8 days)', async () => {
    const client = await connectClient(tb.url, { protocolVersion: 5, clientId: 'month', clean: true, properties: { sessionExpiryInterval: 30 * 24 * 3600 } });
    await client.subscribeAsync('long/#', { qos: 1 });
    const leftAt = Date.now();
    await client.endAsync();
    await waitFor(() => tb.broker.sessions.get('month')?.connection === undefined, 3000, 'the client offline');
    // The housekeeper's sweep with a clock moved forward: the same code path as days of uptime.
    tb.broker.sweepSessions(leftAt + 29 * DAY);
    assert.ok(tb.broker.sessions.has('month'), 'still there after 29 days');
    tb.broker.sweepSessions(leftAt + 31 * DAY);
    assert.equal(tb.broker.sessions.has('month'), false, 'expired after 31 days');
  });

  it('0xFFFFFFFF never expires, even after a century', async () => {
    const client = await connectClient(tb.url, { protocolVersion: 5, clientId: 'forever', properties: { sessionExpiryInterval: 0xffff_ffff } });
    await client.endAsync();
    await waitFor(() => tb.broker.sessions.get('forever')?.connection === undefined, 3000, 'the client offline');
    tb.broker.sweepSessions(Date.now() + 100 * 365 * DAY);
    assert.ok(tb.broker.sessions.has('forever'));
  });
});
