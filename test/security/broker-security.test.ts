import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { IClientOptions, MqttClient, Packet } from 'mqtt';
import { createEntry, createSecurity, formatEntry, MemoryAudit, type AclRule, type Security } from '../../src/security/index.js';
import { connackCode } from '../helpers/security.js';
import { startBroker, waitFor, delay, type TestBroker } from '../helpers/broker.js';
import { collect, waitCount } from '../helpers/integration.js';

/** The security layer on a real broker with MQTT.js clients: password file, permissions, audit. */

const FAST = { logN: 10, r: 8, p: 1 };

/** Connects and resolves with the CONNACK's code (0 = accepted), closing refused clients. */

async function connected(url: string, options: IClientOptions): Promise<MqttClient> {
  const { code, client } = await connackCode(url, options);
  assert.equal(code, 0, `CONNACK for ${String(options.clientId)}`);
  return client!;
}

/** The SUBACK return codes as sent (MQTT.js turns failure codes into an error, so read the packet). */
function subackCodes(client: MqttClient, filters: string | string[], qos: 0 | 1 | 2 = 0): Promise<number[]> {
  return new Promise((resolve) => {
    const onPacket = (packet: Packet): void => {
      if (packet.cmd !== 'suback') return;
      client.off('packetreceive', onPacket);
      resolve((packet.granted as Array<number | { qos: number }>).map((g) => (typeof g === 'number' ? g : g.qos)));
    };
    client.on('packetreceive', onPacket);
    client.subscribe(filters, { qos }, () => {});
  });
}

const rule = (filter: string, actions: AclRule['actions'], extra: Partial<AclRule> = {}): AclRule => ({ filter, actions, effect: 'allow', ...extra });

describe('security on a running broker', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-sec-'));
  const passwords = path.join(dir, 'passwords');
  const audit = new MemoryAudit();
  let security: Security;
  let tb: TestBroker;
  const clients: MqttClient[] = [];
  const keep = (c: MqttClient): MqttClient => {
    clients.push(c);
    return c;
  };

  before(async () => {
    const entries = await Promise.all([
      createEntry('alice', Buffer.from('alice-pw'), FAST),
      createEntry('bob', Buffer.from('bob-pw'), FAST),
      createEntry('dev', Buffer.from('dev-pw'), FAST),
      createEntry('root', Buffer.from('root-pw'), FAST),
    ]);
    writeFileSync(passwords, `${entries.map(formatEntry).join('\n')}\n`);
    security = createSecurity({
      authentication: [{ type: 'passwordFile', path: passwords }],
      authorization: {
        rules: {
          roles: {
            reader: [{ filter: 'secret/#', actions: ['subscribe', 'publish'], effect: 'deny' }, rule('public/#', ['subscribe'])],
            writer: [rule('public/#', ['publish']), rule('secret/#', ['publish', 'subscribe'], { maxQos: 1 })],
            device: [rule('devices/%c/#', ['publish', 'subscribe'], { retain: false })],
            all: [rule('#', ['publish', 'subscribe'])],
          },
          users: { alice: { roles: ['writer'] }, bob: { roles: ['reader'] }, dev: { roles: ['device'] }, root: { roles: ['all'] } },
        },
      },
      audit,
    }, { info() {}, warn() {}, error() {} });
    tb = await startBroker({ hooks: security.hooks, listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await tb.close();
    security.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a user with the right password; wrong password and unknown user get the same refusal (3.1.1: 4, MQTT 5: 0x86)', async () => {
    keep(await connected(tb.url, { clientId: 'ok-1', username: 'alice', password: 'alice-pw' }));
    for (const protocolVersion of [4, 5] as const) {
      const expected = protocolVersion === 5 ? 0x86 : 4;
      const wrong = await connackCode(tb.url, { protocolVersion, clientId: `w${protocolVersion}`, username: 'alice', password: 'nope' });
      const unknown = await connackCode(tb.url, { protocolVersion, clientId: `u${protocolVersion}`, username: 'mallory', password: 'nope' });
      const noPassword = await connackCode(tb.url, { protocolVersion, clientId: `n${protocolVersion}`, username: 'alice' });
      assert.deepEqual([wrong.code, unknown.code, noPassword.code], [expected, expected, expected], `protocol ${protocolVersion}`);
    }
  });

  it('refuses a client without credentials when the listener does not allow anonymous access (3.1.1: 5, MQTT 5: 0x87)', async () => {
    assert.equal((await connackCode(tb.url, { clientId: 'anon-4' })).code, 5);
    assert.equal((await connackCode(tb.url, { clientId: 'anon-5', protocolVersion: 5 })).code, 0x87);
  });

  it('audits accepts and refusals with who, from where, how and why, and never the password', async () => {
    const accepted = audit.events.find((e) => e.event === 'connect.accepted' && e.clientId === 'ok-1');
    assert.deepEqual({ ...accepted, remoteAddress: undefined }, { event: 'connect.accepted', clientId: 'ok-1', username: 'alice', remoteAddress: undefined, listener: accepted!.listener, method: 'password' });
    assert.equal(accepted!.remoteAddress, '127.0.0.1');
    const refused = audit.events.filter((e) => e.event === 'connect.refused').map((e) => `${e.clientId}:${e.reason}`);
    assert.ok(refused.includes('w4:wrong password'), refused.join());
    assert.ok(refused.includes('u4:no provider accepted the credentials'), refused.join());
    const text = JSON.stringify(audit.events);
    for (const secret of ['alice-pw', 'nope']) assert.ok(!text.includes(secret), `the audit never holds "${secret}"`);
  });

  it('subscriptions are judged by the filter itself: # and a/+ beyond the grant are refused (3.1.1: 0x80, MQTT 5: 0x87)', async () => {
    const bob4 = keep(await connected(tb.url, { clientId: 'bob-4', username: 'bob', password: 'bob-pw' }));
    assert.deepEqual(await subackCodes(bob4, ['#', 'public/#', 'secret/x', '+/news', '$share/g/secret/#']), [0x80, 0, 0x80, 0x80, 0x80]);
    const bob5 = keep(await connected(tb.url, { clientId: 'bob-5', username: 'bob', password: 'bob-pw', protocolVersion: 5 }));
    assert.deepEqual(await subackCodes(bob5, ['#', 'public/#', '$share/g/secret/#']), [0x87, 0, 0x87]);
  });

  it('grants at most the rule\'s max QoS, and enforces publish permissions (MQTT 5: PUBACK 0x87, message dropped)', async () => {
    const alice = keep(await connected(tb.url, { clientId: 'alice-5', username: 'alice', password: 'alice-pw', protocolVersion: 5 }));
    const [grant] = await alice.subscribeAsync('secret/qos', { qos: 2 });
    assert.equal(grant!.qos, 1);
    const bob = keep(await connected(tb.url, { clientId: 'bob-pub', username: 'bob', password: 'bob-pw', protocolVersion: 5 }));
    const got = collect(alice);
    await assert.rejects(bob.publishAsync('secret/qos', 'forged', { qos: 1 }), (err: { code?: number }) => err.code === 0x87);
    await alice.publishAsync('secret/qos', 'real', { qos: 1 });
    await waitCount(got, 1);
    await delay(100);
    assert.deepEqual(got.map((m) => m.payload), ['real'], 'the refused message was not delivered');
  });

  it('no retained-message leakage: a retained secret never reaches a subscriber who may not read it', async () => {
    const alice = keep(await connected(tb.url, { clientId: 'alice-ret', username: 'alice', password: 'alice-pw' }));
    await alice.publishAsync('secret/plans', 'retained secret', { qos: 1, retain: true });
    await alice.publishAsync('public/news', 'retained news', { qos: 1, retain: true });
    const bob = keep(await connected(tb.url, { clientId: 'bob-ret', username: 'bob', password: 'bob-pw' }));
    const got = collect(bob);
    assert.deepEqual(await subackCodes(bob, ['public/#', 'secret/plans']), [0, 0x80]);
    await waitCount(got, 1);
    await delay(150);
    assert.deepEqual(got.map((m) => m.payload), ['retained news']);
  });

  it('%c cannot be widened: client ids like a/#, + or # get nothing from devices/%c/#', async () => {
    const own = keep(await connected(tb.url, { clientId: 'sensor1', username: 'dev', password: 'dev-pw' }));
    const [ok] = await own.subscribeAsync('devices/sensor1/#');
    assert.equal(ok!.qos, 0);
    for (const clientId of ['a/#', '+', '#', 'sensor1/+']) {
      const c = keep(await connected(tb.url, { clientId, username: 'dev', password: 'dev-pw' }));
      assert.deepEqual(await subackCodes(c, ['devices/sensor1/#', 'devices/+/#', `devices/${clientId}`]), [0x80, 0x80, 0x80], `client id ${clientId}`);
    }
  });

  it('a client may not publish to $SYS even with # permissions, and # does not reach $SYS', async () => {
    const root = keep(await connected(tb.url, { clientId: 'root-sys', username: 'root', password: 'root-pw', protocolVersion: 5 }));
    await root.publishAsync('any/topic', 'allowed', { qos: 1 });
    await assert.rejects(root.publishAsync('$SYS/broker/version', 'fake', { qos: 1 }), (err: { code?: number }) => err.code === 0x87);
    assert.deepEqual(await subackCodes(root, ['#', '$SYS/#']), [0, 0x87]);
  });

  it('a will the client may not publish is refused at CONNECT (3.1.1: 5, MQTT 5: 0x87)', async () => {
    const will = { topic: 'secret/will', payload: Buffer.from('x'), qos: 0 as const, retain: false };
    assert.equal((await connackCode(tb.url, { clientId: 'bob-will', username: 'bob', password: 'bob-pw', will })).code, 5);
    assert.equal((await connackCode(tb.url, { clientId: 'bob-will5', username: 'bob', password: 'bob-pw', protocolVersion: 5, will })).code, 0x87);
    assert.ok(audit.events.some((e) => e.event === 'will.refused' && e.clientId === 'bob-will' && e.topic === 'secret/will'), 'audited as a refused will');
  });

  it('topics are compared as sent: U+0000 is a protocol error (closed), and another Unicode form of an allowed topic is not allowed', async () => {
    // 'café' precomposed (NFC) is allowed through a rule; the decomposed form (NFD) is another topic.
    security.acl!.setRole('unicode', [rule('caf\u00e9/#', ['publish', 'subscribe'])]);
    security.acl!.setUser('bob', { roles: ['reader', 'unicode'] });
    try {
      const bob = keep(await connected(tb.url, { clientId: 'bob-uni', username: 'bob', password: 'bob-pw', protocolVersion: 5 }));
      await bob.publishAsync('caf\u00e9/menu', 'nfc', { qos: 1 });
      await assert.rejects(bob.publishAsync('cafe\u0301/menu', 'nfd', { qos: 1 }), (err: { code?: number }) => err.code === 0x87);
      assert.deepEqual(await subackCodes(bob, ['cafe\u0301/#', 'caf\u00e9/#']), [0x87, 0]);
      const closed = new Promise<void>((resolve) => bob.once('close', () => resolve()));
      bob.publish('caf\u00e9/\u0000', 'nul', { qos: 0 });
      await closed; // [MQTT-4.7.3-2]: U+0000 in a topic name is a malformed packet
    } finally {
      security.acl!.setUser('bob', { roles: ['reader'] });
    }
  });

  it('a permission revoked at runtime stops deliveries to connected subscribers at once', async () => {
    const reader = keep(await connected(tb.url, { clientId: 'bob-live', username: 'bob', password: 'bob-pw' }));
    const got = collect(reader);
    await reader.subscribeAsync('public/live');
    const alice = keep(await connected(tb.url, { clientId: 'alice-live', username: 'alice', password: 'alice-pw' }));
    await alice.publishAsync('public/live', 'before', { qos: 1 });
    await waitCount(got, 1);
    security.acl!.setRole('reader', [{ filter: '#', actions: ['subscribe', 'publish'], effect: 'deny' }]);
    try {
      await alice.publishAsync('public/live', 'after', { qos: 1 });
      await delay(200);
      assert.deepEqual(got.map((m) => m.payload), ['before']);
    } finally {
      security.acl!.setRole('reader', [{ filter: 'secret/#', actions: ['subscribe', 'publish'], effect: 'deny' }, rule('public/#', ['subscribe'])]);
    }
  });

  it('the password file is read again when replaced: a new user gets in, connected clients stay', async () => {
    const alice = keep(await connected(tb.url, { clientId: 'alice-stays', username: 'alice', password: 'alice-pw' }));
    const entries = await Promise.all([createEntry('alice', Buffer.from('alice-pw'), FAST), createEntry('carol', Buffer.from('carol-pw'), FAST)]);
    const temp = `${passwords}.tmp`;
    writeFileSync(temp, `${entries.map(formatEntry).join('\n')}\n`);
    renameSync(temp, passwords);
    await waitFor(() => security.passwordFiles[0]!.get('carol') !== undefined, 3000, 'the reload');
    keep(await connected(tb.url, { clientId: 'carol-1', username: 'carol', password: 'carol-pw' }));
    assert.equal((await connackCode(tb.url, { clientId: 'bob-gone', username: 'bob', password: 'bob-pw' })).code, 4, 'bob was removed');
    assert.equal(alice.connected, true);
    await alice.publishAsync('public/x', 'still connected', { qos: 1 });
  });

  it('unauthorized_publish: disconnect closes a client that publishes where it may not (MQTT 5: DISCONNECT 0x87)', async () => {
    const strict = await startBroker({ hooks: security.hooks, unauthorizedPublish: 'disconnect' });
    try {
      const alice = await connected(strict.url, { clientId: 'alice-strict', username: 'alice', password: 'alice-pw', protocolVersion: 5 });
      const reason = new Promise<number>((resolve) => alice.once('disconnect', (p) => resolve(p.reasonCode ?? 0)));
      alice.publish('elsewhere/x', 'no', { qos: 0 });
      assert.equal(await reason, 0x87);
      await alice.endAsync(true);
    } finally {
      await strict.close();
    }
  });
});
