import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClientInfo } from '../../src/broker/hooks.js';
import { encodePacket } from '../../src/protocol/index.js';
import { connectClient, delay, RawClient, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import {
  buildConnect, expectSilence, MessageInbox, nextPublish, rawConnect, rawSession, rawSubscribe, uniqueId, trackClients } from '../helpers/connection.js';

/** Asserts a refusal: CONNACK with `code`, session present 0 [MQTT-3.2.2-4], then the broker closes [MQTT-3.2.2-5]. */
async function assertRefused(raw: RawClient, connack: { returnCode: number; sessionPresent: boolean }, code: number): Promise<void> {
  assert.equal(connack.returnCode, code, `expected CONNACK return code ${code}`);
  assert.equal(connack.sessionPresent, false, 'session present must be 0 with a non-zero return code [MQTT-3.2.2-4]');
  assert.equal(await raw.waitClosed(3000), true, 'the broker must close the connection after a refusal [MQTT-3.2.2-5]');
}

/** A CONNECT for a protocol level no MQTT version has (6), shaped like MQTT 5's. */
const LEVEL6_CONNECT = Buffer.from([
  0x10, 15,
  0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, // "MQTT"
  0x06, // protocol level 6
  0x02, // clean start
  0x00, 0x3c, // keep alive 60
  0x00, // properties length 0
  0x00, 0x02, 0x76, 0x35, // client id "v5"
]);

describe('CONNECT / CONNACK', () => {
  let tb: TestBroker;
  const track = trackClients();

  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  describe('CONNACK return codes', () => {
    it('[MQTT-3.2.2-3] return code 0: a valid CONNECT is accepted with session present 0 for a new session', async () => {
      const { raw, connack } = await rawConnect(tb.port, { clientId: uniqueId('ok'), clean: false });
      track(raw);
      assert.equal(connack.returnCode, 0);
      assert.equal(connack.sessionPresent, false);
      // The connection stays open and usable.
      raw.send({ type: 12 });
      assert.equal((await raw.nextPacket()).type, 13);
      assert.equal(raw.closed, false);
    });

    it('[MQTT-3.1.2-2] return code 1 for an unknown protocol level (6), then the connection is closed', async () => {
      const raw = track(await RawClient.connect(tb.port));
      raw.sendBytes(LEVEL6_CONNECT);
      const connack = await raw.nextPacket();
      assert.equal(connack.type, 2);
      await assertRefused(raw, connack as { returnCode: number; sessionPresent: boolean }, 1);
    });

    it('[MQTT-3.1.2-2] return code 1 for protocol name "MQTT" with level 3, then the connection is closed', async () => {
      const raw = track(await RawClient.connect(tb.port));
      raw.send(buildConnect({ protocolName: 'MQTT', version: 3, clientId: uniqueId('lvl3') }), 3);
      const connack = await raw.nextPacket();
      assert.equal(connack.type, 2);
      await assertRefused(raw, connack as { returnCode: number; sessionPresent: boolean }, 1);
    });

    it('[MQTT-3.1.3-8] return code 2 for a zero-length client id with CleanSession 0', async () => {
      const { raw, connack } = await rawConnect(tb.port, { clientId: '', clean: false });
      track(raw);
      await assertRefused(raw, connack, 2);
    });

    it('return code 2 for an MQTT 3.1 (MQIsdp) CONNECT with a zero-length client id', async () => {
      const { raw, connack } = await rawConnect(tb.port, { clientId: '', clean: true, version: 3 });
      track(raw);
      await assertRefused(raw, connack, 2);
    });

    it('return code 2 for an MQTT 3.1 (MQIsdp) client id longer than 23 characters (MQTT V3.1 spec, CONNECT payload: Client Identifier)', async () => {
      const { raw, connack } = await rawConnect(tb.port, { clientId: 'x'.repeat(24), clean: true, version: 3 });
      track(raw);
      await assertRefused(raw, connack, 2);
    });

    it('return code 3 (server unavailable) once maxConnections clients are connected', async () => {
      const limited = await startBroker({ limits: { maxConnections: 1 } });
      try {
        const first = track(await connectClient(limited.url, { clientId: uniqueId('first') }));
        const { raw, connack } = await rawConnect(limited.port, { clientId: uniqueId('second') });
        track(raw);
        await assertRefused(raw, connack, 3);
        assert.equal(limited.broker.stats.connectedClients, 1);
        // The slot is usable again once the first client leaves.
        await first.endAsync();
        await waitFor(() => limited.broker.stats.connectedClients === 0, 3000, 'first client gone');
        const { raw: again } = await rawSession(limited.port, { clientId: uniqueId('third') });
        track(again);
      } finally {
        await track.closeNow();
        await limited.close();
      }
    });

    it('return code 4 when the authenticate hook returns false', async () => {
      const seen: Array<{ username: string | undefined; password: string | undefined }> = [];
      const auth = await startBroker({
        hooks: {
          authenticate: (req) => {
            seen.push({ username: req.username, password: req.password?.toString() });
            return false;
          },
        },
      });
      try {
        const { raw, connack } = await rawConnect(auth.port, {
          clientId: uniqueId('bad'), username: 'alice', password: Buffer.from('wrong'),
        });
        track(raw);
        await assertRefused(raw, connack, 4);
        assert.deepEqual(seen, [{ username: 'alice', password: 'wrong' }]);
        assert.equal(auth.broker.stats.connectedClients, 0);
      } finally {
        await track.closeNow();
        await auth.close();
      }
    });

    it('return code 5 when the authenticate hook answers { ok: false, reason: "notAuthorized" }', async () => {
      const auth = await startBroker({ hooks: { authenticate: () => ({ ok: false, reason: 'notAuthorized' }) } });
      try {
        const { raw, connack } = await rawConnect(auth.port, { clientId: uniqueId('na'), username: 'bob', password: Buffer.from('pw') });
        track(raw);
        await assertRefused(raw, connack, 5);
      } finally {
        await track.closeNow();
        await auth.close();
      }
    });

    it('return code 5 on a listener with allowAnonymous: false and no authenticate hook', async () => {
      const closed = await startBroker({ listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
      try {
        const { raw, connack } = await rawConnect(closed.port, { clientId: uniqueId('anon') });
        track(raw);
        await assertRefused(raw, connack, 5);
        // MQTT.js sees the same refusal.
        await assert.rejects(connectClient(closed.url, { clientId: uniqueId('anon2') }), (err: Error & { code?: number }) => {
          assert.equal(err.code, 5);
          return true;
        });
      } finally {
        await track.closeNow();
        await closed.close();
      }
    });

    it('[MQTT-3.2.2-4] a refused CONNECT reports session present 0 even when a persistent session exists', async () => {
      const auth = await startBroker({ hooks: { authenticate: (req) => req.username !== 'mallory' } });
      try {
        const clientId = uniqueId('sp');
        const { raw: owner } = await rawSession(auth.port, { clientId, clean: false });
        await rawSubscribe(owner, 'sp/#', 1);
        owner.send({ type: 14 });
        assert.equal(await owner.waitClosed(), true);
        assert.ok(auth.broker.sessions.has(clientId), 'the persistent session exists');

        const { raw, connack } = await rawConnect(auth.port, { clientId, clean: false, username: 'mallory' });
        track(raw);
        await assertRefused(raw, connack, 4);
        // The session was not given to the refused client, and is still there for its owner.
        const { raw: back, connack: ok } = await rawSession(auth.port, { clientId, clean: false, username: 'owner' });
        track(back);
        assert.equal(ok.sessionPresent, true);
      } finally {
        await track.closeNow();
        await auth.close();
      }
    });
  });

  describe('CONNECT sequencing', () => {
    it('[MQTT-3.1.0-1] closes a connection whose first packet is not CONNECT (PINGREQ)', async () => {
      const raw = track(await RawClient.connect(tb.port));
      raw.send({ type: 12 });
      assert.equal(await raw.waitClosed(3000), true, 'connection must be closed');
      assert.deepEqual(raw.packets.map((p) => p.type), [], 'no CONNACK or PINGRESP may be sent');
    });

    it('[MQTT-3.1.0-1] closes a connection whose first packet is not CONNECT (PUBLISH), without routing it', async () => {
      const sub = track(await connectClient(tb.url, { clientId: uniqueId('watch') }));
      await sub.subscribeAsync('first/#', { qos: 0 });
      const inbox = new MessageInbox(sub);
      const raw = track(await RawClient.connect(tb.port));
      raw.send({ type: 3, dup: false, qos: 0, retain: false, topic: 'first/publish', payload: Buffer.from('sneaky') });
      assert.equal(await raw.waitClosed(3000), true, 'connection must be closed');
      assert.deepEqual(raw.packets.map((p) => p.type), []);
      await delay(100);
      assert.deepEqual(inbox.messages, [], 'a PUBLISH before CONNECT must not be routed');
    });

    it('[MQTT-3.1.0-2] closes the connection on a second CONNECT', async () => {
      const clientId = uniqueId('twice');
      const { raw } = await rawSession(tb.port, { clientId });
      track(raw);
      raw.send(buildConnect({ clientId }));
      assert.equal(await raw.waitClosed(3000), true, 'a second CONNECT is a protocol violation: connection closed');
      assert.deepEqual(raw.packets.map((p) => p.type), [], 'no second CONNACK');
    });

    it('closes a socket that never sends CONNECT after connectTimeout', async () => {
      const quick = await startBroker({ limits: { connectTimeout: 1 } });
      try {
        const started = Date.now();
        const raw = track(await RawClient.connect(quick.port));
        await delay(400);
        assert.equal(raw.closed, false, 'not closed before the timeout');
        assert.equal(await raw.waitClosed(3000), true, 'closed after connectTimeout');
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 900, `closed after ${elapsed} ms, before the 1 s connect timeout`);
        assert.deepEqual(raw.packets.map((p) => p.type), []);
        await waitFor(() => quick.broker.connections.size === 0, 3000, 'the broker to release the connection');
      } finally {
        await track.closeNow();
        await quick.close();
      }
    });
  });

  describe('client identifiers', () => {
    it('[MQTT-3.1.3-6] accepts a zero-length client id with CleanSession 1 and assigns a unique id', async () => {
      const ids: string[] = [];
      const onConnected = (c: ClientInfo): void => {
        ids.push(c.id);
      };
      tb.broker.on('clientConnected', onConnected);
      try {
        const a = await rawSession(tb.port, { clientId: '', clean: true });
        track(a.raw);
        assert.equal(a.connack.sessionPresent, false);
        const b = await rawSession(tb.port, { clientId: '', clean: true });
        track(b.raw);
        await waitFor(() => ids.length === 2, 2000, 'two clientConnected events');
        assert.ok(ids[0]!.length > 0 && ids[1]!.length > 0, 'generated ids are not empty');
        assert.notEqual(ids[0], ids[1], 'generated ids are unique');
        // Both clients work and do not take each other over.
        await rawSubscribe(a.raw, 'gen/a', 0);
        await rawSubscribe(b.raw, 'gen/b', 0);
        assert.equal(a.raw.closed, false);
        assert.equal(b.raw.closed, false);
      } finally {
        tb.broker.off('clientConnected', onConnected);
      }
    });

    it('[MQTT-3.1.4-2] a second connection with the same client id closes the first; the new one works', async () => {
      const clientId = uniqueId('take');
      const { raw: first } = await rawSession(tb.port, { clientId });
      track(first);
      const second = track(await connectClient(tb.url, { clientId }));
      assert.equal(await first.waitClosed(3000), true, 'the existing connection must be disconnected');
      assert.equal(second.connected, true);
      await second.subscribeAsync('takeover/t', { qos: 1 });
      const inbox = new MessageInbox(second);
      const pub = track(await connectClient(tb.url, { clientId: uniqueId('pub') }));
      await pub.publishAsync('takeover/t', 'still here', { qos: 1 });
      const m = await inbox.next();
      assert.deepEqual([m.topic, m.payload], ['takeover/t', 'still here']);
      assert.equal(second.connected, true);
    });
  });

  describe('session takeover', () => {
    it('[MQTT-3.1.4-2] a takeover with CleanSession 0 resumes the persistent session on the new connection', async () => {
      const clientId = uniqueId('takep');
      const { raw: first } = await rawSession(tb.port, { clientId, clean: false });
      track(first);
      await rawSubscribe(first, 'takep/#', 1);
      const { raw: second, connack } = await rawSession(tb.port, { clientId, clean: false });
      track(second);
      assert.equal(await first.waitClosed(3000), true, 'the existing connection must be disconnected');
      assert.equal(connack.sessionPresent, true, 'the session of the replaced connection is resumed [MQTT-3.2.2-2]');
      const pub = track(await connectClient(tb.url, { clientId: uniqueId('pub') }));
      await pub.publishAsync('takep/x', 'to the new connection', { qos: 1 });
      const p = await nextPublish(second);
      assert.deepEqual([p.topic, p.payload.toString(), p.qos], ['takep/x', 'to the new connection', 1]);
      second.send({ type: 4, packetId: p.packetId! });
      assert.deepEqual(first.packets.map((q) => q.type), [], 'nothing reaches the replaced connection');
      second.send({ type: 14 });
      await second.waitClosed();
      track((await rawSession(tb.port, { clientId, clean: true })).raw);
    });

    it('[MQTT-3.1.4-2] a takeover with CleanSession 1 closes the old connection and starts an empty session', async () => {
      const clientId = uniqueId('takec');
      const { raw: first } = await rawSession(tb.port, { clientId, clean: false });
      track(first);
      await rawSubscribe(first, 'takec/#', 1);
      const { raw: second, connack } = await rawSession(tb.port, { clientId, clean: true });
      track(second);
      assert.equal(await first.waitClosed(3000), true);
      assert.equal(connack.sessionPresent, false);
      await rawSubscribe(second, 'takec-sentinel', 1);
      const pub = track(await connectClient(tb.url, { clientId: uniqueId('pub') }));
      await pub.publishAsync('takec/x', 'old subscription', { qos: 1 });
      await pub.publishAsync('takec-sentinel', 'sentinel', { qos: 1 });
      const p = await nextPublish(second);
      assert.equal(p.topic, 'takec-sentinel', 'the old subscription must be gone [MQTT-3.1.2-6]');
    });
  });

  describe('authenticate hook', () => {
    it('an async (Promise) hook accepts, and packets sent right after CONNECT are processed in order after it resolves', async () => {
      let resolved = false;
      const auth = await startBroker({
        hooks: {
          authenticate: async (req) => {
            await delay(150);
            resolved = true;
            return req.username === 'carol';
          },
        },
      });
      try {
        const raw = track(await RawClient.connect(auth.port));
        // CONNECT, SUBSCRIBE, PUBLISH to the subscribed topic and PINGREQ in one write, before any answer.
        raw.sendBytes(Buffer.concat([
          encodePacket(buildConnect({ clientId: uniqueId('async'), username: 'carol', password: Buffer.from('pw') }), 4),
          encodePacket({ type: 8, packetId: 7, subscriptions: [{ filter: 'async/t', qos: 0 }] }, 4),
          encodePacket({ type: 3, dup: false, qos: 0, retain: false, topic: 'async/t', payload: Buffer.from('m1') }, 4),
          encodePacket({ type: 12 }, 4),
        ]));
        const connack = await raw.nextPacket();
        assert.equal(resolved, true, 'nothing is answered before the hook resolves');
        assert.equal(connack.type, 2);
        assert.equal((connack as { returnCode: number }).returnCode, 0);
        const suback = await raw.nextPacket();
        assert.equal(suback.type, 9);
        assert.deepEqual((suback as { returnCodes: number[] }).returnCodes, [0]);
        const publish = await nextPublish(raw);
        assert.equal(publish.topic, 'async/t');
        assert.equal(publish.payload.toString(), 'm1');
        assert.equal((await raw.nextPacket()).type, 13);
      } finally {
        await track.closeNow();
        await auth.close();
      }
    });

    it('an async hook that refuses gives CONNACK 4 and the packets sent after CONNECT are not processed', async () => {
      const auth = await startBroker({ hooks: { authenticate: async () => { await delay(50); return false; } } });
      try {
        // Every client would be refused, so observe routing through the publish event.
        const routed: string[] = [];
        auth.broker.on('publish', (m) => routed.push(m.topic));
        const raw = track(await RawClient.connect(auth.port));
        raw.sendBytes(Buffer.concat([
          encodePacket(buildConnect({ clientId: uniqueId('asyncno') }), 4),
          encodePacket({ type: 3, dup: false, qos: 1, retain: true, packetId: 3, topic: 'refused/t', payload: Buffer.from('x') }, 4),
        ]));
        const connack = await raw.nextPacket();
        assert.equal(connack.type, 2);
        await assertRefused(raw, connack as { returnCode: number; sessionPresent: boolean }, 4);
        assert.deepEqual(raw.packets.map((p) => p.type), [], 'no PUBACK for a refused connection');
        assert.deepEqual(routed, []);
        assert.equal(auth.broker.retained.size, 0);
      } finally {
        await track.closeNow();
        await auth.close();
      }
    });

    for (const mode of ['throws', 'rejects'] as const) {
      it(`an authenticate hook that ${mode} refuses the connection (fail closed) and the broker keeps serving`, async () => {
        const connected: string[] = [];
        const auth = await startBroker({
          hooks: {
            authenticate: (req) => {
              if (req.username !== 'boom') return true;
              if (mode === 'throws') throw new Error('authenticator exploded');
              return Promise.reject(new Error('authenticator exploded'));
            },
          },
        });
        auth.broker.on('clientConnected', (c) => connected.push(c.id));
        try {
          const clientId = uniqueId('boom');
          const raw = track(await RawClient.connect(auth.port));
          raw.send(buildConnect({ clientId, username: 'boom', password: Buffer.from('x') }));
          assert.equal(await raw.waitClosed(3000), true, 'the connection must be closed');
          const answers = raw.packets;
          // Either no CONNACK at all [MQTT-3.2.2-6] or a refusal; never an acceptance.
          for (const p of answers) {
            assert.equal(p.type, 2, 'only a CONNACK may be sent');
            assert.notEqual((p as { returnCode: number }).returnCode, 0, 'a failing authenticator must not let the client in');
            assert.equal((p as { sessionPresent: boolean }).sessionPresent, false);
          }
          assert.ok(answers.length <= 1);
          assert.ok(!connected.includes(clientId), 'clientConnected must not fire');
          assert.equal(auth.broker.stats.connectedClients, 0);
          // Other clients are still served.
          const { raw: ok } = await rawSession(auth.port, { clientId: uniqueId('fine'), username: 'fine' });
          track(ok);
        } finally {
          await track.closeNow();
          await auth.close();
        }
      });
    }
  });

  describe('MQTT 3.1 (MQIsdp, level 3)', () => {
    it('an MQTT.js 3.1 client connects, subscribes and exchanges QoS 0, 1 and 2 messages', async () => {
      const sub = track(await connectClient(tb.url, { protocolId: 'MQIsdp', protocolVersion: 3, clientId: uniqueId('v31s') }));
      const granted = await sub.subscribeAsync('v31/#', { qos: 2 });
      assert.equal(granted[0]!.qos, 2);
      const inbox = new MessageInbox(sub);
      const pub = track(await connectClient(tb.url, { protocolId: 'MQIsdp', protocolVersion: 3, clientId: uniqueId('v31p') }));
      await pub.publishAsync('v31/a', 'zero', { qos: 0 });
      await pub.publishAsync('v31/b', 'one', { qos: 1 });
      await pub.publishAsync('v31/c', 'two', { qos: 2 });
      const got = [await inbox.next(), await inbox.next(), await inbox.next()];
      assert.deepEqual(got.map((m) => [m.topic, m.payload, m.qos]), [['v31/a', 'zero', 0], ['v31/b', 'one', 1], ['v31/c', 'two', 2]]);
    });

    it('a 3.1 client and a 3.1.1 client talk to each other', async () => {
      const old = track(await connectClient(tb.url, { protocolId: 'MQIsdp', protocolVersion: 3, clientId: uniqueId('v31x') }));
      await old.subscribeAsync('mixed/old', { qos: 1 });
      const oldInbox = new MessageInbox(old);
      const modern = track(await connectClient(tb.url, { protocolVersion: 4, clientId: uniqueId('v311x') }));
      await modern.subscribeAsync('mixed/new', { qos: 1 });
      const modernInbox = new MessageInbox(modern);
      await modern.publishAsync('mixed/old', 'to 3.1', { qos: 1 });
      await old.publishAsync('mixed/new', 'to 3.1.1', { qos: 1 });
      assert.equal((await oldInbox.next()).payload, 'to 3.1');
      assert.equal((await modernInbox.next()).payload, 'to 3.1.1');
    });

    it('a raw MQIsdp CONNECT with a client id gets CONNACK 0 and the connection works', async () => {
      const { raw, connack } = await rawConnect(tb.port, { clientId: uniqueId('v31r'), version: 3 });
      track(raw);
      assert.equal(connack.returnCode, 0);
      raw.send({ type: 12 }, 3);
      assert.equal((await raw.nextPacket()).type, 13);
      await expectSilence(raw, 50);
    });
  });
});
