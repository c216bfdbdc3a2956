import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PublishPacket } from '../../../src/protocol/index.js';
import type { RawClient } from '../../helpers/broker.js';
import { delay, startBroker, waitFor, type TestBroker } from '../../helpers/broker.js';
import {
  barrier, DISCONNECT, expectDisconnect, expectNoPublish, Inbox, mqtt5, PUBACK, PUBLISH, publishAcked, RC, rawClient, rawConnect,
  subscribe, takePublish, trackClients, uid, unsubscribe,
} from '../../helpers/v5-flow.js';

function publishesOf(raw: RawClient): PublishPacket[] {
  return raw.packets.filter((p): p is PublishPacket => p.type === PUBLISH);
}

function assertNoDuplicates(payloads: string[], what: string): void {
  assert.equal(new Set(payloads).size, payloads.length, `${what}: no message twice (${JSON.stringify(payloads)})`);
}

describe('MQTT 5 shared subscriptions (integration)', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());
  const track = trackClients();

  it('(4.8.2) $share/g/t/# with 3 members: 30 messages go round robin, 10 to each, none twice, none lost', async () => {
    const inboxes: Inbox[] = [];
    for (let i = 0; i < 3; i++) {
      const member = track(await mqtt5(tb.url));
      inboxes.push(new Inbox(member));
      await member.subscribeAsync('$share/g/rr/#', { qos: 1 });
    }
    const pub = track(await rawClient(tb.port));
    const sent: string[] = [];
    for (let i = 0; i < 30; i++) {
      sent.push(`m${i}`);
      assert.equal((await publishAcked(pub, { topic: `rr/t${i % 4}`, payload: `m${i}`, qos: 1 })).reasonCode ?? 0, 0);
    }
    await waitFor(() => inboxes.reduce((n, b) => n + b.messages.length, 0) >= 30, 5000, '30 messages');
    await delay(100);
    const all = inboxes.flatMap((b) => b.payloads());
    assertNoDuplicates(all, 'group');
    assert.deepEqual([...all].sort(), [...sent].sort(), 'every message delivered once');
    assert.deepEqual(inboxes.map((b) => b.messages.length), [10, 10, 10], 'round robin');
    for (const b of inboxes) for (const m of b.messages) assert.match(m.topic, /^rr\/t[0-3]$/, 'the topic as published, not the share filter');
  });

  it('(4.8.2) two groups on the same filter each get every message once; a non-shared subscriber gets every message', async () => {
    const groups: Inbox[][] = [[], []];
    for (const [g, name] of [[0, 'g1'], [1, 'g2']] as const) {
      for (let i = 0; i < 2; i++) {
        const member = track(await mqtt5(tb.url));
        groups[g]!.push(new Inbox(member));
        await member.subscribeAsync(`$share/${name}/tg/#`, { qos: 1 });
      }
    }
    const plain = track(await mqtt5(tb.url));
    const plainInbox = new Inbox(plain);
    await plain.subscribeAsync('tg/#', { qos: 1 });
    const pub = track(await rawClient(tb.port));
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      sent.push(`m${i}`);
      await publishAcked(pub, { topic: 'tg/x', payload: `m${i}`, qos: 1 });
    }
    const count = (boxes: Inbox[]): number => boxes.reduce((n, b) => n + b.messages.length, 0);
    await waitFor(() => count(groups[0]!) >= 20 && count(groups[1]!) >= 20 && plainInbox.messages.length >= 20, 5000, 'all copies');
    await delay(100);
    for (const [i, boxes] of groups.entries()) {
      const got = boxes.flatMap((b) => b.payloads());
      assertNoDuplicates(got, `group ${i + 1}`);
      assert.deepEqual(got.sort(), [...sent].sort(), `group ${i + 1} got every message`);
    }
    assert.deepEqual(plainInbox.payloads(), sent, 'the non-shared subscriber got every message, in order');
  });

  it('(3.3.1.3, 4.8.2) no retained messages are sent on a shared SUBSCRIBE; a non-shared one gets them', async () => {
    tb.broker.publish({ topic: 'sret/t', payload: 'kept', qos: 1, retain: true });
    const member = track(await rawClient(tb.port));
    assert.deepEqual(await subscribe(member, { filter: '$share/g/sret/#', qos: 1, retainHandling: 0 }), [1]);
    await expectNoPublish(member, 'no retained message on a shared subscription');
    const plain = track(await rawClient(tb.port));
    await subscribe(plain, { filter: 'sret/#', qos: 1 });
    const got = await takePublish(plain);
    assert.deepEqual([got.payload.toString(), got.retain], ['kept', true]);
  });

  it('[MQTT-4.8.2-3] each member gets the message at most at its own granted QoS', async () => {
    const q0 = track(await rawClient(tb.port));
    await subscribe(q0, '$share/gq/sq/#', { qos: 0 });
    const q2 = track(await rawClient(tb.port));
    await subscribe(q2, '$share/gq/sq/#', { qos: 2, subscriptionIdentifier: 5 });
    const pub = track(await rawClient(tb.port));
    await publishAcked(pub, { topic: 'sq/t', payload: 'a', qos: 2 });
    await publishAcked(pub, { topic: 'sq/t', payload: 'b', qos: 2 });
    const a = await takePublish(q0);
    const b = await takePublish(q2);
    assert.equal(a.qos, 0);
    assert.equal(b.qos, 2);
    assert.equal(a.properties?.subscriptionIdentifiers, undefined);
    assert.deepEqual(b.properties?.subscriptionIdentifiers, [5], '[MQTT-3.3.4-3] the member\'s subscription identifier');
    assert.deepEqual([a.payload.toString(), b.payload.toString()].sort(), ['a', 'b']);
  });

  it('(4.8.2) a member that is offline with a persistent session is skipped while other members are online', async () => {
    const clientId = uid('off');
    const offline = track(await rawClient(tb.port, { clientId, properties: { sessionExpiryInterval: 300 } }));
    await subscribe(offline, '$share/go/off/#', { qos: 1 });
    offline.send({ type: DISCONNECT, reasonCode: 0 }, 5);
    assert.equal(await offline.waitClosed(), true);

    const online: Inbox[] = [];
    for (let i = 0; i < 2; i++) {
      const member = track(await mqtt5(tb.url));
      online.push(new Inbox(member));
      await member.subscribeAsync('$share/go/off/#', { qos: 1 });
    }
    const pub = track(await rawClient(tb.port));
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) {
      sent.push(`m${i}`);
      await publishAcked(pub, { topic: 'off/t', payload: `m${i}`, qos: 1 });
    }
    await waitFor(() => online[0]!.messages.length + online[1]!.messages.length >= 10, 5000, '10 messages');
    const got = online.flatMap((b) => b.payloads());
    assertNoDuplicates(got, 'online members');
    assert.deepEqual(got.sort(), [...sent].sort());
    assert.ok(online.every((b) => b.messages.length > 0), 'both online members take part');

    const { raw: back, connack } = await rawConnect(tb.port, { clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
    track(back);
    assert.equal(connack.sessionPresent, true);
    await expectNoPublish(back, 'nothing was queued for the offline member');
  });

  for (const how of ['DISCONNECT', 'network failure'] as const) {
    it(`(4.8.2) when a member's session ends (${how}, expiry 0) with unacknowledged QoS 1 messages, they go to another member`, async () => {
      const filter = `$share/gm/mv-${how === 'DISCONNECT' ? 'd' : 'n'}/#`;
      const topic = `mv-${how === 'DISCONNECT' ? 'd' : 'n'}/t`;
      const leaver = track(await rawClient(tb.port));
      await subscribe(leaver, filter, { qos: 1 });
      const stayer = track(await mqtt5(tb.url));
      const inbox = new Inbox(stayer);
      await stayer.subscribeAsync(filter, { qos: 1 });
      const pub = track(await rawClient(tb.port));
      const sent: string[] = [];
      for (let i = 0; i < 6; i++) {
        sent.push(`m${i}`);
        await publishAcked(pub, { topic, payload: `m${i}`, qos: 1 });
      }
      await waitFor(() => publishesOf(leaver).length + inbox.messages.length >= 6, 5000, 'six deliveries');
      const held = publishesOf(leaver).map((p) => p.payload.toString());
      assert.ok(held.length > 0, 'the leaving member holds unacknowledged messages');
      if (how === 'DISCONNECT') leaver.send({ type: DISCONNECT, reasonCode: 0 }, 5);
      else leaver.destroy();
      await waitFor(() => inbox.messages.length >= 6, 5000, `the ${held.length} held messages at the other member`);
      await delay(100);
      const got = inbox.payloads();
      assertNoDuplicates(got, 'remaining member');
      assert.deepEqual(got.sort(), [...sent].sort(), 'every message reached the remaining member');
    });
  }

  it('[MQTT-4.8.2-5] a QoS 2 message already sent to a member whose session then ends is not sent to another member', async () => {
    const leaver = track(await rawClient(tb.port));
    await subscribe(leaver, '$share/g2/mv2/#', { qos: 2 });
    const stayer = track(await rawClient(tb.port));
    await subscribe(stayer, '$share/g2/mv2/#', { qos: 2 });
    const pub = track(await rawClient(tb.port));
    for (let i = 0; i < 4; i++) await publishAcked(pub, { topic: 'mv2/t', payload: `m${i}`, qos: 2 });
    await waitFor(() => publishesOf(leaver).length + publishesOf(stayer).length >= 4, 5000, 'four deliveries');
    const held = publishesOf(leaver).map((p) => p.payload.toString());
    const kept = publishesOf(stayer).map((p) => p.payload.toString());
    assert.ok(held.length > 0, 'the leaving member holds QoS 2 messages it has not acknowledged');
    leaver.destroy();
    await delay(300);
    await barrier(stayer);
    assert.deepEqual(publishesOf(stayer).map((p) => p.payload.toString()), kept,
      `the messages sent to the member that left (${JSON.stringify(held)}) are not sent to another member`);
  });

  it('[MQTT-4.8.2-6] a message a member refused with PUBACK 0x80 is not sent to another member', async () => {
    const refuser = track(await rawClient(tb.port));
    await subscribe(refuser, '$share/gr/rf/#', { qos: 1 });
    const other = track(await rawClient(tb.port));
    await subscribe(other, '$share/gr/rf/#', { qos: 1 });
    const pub = track(await rawClient(tb.port));
    await publishAcked(pub, { topic: 'rf/t', payload: 'm0', qos: 1 });
    await publishAcked(pub, { topic: 'rf/t', payload: 'm1', qos: 1 });
    await waitFor(() => publishesOf(refuser).length + publishesOf(other).length >= 2, 5000, 'two deliveries');
    const refused = publishesOf(refuser);
    const kept = publishesOf(other).map((p) => p.payload.toString());
    assert.equal(refused.length, 1, 'round robin gave one message to each member');
    refuser.send({ type: PUBACK, packetId: refused[0]!.packetId!, reasonCode: RC.UnspecifiedError }, 5);
    refuser.send({ type: DISCONNECT, reasonCode: 0 }, 5);
    assert.equal(await refuser.waitClosed(), true);
    await delay(100);
    await barrier(other);
    assert.deepEqual(publishesOf(other).map((p) => p.payload.toString()), kept,
      `the refused message ${refused[0]!.payload.toString()} is not sent to the other member`);
  });

  it('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82', async () => {
    const raw = track(await rawClient(tb.port));
    raw.send({ type: 8, packetId: 1, subscriptions: [{ filter: '$share/g/nl/#', qos: 1, noLocal: true }] }, 5);
    await expectDisconnect(raw, RC.ProtocolError, 'No Local on $share');
  });

  it('(4.8.2) unsubscribing members: the rest get every message; unsubscribing the last member removes the group', async () => {
    const a = track(await rawClient(tb.port));
    const b = track(await rawClient(tb.port));
    await subscribe(a, '$share/gu/un/#', { qos: 1 });
    await subscribe(b, '$share/gu/un/#', { qos: 1 });
    assert.notEqual(tb.broker.router.group('$share/gu/un/#'), undefined);
    assert.deepEqual(await unsubscribe(a, '$share/gu/un/#'), [RC.Success]);
    const pub = track(await rawClient(tb.port));
    for (let i = 0; i < 3; i++) assert.equal((await publishAcked(pub, { topic: 'un/t', payload: `m${i}`, qos: 1 })).reasonCode ?? 0, 0);
    for (let i = 0; i < 3; i++) assert.equal((await takePublish(b)).payload.toString(), `m${i}`);
    await expectNoPublish(a, 'the unsubscribed member gets nothing');
    assert.deepEqual(await unsubscribe(b, '$share/gu/un/#'), [RC.Success]);
    assert.equal(tb.broker.router.group('$share/gu/un/#'), undefined, 'the group is gone');
    assert.equal((await publishAcked(pub, { topic: 'un/t', payload: 'none', qos: 1 })).reasonCode, RC.NoMatchingSubscribers);
    await expectNoPublish(b, 'nothing after the last member left');
    // The same share name starts a new group.
    await subscribe(a, '$share/gu/un/#', { qos: 1 });
    await publishAcked(pub, { topic: 'un/t', payload: 'again', qos: 1 });
    assert.equal((await takePublish(a)).payload.toString(), 'again');
  });
});
