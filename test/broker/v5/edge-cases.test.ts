import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { delay, startBroker, waitFor, type TestBroker } from '../../helpers/broker.js';
import {
  barrier, expectNoPublish, publishAcked, rawClient, rawConnect, sendPublish, subscribe, takePublish, uid,
} from '../../helpers/v5-flow.js';
import type { RawClient } from '../../helpers/broker.js';
import { encodePacket } from '../../../src/protocol/index.js';

/** Edge cases found in review: each would corrupt state, lose a guarantee, or grow memory. */
describe('MQTT 5 edge cases', () => {
  let tb: TestBroker;
  const open: RawClient[] = [];
  const track = (raw: RawClient): RawClient => {
    open.push(raw);
    return raw;
  };
  before(async () => {
    tb = await startBroker({ limits: { maxQueuedBytes: 4096 } });
  });
  after(async () => {
    for (const raw of open) raw.destroy();
    await tb.close();
  });

  it('(4.8.2) a client whose id looks like a shared subscription cannot take over that group', async () => {
    const member = track(await rawClient(tb.port, { clientId: uid('mem') }));
    await subscribe(member, '$share/g1/edge/share', { qos: 0 });
    const impostor = track(await rawClient(tb.port, { clientId: '$share/g1/edge/share', version: 4 }));
    await subscribe(impostor, 'edge/share', { qos: 0, version: 4 });
    const publisher = track(await rawClient(tb.port));
    sendPublish(publisher, { topic: 'edge/share', payload: 'one' });
    await barrier(publisher);
    assert.equal((await takePublish(member)).payload.toString(), 'one', 'the group member still gets its message');
    assert.equal((await takePublish(impostor)).payload.toString(), 'one', 'the impostor gets its own plain subscription copy');
    assert.equal(tb.broker.router.group('$share/g1/edge/share')?.members.length, 1);
  });

  it('[MQTT-3.3.4-3] [MQTT-3.3.1-12] a shared message moved to another member carries that member\'s options, not the first one\'s', async () => {
    const first = track(await rawClient(tb.port, { clientId: uid('sa') }));
    await subscribe(first, { filter: '$share/g2/edge/move', qos: 1, retainAsPublished: true }, { subscriptionIdentifier: 7 });
    const publisher = track(await rawClient(tb.port));
    await publishAcked(publisher, { topic: 'edge/move', payload: 'm', qos: 1, retain: true });
    const got = await takePublish(first);
    assert.deepEqual([got.retain, got.properties?.subscriptionIdentifiers], [true, [7]]);
    const second = track(await rawClient(tb.port, { clientId: uid('sb') }));
    await subscribe(second, '$share/g2/edge/move', { qos: 1 });
    first.destroy(); // never acknowledged; session expiry 0 ends the session
    const moved = await takePublish(second);
    assert.equal(moved.payload.toString(), 'm');
    assert.equal(moved.retain, false, 'Retain As Published 0 on the new member');
    assert.equal(moved.properties?.subscriptionIdentifiers, undefined, 'no identifier of another client\'s subscription');
    await publishAcked(publisher, { topic: 'edge/move', payload: '', qos: 1, retain: true }); // clear the retained message
  });

  it('[MQTT-3.1.2-8] a DISCONNECT reporting an error (0x80) keeps the will; 0x00 discards it', async () => {
    const watcher = track(await rawClient(tb.port));
    await subscribe(watcher, 'edge/will/#', { qos: 0 });
    for (const [code, expected] of [[0x80, true], [0x00, false]] as const) {
      const { raw } = await rawConnect(tb.port, {
        clientId: uid('w'), will: { topic: `edge/will/${code}`, payload: Buffer.from('gone'), qos: 0, retain: false },
      });
      track(raw).send({ type: 14, reasonCode: code }, 5);
      await raw.waitClosed();
      if (expected) assert.equal((await takePublish(watcher)).topic, `edge/will/${code}`);
      else await expectNoPublish(watcher, `no will after DISCONNECT 0x${code.toString(16)}`, 5, 300);
    }
  });

  it('retained messages and queued messages keep no view of the socket chunk they arrived in (correlation data included)', async () => {
    const offline = track(await rawClient(tb.port, { clientId: 'edge-offline', clean: true, properties: { sessionExpiryInterval: 60 } }));
    await subscribe(offline, 'edge/held', { qos: 1 });
    offline.destroy();
    await waitFor(() => tb.broker.sessions.get('edge-offline')?.connection === undefined, 3000, 'subscriber offline');
    const publisher = track(await rawClient(tb.port));
    const big = Buffer.alloc(60_000);
    const properties = { correlationData: Buffer.from('c') };
    // One socket write: the small retained message and a large one after it, in one chunk.
    publisher.socket.write(Buffer.concat([
      encodePacket({ type: 3, dup: false, qos: 1, retain: true, topic: 'edge/held', packetId: 11, payload: Buffer.from('r'), properties }, 5),
      encodePacket({ type: 3, dup: false, qos: 0, retain: false, topic: 'edge/nobody', payload: big }, 5),
    ]));
    await barrier(publisher);
    let retained: { payload: Buffer; properties?: { correlationData?: Buffer } } | undefined;
    tb.broker.retained.match('edge/held', Date.now(), (m) => (retained = m));
    assert.ok(retained, 'retained message stored');
    assert.ok(retained.properties!.correlationData!.buffer.byteLength < 16_384, 'retained correlation data copied');
    const queued = [...tb.broker.sessions.get('edge-offline')!.queue];
    assert.equal(queued.length, 1);
    assert.ok(queued[0]!.message.properties!.correlationData!.buffer.byteLength < 16_384, 'queued correlation data copied');
    await publishAcked(publisher, { topic: 'edge/held', payload: '', qos: 1, retain: true });
  });

  it('max_queued_bytes counts MQTT 5 properties, not only payloads', async () => {
    const offline = track(await rawClient(tb.port, { clientId: 'edge-bytes', properties: { sessionExpiryInterval: 60 } }));
    await subscribe(offline, 'edge/bytes', { qos: 1 });
    offline.destroy();
    await waitFor(() => tb.broker.sessions.get('edge-bytes')?.connection === undefined, 3000, 'subscriber offline');
    const publisher = track(await rawClient(tb.port));
    const heavy = { userProperties: [['k', 'v'.repeat(1500)]] as Array<[string, string]> };
    for (let i = 0; i < 5; i++) await publishAcked(publisher, { topic: 'edge/bytes', payload: 'x', qos: 1, properties: heavy });
    // 4096 bytes hold two messages of ~1.5 KB of properties each.
    assert.equal(tb.broker.sessions.get('edge-bytes')!.queue.length, 2);
  });

  it('(4.8.2) when no member can take a message now, an online member queues it rather than one offline for good', async () => {
    const offline = track(await rawClient(tb.port, { clientId: 'edge-away', properties: { sessionExpiryInterval: 0xffff_ffff } }));
    await subscribe(offline, '$share/g3/edge/busy', { qos: 1 });
    offline.destroy();
    await waitFor(() => tb.broker.sessions.get('edge-away')?.connection === undefined, 3000, 'member offline');
    const busy = track(await rawClient(tb.port, { clientId: 'edge-busy', properties: { receiveMaximum: 1 } }));
    await subscribe(busy, '$share/g3/edge/busy', { qos: 1 });
    const publisher = track(await rawClient(tb.port));
    for (let i = 0; i < 4; i++) await publishAcked(publisher, { topic: 'edge/busy', payload: String(i), qos: 1 });
    const busySession = tb.broker.sessions.get('edge-busy')!;
    assert.equal(busySession.inflight.size + busySession.queue.length, 4, 'all four with the online member');
    assert.equal(tb.broker.sessions.get('edge-away')!.queue.length, 0);
  });

  it('3.1.1: a "$share/..." filter that is not a well-formed shared subscription is an ordinary filter, not a reason to disconnect', async () => {
    const client = track(await rawClient(tb.port, { version: 4 }));
    assert.deepEqual(await subscribe(client, { filter: '$share/foo', qos: 1 }, { version: 4 }), [1]);
    assert.equal(client.closed, false);
  });

  it('3.1.1 persistent sessions obey maximum_session_expiry_interval', async () => {
    const capped = await startBroker({ capabilities: { maximumSessionExpiryInterval: 1 } });
    try {
      const client = await rawClient(capped.port, { clientId: 'edge-311', clean: false, version: 4 });
      client.destroy();
      await waitFor(() => capped.broker.sessions.get('edge-311')?.connection === undefined, 3000, 'client offline');
      await delay(1700);
      assert.equal(capped.broker.sessions.has('edge-311'), false);
    } finally {
      await capped.close();
    }
  });

  it('(3.14.2.2.2) with sessions capped to 0, a DISCONNECT repeating the interval asked for in CONNECT is no protocol error', async () => {
    const capped = await startBroker({ capabilities: { maximumSessionExpiryInterval: 0 } });
    try {
      const { raw, connack } = await rawConnect(capped.port, { properties: { sessionExpiryInterval: 100 } });
      assert.equal(connack.properties?.sessionExpiryInterval, 0);
      raw.send({ type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 100 } }, 5);
      assert.equal(await raw.waitClosed(), true);
      assert.equal(raw.packets.some((p) => p.type === 14), false, 'no DISCONNECT 0x82 from the broker');
    } finally {
      await capped.close();
    }
  });
});
