import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { AuthPacket, ConnackPacket, ProtocolVersion } from '../../src/protocol/index.js';
import { createEntry, formatEntry, SCRAM_METHOD, type GuardEvent } from '../../src/security/index.js';
import { createServer, type MoatServer } from '../../src/server/index.js';
import { RawClient } from '../helpers/broker.js';
import { freePort } from '../helpers/process.js';
import { ScramClient } from '../helpers/scram.js';
import { expectType, sendConnect, T } from '../helpers/v5.js';

/**
 * What the guard detects beyond one address, against a real broker and clients from many loopback addresses:
 * a client identifier guessed at from many addresses, wrong passwords hidden by a fail-open outage, and SCRAM
 * guesses spread over many addresses.
 */

type Outcome = { code: number | 'closed'; ms: number };

const ofType = <K extends GuardEvent['type']>(events: GuardEvent[], type: K): Array<Extract<GuardEvent, { type: K }>> =>
  events.filter((e): e is Extract<GuardEvent, { type: K }> => e.type === type);

/** A CONNECT from `from` (a loopback address): its CONNACK code, or 'closed' when closed unanswered, and how long the answer took. */
async function connectFrom(port: number, from: string, c: { clientId: string; username?: string; password?: string; version?: ProtocolVersion }): Promise<Outcome> {
  const version = c.version ?? 4;
  const started = Date.now();
  let raw: RawClient | undefined;
  try {
    raw = await RawClient.connect(port, version, from);
    raw.send({
      type: T.CONNECT, protocolName: 'MQTT', protocolVersion: version, clean: true, keepalive: 0, clientId: c.clientId,
      ...(c.username !== undefined && { username: c.username }), ...(c.password !== undefined && { password: Buffer.from(c.password) }),
    }, version);
    const connack = await raw.nextPacket(12_000);
    assert.equal(connack.type, T.CONNACK);
    return { code: (connack as ConnackPacket).returnCode, ms: Date.now() - started };
  } catch {
    return { code: 'closed', ms: Date.now() - started };
  } finally {
    raw?.destroy();
  }
}

/** A whole SCRAM-SHA-256 exchange from `from`, the user named only in the exchange (not in the CONNECT): the final CONNACK code and its time. */
async function scramFrom(port: number, from: string, clientId: string, username: string, password: string): Promise<Outcome> {
  const started = Date.now();
  const raw = await RawClient.connect(port, 5, from);
  try {
    const client = new ScramClient(username, password);
    sendConnect(raw, { clientId, properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.first()) } });
    const challenge = await expectType<AuthPacket>(raw, T.AUTH);
    const serverFirst = challenge.properties!.authenticationData!.toString();
    raw.send({ type: T.AUTH, reasonCode: 0x18, properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.final(serverFirst)) } }, 5);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK, 12_000);
    return { code: connack.returnCode, ms: Date.now() - started };
  } finally {
    raw.destroy();
  }
}

describe('guard: guesses spread over many addresses, and refusals an outage conceals', () => {
  let dir: string;
  const servers: MoatServer[] = [];
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-guard-detect-'));
    const entries = await Promise.all(['alice', 'fay', 'gus'].map((u) => createEntry(u, Buffer.from(`${u}-password`), { logN: 10, r: 8, p: 1 })));
    writeFileSync(path.join(dir, 'users.pw'), `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A broker from a YAML configuration with the password file (and `authentication` before it, if given). */
  async function start(name: string, guard: string, authentication = ''): Promise<{ server: MoatServer; port: number; events: GuardEvent[] }> {
    const port = await freePort();
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nstore:\n  type: memory\nauthentication:\n${authentication}  - type: password_file\n    path: users.pw\n    watch: false\n${guard}`);
    const server = createServer({ configFile: file });
    server.logger.level = 'silent';
    await server.listen();
    servers.push(server);
    const events: GuardEvent[] = [];
    server.security.guard!.on('event', (e) => events.push(e));
    return { server, port, events };
  }

  it('one client identifier guessed at from 15 addresses is slowed (threshold 5: 1 s an answer); its owner\'s address, an allow-listed one and other identifiers are served at once', async () => {
    const { port, events } = await start('client-id', 'guard:\n  allow: [127.0.8.0/24]\n  failures: { max_per_address: 10, max_per_username: 1000, max_per_client_id: 5 }\n');
    // The device has connected from its address before.
    assert.equal((await connectFrom(port, '127.0.7.200', { clientId: 'sensor-7', username: 'alice', password: 'alice-password' })).code, 0);
    // 15 addresses, one guess each (no address reaches its own threshold), each under another user name.
    for (let i = 1; i <= 15; i++) {
      assert.equal((await connectFrom(port, `127.0.7.${i}`, { clientId: 'sensor-7', username: `guess-${i}`, password: 'wrong' })).code, 4);
    }
    const late = await connectFrom(port, '127.0.7.100', { clientId: 'sensor-7', username: 'alice', password: 'wrong' });
    assert.equal(late.code, 4);
    assert.ok(late.ms >= 950, `after 15 failures for "sensor-7" (threshold 5) its answer waits 1 s (${late.ms} ms)`);
    const owner = await connectFrom(port, '127.0.7.200', { clientId: 'sensor-7', username: 'alice', password: 'alice-password' });
    assert.equal(owner.code, 0);
    assert.ok(owner.ms < 500, `the owner, from the address it authenticated from, is not delayed (${owner.ms} ms)`);
    const allowed = await connectFrom(port, '127.0.8.1', { clientId: 'sensor-7', username: 'alice', password: 'alice-password' });
    assert.equal(allowed.code, 0);
    assert.ok(allowed.ms < 500, `an allow-listed address is not delayed (${allowed.ms} ms)`);
    const other = await connectFrom(port, '127.0.7.101', { clientId: 'sensor-8', username: 'alice', password: 'wrong' });
    assert.equal(other.code, 4);
    assert.ok(other.ms < 500, `another client identifier is not slowed (${other.ms} ms)`);
    assert.deepEqual(ofType(events, 'slowed'), [{ type: 'slowed', name: 'clientId', value: 'sensor-7', failures: 5 }]);
  });

  it('fail_open HTTP service down (500) before a password file: a wrong password is answered 0x88 as documented, yet counted, so the address is banned; an unknown user is not counted', async () => {
    let asked = 0;
    const service = http.createServer((_req, res) => {
      asked++;
      res.writeHead(500).end();
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(service.address() as AddressInfo).port}/authn`;
      const { server, port, events } = await start('fail-open', 'guard:\n  allow: []\n  failures: { max_per_address: 3 }\n',
        `  - type: http\n    url: ${url}\n    fail_open: true\n    timeout_ms: 1000\n`);
      for (let n = 0; n < 3; n++) {
        assert.equal((await connectFrom(port, '127.0.9.1', { clientId: `wrong-${n}`, username: 'alice', password: 'wrong', version: 5 })).code, 0x88, 'the client is told: server unavailable');
      }
      assert.equal((await connectFrom(port, '127.0.9.1', { clientId: 'wrong-3', username: 'alice', password: 'alice-password', version: 5 })).code, 'closed', 'the three refusals banned the address');
      assert.deepEqual(ofType(events, 'banned').map((e) => [e.rule, e.ban.value]), [['failed-authentication', '127.0.9.1']]);
      // The password file does not know "nobody": only the service could have judged, so nothing is counted.
      for (let n = 0; n < 5; n++) {
        assert.equal((await connectFrom(port, '127.0.9.2', { clientId: `nobody-${n}`, username: 'nobody', password: 'x', version: 5 })).code, 0x88);
      }
      assert.equal(server.security.guard!.counters.authenticationFailures, 3);
      assert.equal((await connectFrom(port, '127.0.9.3', { clientId: 'alice', username: 'alice', password: 'alice-password', version: 5 })).code, 0, 'the file\'s users still get in');
      assert.ok(asked >= 9, `the service was asked each time (${asked})`);
    } finally {
      await new Promise((resolve) => service.close(resolve));
    }
  });

  it('SCRAM guesses from 15 addresses are slowed per user name (named only in the exchange) and per client identifier; the owners are served at once', async () => {
    const { port, events } = await start('scram', 'guard:\n  allow: []\n  failures: { max_per_address: 10, max_per_username: 5, max_per_client_id: 5 }\n');
    // One user name: fay's phone has authenticated from its address before.
    assert.equal((await scramFrom(port, '127.0.10.200', 'fay-phone', 'fay', 'fay-password')).code, 0);
    for (let i = 1; i <= 15; i++) assert.equal((await scramFrom(port, `127.0.10.${i}`, `guess-${i}`, 'fay', `guess-${i}`)).code, 0x86);
    const lateUser = await scramFrom(port, '127.0.10.100', 'guess-late', 'fay', 'guess-late');
    assert.equal(lateUser.code, 0x86);
    assert.ok(lateUser.ms >= 950, `after 15 failures for "fay" (threshold 5) the outcome waits 1 s (${lateUser.ms} ms)`);
    const fay = await scramFrom(port, '127.0.10.200', 'fay-phone', 'fay', 'fay-password');
    assert.equal(fay.code, 0);
    assert.ok(fay.ms < 500, `fay, from her usual address, is not delayed (${fay.ms} ms)`);

    // One client identifier, under made-up user names: gus's gate has authenticated from its address before.
    assert.equal((await scramFrom(port, '127.0.11.200', 'gate-1', 'gus', 'gus-password')).code, 0);
    for (let i = 1; i <= 15; i++) assert.equal((await scramFrom(port, `127.0.11.${i}`, 'gate-1', `stranger-${i}`, 'x')).code, 0x86);
    const lateId = await scramFrom(port, '127.0.11.100', 'gate-1', 'stranger-late', 'x');
    assert.equal(lateId.code, 0x86);
    assert.ok(lateId.ms >= 950, `after 15 failures for "gate-1" the outcome waits 1 s (${lateId.ms} ms)`);
    const gus = await scramFrom(port, '127.0.11.200', 'gate-1', 'gus', 'gus-password');
    assert.equal(gus.code, 0);
    assert.ok(gus.ms < 500, `the gate, from its usual address, is not delayed (${gus.ms} ms)`);
    assert.deepEqual(ofType(events, 'slowed').map((e) => `${e.name} ${e.value}`), ['username fay', 'clientId gate-1']);
  });
});
