import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { composeHooks } from '../../src/index.js';
import { encodePacket } from '../../src/protocol/index.js';
import { connectClient, delay, RawClient, startBroker, waitFor } from '../helpers/broker.js';

const publishBytes = (topic: string, qos: 0 | 1, packetId: number, payload: Buffer): Buffer =>
  encodePacket({ type: 3, dup: false, qos, retain: false, topic, packetId: qos > 0 ? packetId : undefined, payload }, 4);

describe('hostile and unlucky clients: memory stays bounded, the process stays up', () => {
  it('stops reading from a client that does not read what it is sent, and resumes when it reads again', async () => {
    const limit = 32 * 1024;
    const tb = await startBroker({ limits: { maxOutboundBuffer: limit } });
    const raw = await RawClient.connect(tb.port);
    try {
      await raw.handshake({ clientId: 'no-reader' });
      raw.send({ type: 8, packetId: 1, subscriptions: [{ filter: 'echo', qos: 0 }] });
      assert.equal((await raw.nextPacket()).type, 9);
      raw.socket.pause();
      // Every publish comes back to the sender: 40 MB offered to a client that reads nothing.
      const total = 10_000;
      const one = publishBytes('echo', 0, 0, Buffer.alloc(4096));
      for (let i = 0; i < total; i++) raw.socket.write(one);
      await delay(1500);
      const conn = [...tb.broker.connections].find((c) => c.client?.id === 'no-reader')!;
      assert.ok(tb.broker.stats.publishReceived < total, 'the broker kept reading from a client that reads nothing');
      assert.ok(conn.socket.writableLength < limit + 128 * 1024, `outbound buffer grew to ${conn.socket.writableLength}`);
      raw.socket.resume();
      await waitFor(() => tb.broker.stats.publishReceived === total, 15_000, 'every publish read once the client reads');
    } finally {
      raw.destroy();
      await tb.close();
    }
  });

  it('stops reading while an asynchronous authenticate hook decides, so bytes cannot pile up', async () => {
    let release!: () => void;
    const decided = new Promise<void>((resolve) => (release = resolve));
    const tb = await startBroker({ hooks: { authenticate: async () => { await decided; return true; } } });
    const raw = await RawClient.connect(tb.port);
    try {
      raw.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'slow-auth' });
      const chunk = publishBytes('a', 0, 0, Buffer.alloc(60_000));
      for (let i = 0; i < 200; i++) raw.socket.write(chunk); // 12 MB offered
      await delay(500);
      const conn = [...tb.broker.connections][0]!;
      assert.ok(conn.decoder.buffered < 2 * 1024 * 1024, `decoder buffered ${conn.decoder.buffered} bytes while paused`);
      release();
      assert.equal((await raw.nextPacket()).type, 2, 'CONNACK once the hook answers');
      await waitFor(() => tb.broker.stats.publishReceived === 200, 10_000, 'all publishes read after the hook');
    } finally {
      raw.destroy();
      await tb.close();
    }
  });

  it('[MQTT-3.1.2-8] a hook that throws while a will is published does not stop the broker', async () => {
    let willChecks = 0;
    const tb = await startBroker({
      hooks: {
        authorizePublish: (_client, message) => {
          // The will is checked at CONNECT (allowed here) and again when published (the hook breaks then).
          if (message.topic === 'bad' && willChecks++ > 0) throw new Error('hook bug');
          return true;
        },
      },
    });
    try {
      const raw = await RawClient.connect(tb.port);
      raw.send({
        type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'will-bad',
        will: { topic: 'bad', payload: Buffer.from('w'), qos: 0, retain: false },
      });
      assert.equal((await raw.nextPacket()).type, 2);
      raw.destroy();
      await waitFor(() => tb.broker.connections.size === 0, 3000, 'the connection to be gone');
      assert.equal(willChecks, 2, 'the hook ran at CONNECT and when the will was published');
      const client = await connectClient(tb.url);
      await client.subscribeAsync('ok', { qos: 1 });
      const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
      await client.publishAsync('ok', 'still up', { qos: 1 });
      assert.equal(await got, 'still up');
      await client.endAsync();
    } finally {
      await tb.close();
    }
  });

  it('a hook that throws while a will is checked at CONNECT refuses the client (CONNACK 3) and the broker carries on', async () => {
    const tb = await startBroker({
      hooks: {
        authorizePublish: (_client, message) => {
          if (message.topic === 'bad') throw new Error('hook bug');
          return true;
        },
      },
    });
    try {
      const raw = await RawClient.connect(tb.port);
      raw.send({
        type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'will-bad2',
        will: { topic: 'bad', payload: Buffer.from('w'), qos: 0, retain: false },
      });
      const connack = (await raw.nextPacket()) as { type: number; returnCode: number };
      assert.deepEqual([connack.type, connack.returnCode], [2, 3]);
      raw.destroy();
      const client = await connectClient(tb.url);
      await client.endAsync();
    } finally {
      await tb.close();
    }
  });

  it('a publish made from a publish listener reaches subscribers after the message being routed, which reaches all of them', async () => {
    const tb = await startBroker();
    try {
      tb.broker.on('publish', (message) => {
        if (message.topic === 'in') tb.broker.publish({ topic: 'out', payload: 'derived' });
      });
      const clients = await Promise.all([1, 2, 3].map(() => connectClient(tb.url)));
      const seen = clients.map(() => [] as string[]);
      await Promise.all(clients.map((c, i) => {
        c.on('message', (topic) => seen[i]!.push(topic));
        return c.subscribeAsync(['in', 'out'], { qos: 0 });
      }));
      await clients[0]!.publishAsync('in', 'x', { qos: 1 });
      await waitFor(() => seen.every((s) => s.length === 2), 3000, 'both messages at every subscriber');
      for (const s of seen) assert.deepEqual(s, ['in', 'out']);
      await Promise.all(clients.map((c) => c.endAsync()));
    } finally {
      await tb.close();
    }
  });

  it('closes sockets beyond the connection limit plus its margin before they send CONNECT', async () => {
    const tb = await startBroker({ limits: { maxConnections: 2 } }); // cap: 2 + 16 sockets
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        const s = net.connect(tb.port, '127.0.0.1');
        s.on('error', () => {});
        sockets.push(s);
        await once(s, 'connect');
      }
      await delay(200);
      assert.equal(tb.broker.connections.size, 18);
    } finally {
      for (const s of sockets) s.destroy();
      await tb.close();
    }
  });

  it('a queued message does not keep the 64 KiB socket chunk it arrived in alive', async () => {
    const tb = await startBroker();
    try {
      const sub = await connectClient(tb.url, { clientId: 'offline-q', clean: false });
      await sub.subscribeAsync('q', { qos: 1 });
      await sub.endAsync();
      const raw = await RawClient.connect(tb.port);
      await raw.handshake({ clientId: 'chunky' });
      raw.socket.write(Buffer.concat([publishBytes('junk', 0, 0, Buffer.alloc(60_000)), publishBytes('q', 1, 1, Buffer.from('z'))]));
      assert.equal((await raw.nextPacket()).type, 4);
      const queued = [...tb.broker.sessions.get('offline-q')!.queue];
      assert.equal(queued.length, 1);
      assert.ok(queued[0]!.message.payload.buffer.byteLength < 16 * 1024, 'payload copied out of the socket chunk');
      raw.destroy();
    } finally {
      await tb.close();
    }
  });
});

describe('composeHooks', () => {
  it('stays synchronous when every hook answers synchronously', () => {
    const hooks = composeHooks([
      { authorizePublish: () => true, authorizeSubscribe: () => 1 },
      { authorizePublish: () => true, authorizeSubscribe: () => true, authenticate: () => undefined },
      { authenticate: () => true },
    ]);
    const client = { id: 'c', username: undefined, protocolVersion: 4, clean: true, keepalive: 0, remoteAddress: '', remotePort: 0, listener: 'l' } as const;
    assert.equal(hooks.authorizePublish!(client, { topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false }), true);
    assert.equal(hooks.authorizeSubscribe!(client, { filter: 't', qos: 2 }), 1);
    const auth = hooks.authenticate!({
      clientId: 'c', username: undefined, password: undefined, protocolVersion: 4, remoteAddress: '', remotePort: 0, listener: 'l', allowAnonymous: true,
    });
    assert.equal(auth, true);
  });

  it('switches to a promise only from the first asynchronous answer on', async () => {
    const order: string[] = [];
    const hooks = composeHooks([
      { authorizePublish: () => (order.push('a'), true) },
      { authorizePublish: async () => (order.push('b'), true) },
      { authorizePublish: () => (order.push('c'), false) },
    ]);
    const client = { id: 'c', username: undefined, protocolVersion: 4, clean: true, keepalive: 0, remoteAddress: '', remotePort: 0, listener: 'l' } as const;
    const answer = hooks.authorizePublish!(client, { topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false });
    assert.ok(answer instanceof Promise);
    assert.equal(await answer, false);
    assert.deepEqual(order, ['a', 'b', 'c']);
  });
});
