import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import type { IClientOptions, MqttClient } from 'mqtt';
import { createEntry, createSecurity, formatEntry, MemoryAudit, type AuthenticationSource, type Security } from '../../src/security/index.js';
import { connackCode } from '../helpers/security.js';
import { RawClient, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { collect, rawPublish } from '../helpers/integration.js';
import { freePort, run } from '../helpers/process.js';

/**
 * Four holes in authentication, each tried from outside with real clients over real sockets:
 * passwords with trailing NUL bytes, an HTTP answer that has already expired, a failing
 * authentication service told apart from a refusal, and a token's clock tolerance used as a grace period.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const FAST = { logN: 10, r: 8, p: 1 };
const quiet = { info() {}, warn() {}, error() {} };
const now = (): number => Math.floor(Date.now() / 1000);
let counter = 0;
const uid = (prefix: string): string => `${prefix}-${(counter++).toString(36)}`;

interface Setup {
  tb: TestBroker;
  security: Security;
  close(): Promise<void>;
}

/** A broker whose listener refuses anonymous clients (unless told), with these providers and no guard (these tests count refusals, not bans). */
async function brokerWith(authentication: AuthenticationSource[], allowAnonymous = false): Promise<Setup> {
  const security = createSecurity({ authentication, audit: new MemoryAudit(), guard: false }, quiet);
  const tb = await startBroker({ hooks: security.hooks, authMethods: security.authMethods, listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous }] });
  return {
    tb, security, close: async () => {
      await tb.close();
      security.close();
    },
  };
}

/** The CONNACK code MQTT.js gets (0 = accepted; the accepted client is ended). */
async function code(url: string, options: IClientOptions): Promise<number> {
  const result = await connackCode(url, { clientId: uid('c'), ...options });
  await result.client?.endAsync(true);
  return result.code;
}

/** Time from CONNECT to CONNACK over a raw socket, and its return code. */
async function timedRefusal(port: number, username: string, password: Buffer): Promise<{ ms: number; code: number }> {
  const raw = await RawClient.connect(port);
  try {
    const t0 = process.hrtime.bigint();
    raw.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: uid('t'), username, password });
    const connack = (await raw.nextPacket(5000)) as { returnCode: number };
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: connack.returnCode };
  } finally {
    raw.destroy();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

describe('a password with trailing NUL bytes is refused (HMAC would pad it to the real one)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-nul-'));
  let moatFormat: Setup;
  let mosquittoFormat: Setup;

  before(async () => {
    const moatFile = path.join(dir, 'moat.pw');
    writeFileSync(moatFile, `${formatEntry(await createEntry('alice', Buffer.from('alice-pw'), FAST))}\n`);
    const mosquittoFile = path.join(dir, 'mosquitto.pw');
    const made = await run('mosquitto_passwd', ['-c', '-b', mosquittoFile, 'alice', 'alice-pw']);
    assert.equal(made.code, 0, made.stderr);
    assert.match(readFileSync(mosquittoFile, 'utf8'), /^alice:\$7\$/, 'mosquitto_passwd wrote a $7$ (PBKDF2-SHA512) entry');
    moatFormat = await brokerWith([{ type: 'passwordFile', path: moatFile, watch: false }]);
    mosquittoFormat = await brokerWith([{ type: 'passwordFile', path: mosquittoFile, watch: false }]);
  });
  after(async () => {
    await moatFormat.close();
    await mosquittoFormat.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [kind, setup] of [['Moat scrypt', () => moatFormat], ['Mosquitto $7$ PBKDF2-SHA512', () => mosquittoFormat]] as const) {
    it(`[MQTT-3.2.2-5] [MQTT-3.2.2-8] ${kind}: alice-pw\\0 and alice-pw\\0\\0 are refused (3.1.1: 4, MQTT 5: 0x86), alice-pw is accepted`, async () => {
      const url = setup().tb.url;
      for (const password of [Buffer.from('alice-pw\0'), Buffer.from('alice-pw\0\0')]) {
        const shown = JSON.stringify(password.toString('latin1'));
        assert.equal(await code(url, { username: 'alice', password }), 4, `3.1.1 with ${shown}`);
        assert.equal(await code(url, { username: 'alice', password, protocolVersion: 5 }), 0x86, `MQTT 5 with ${shown}`);
      }
      assert.equal(await code(url, { username: 'alice', password: Buffer.from('alice-pw') }), 0, '3.1.1 with the password');
      assert.equal(await code(url, { username: 'alice', password: Buffer.from('alice-pw'), protocolVersion: 5 }), 0, 'MQTT 5 with the password');
    });
  }

  it('a NUL password is refused after the same hashing as a wrong password (no faster answer to tell it by)', async () => {
    const file = path.join(dir, 'timing.pw');
    // Costlier than FAST, so that hashing dominates the round trip.
    writeFileSync(file, `${formatEntry(await createEntry('alice', Buffer.from('alice-pw'), { logN: 13, r: 8, p: 1 }))}\n`);
    const s = await brokerWith([{ type: 'passwordFile', path: file, watch: false }]);
    try {
      for (let i = 0; i < 3; i++) await timedRefusal(s.tb.port, 'alice', Buffer.from('warm-up'));
      const nul: number[] = [];
      const wrong: number[] = [];
      for (let i = 0; i < 16; i++) {
        const n = await timedRefusal(s.tb.port, 'alice', Buffer.from('alice-pw\0'));
        const w = await timedRefusal(s.tb.port, 'alice', Buffer.from('alice-px'));
        assert.deepEqual([n.code, w.code], [4, 4], 'the same refusal: CONNACK 4');
        nul.push(n.ms);
        wrong.push(w.ms);
      }
      const [mn, mw] = [median(nul), median(wrong)];
      const detail = `medians ${mn.toFixed(2)} ms (NUL) vs ${mw.toFixed(2)} ms (wrong password)`;
      assert.ok(mw > 2, `hashing takes measurable time, so the comparison means something: ${detail}`);
      // One-sided: the leak would be a NUL refused before hashing (a fraction of a millisecond); a slower median is the
      // machine's noise (other processes), not something a client could learn from.
      assert.ok(mn > 0.7 * mw, `the NUL refusal costs what a wrong password's does: ${detail}`);
    } finally {
      await s.close();
    }
  });

  it('moat passwd and createEntry refuse to make an entry for a password containing a NUL byte', async () => {
    await assert.rejects(createEntry('bob', Buffer.from('bob-pw\0'), FAST), { message: 'the password must not contain a NUL byte' });
    const file = path.join(dir, 'cli.pw');
    const r = await run(process.execPath, [MOAT, 'passwd', file, 'bob'], { input: 'bob-password\0\n', limitMs: 15_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /must not contain a NUL byte/);
  });
});

/** An HTTP authentication service in the test, its answers chosen by path. */
async function authService(): Promise<{ base: string; requests: number; close(): Promise<void> }> {
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      state.requests++;
      const request = JSON.parse(body) as { username: string | null; password: string | null };
      const json = (answer: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      switch (req.url) {
        case '/500': return void res.writeHead(500).end('oops');
        case '/garbage': return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"result": "maybe"}');
        case '/deny': return json({ result: 'deny' });
        case '/ignore': return json({ result: 'ignore' });
        case '/expiry':
          // "late" is allowed until 5 s ago; "fresh" for an hour; "watcher" without an end.
          if (request.username === 'late') return json({ result: 'allow', expires_at: now() - 5 });
          if (request.username === 'fresh') return json({ result: 'allow', expires_at: now() + 3600 });
          return json({ result: request.username === 'watcher' ? 'allow' : 'deny' });
        default: return void res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    get requests() {
      return state.requests;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('an HTTP answer whose expires_at has already passed is a refusal', () => {
  let service: Awaited<ReturnType<typeof authService>>;
  let s: Setup;
  let watcher: MqttClient;
  let received: ReturnType<typeof collect>;

  before(async () => {
    service = await authService();
    s = await brokerWith([{ type: 'http', url: `${service.base}/expiry`, timeoutMs: 1000 }]);
    const w = await connackCode(s.tb.url, { clientId: 'watcher', username: 'watcher', password: 'w', protocolVersion: 5 });
    assert.equal(w.code, 0);
    watcher = w.client!;
    received = collect(watcher);
    await watcher.subscribeAsync('late/#', { qos: 1 });
  });
  after(async () => {
    await watcher.endAsync(true);
    await s.close();
    await service.close();
  });

  it('[MQTT-3.2.2-8] [MQTT-3.1.4-5] [MQTT-3.1.4-6] CONNACK refused (3.1.1: 4, MQTT 5: 0x86), and nothing it publishes reaches a subscriber', async () => {
    assert.equal(await code(s.tb.url, { username: 'late', password: 'p' }), 4, '3.1.1');
    assert.equal(await code(s.tb.url, { username: 'late', password: 'p', protocolVersion: 5 }), 0x86, 'MQTT 5');
    // A client that does not wait for its CONNACK: QoS 1 publishes right behind the CONNECT, in one write.
    const raw = await RawClient.connect(s.tb.port);
    try {
      raw.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: uid('late'), username: 'late', password: Buffer.from('p') });
      rawPublish(raw, 'late/raw', 'must not arrive', 1, { packetId: 1 });
      rawPublish(raw, 'late/raw', 'must not arrive either', 1, { packetId: 2 });
      assert.deepEqual(await raw.nextPacket(5000), { type: 2, sessionPresent: false, returnCode: 4 });
      assert.ok(await raw.waitClosed(3000), 'the connection is closed after the refusal');
      assert.deepEqual(raw.packets, [], 'no PUBACK: the publishes after the refused CONNECT were not processed');
    } finally {
      raw.destroy();
    }
    // The same path with an expires_at ahead works, so the subscriber would have seen them.
    const fresh = await connackCode(s.tb.url, { clientId: uid('fresh'), username: 'fresh', password: 'p', protocolVersion: 5 });
    assert.equal(fresh.code, 0, 'an expires_at ahead is accepted');
    await fresh.client!.publishAsync('late/control', 'control', { qos: 1 });
    await fresh.client!.endAsync();
    await waitFor(() => received.length >= 1, 5000, 'the control message');
    assert.deepEqual(received.map((m) => m.payload), ['control'], 'only the accepted client\'s message was delivered');
  });
});

describe('a failing authentication service is told apart from a refusal (3.1.1: 3 / MQTT 5: 0x88 Server unavailable)', () => {
  let service: Awaited<ReturnType<typeof authService>>;
  let unreachable = '';
  const setups: Setup[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-failopen-'));
  let passwords = '';

  before(async () => {
    service = await authService();
    unreachable = `http://127.0.0.1:${await freePort()}/authn`; // bound a moment ago, now nothing listens there
    passwords = path.join(dir, 'pw');
    writeFileSync(passwords, `${formatEntry(await createEntry('alice', Buffer.from('alice-pw'), FAST))}\n`);
  });
  after(async () => {
    await Promise.all(setups.map((s) => s.close()));
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const http1 = async (url: string, failOpen: boolean, then: AuthenticationSource[] = []): Promise<Setup> => {
    const s = await brokerWith([{ type: 'http', url, timeoutMs: 1000, failOpen }, ...then]);
    setups.push(s);
    return s;
  };
  const codes = async (s: Setup, options: IClientOptions): Promise<[number, number]> =>
    [await code(s.tb.url, options), await code(s.tb.url, { ...options, protocolVersion: 5 })];

  for (const failOpen of [false, true]) {
    it(`[MQTT-3.2.2-8] fail_open: ${failOpen}, the only provider: a 500, an unreachable service or a malformed answer give 3 / 0x88; a deny gives 4 / 0x86`, async () => {
      const who = { username: 'ivan', password: 'ivan-pw' };
      for (const [what, url] of [['HTTP 500', `${service.base}/500`], ['unreachable', unreachable], ['malformed answer', `${service.base}/garbage`]]) {
        assert.deepEqual(await codes(await http1(url!, failOpen), who), [3, 0x88], what);
      }
      const asked = service.requests;
      assert.deepEqual(await codes(await http1(`${service.base}/deny`, failOpen), who), [4, 0x86], 'a deny is a refusal');
      assert.equal(service.requests, asked + 2, 'the deny came from the service');
    });
  }

  it('fail_open: true before a password file: the file\'s users still get in; nothing else is called bad credentials while the service is down', async () => {
    const file: AuthenticationSource = { type: 'passwordFile', path: passwords, watch: false };
    const down = await http1(`${service.base}/500`, true, [file]);
    assert.deepEqual(await codes(down, { username: 'alice', password: 'alice-pw' }), [0, 0], 'the password file vouches');
    // The service might have accepted these: a failure, and a wrong password and an unknown user still look alike.
    assert.deepEqual(await codes(down, { username: 'alice', password: 'wrong' }), [3, 0x88], 'wrong password');
    assert.deepEqual(await codes(down, { username: 'nobody', password: 'wrong' }), [3, 0x88], 'unknown user');
    assert.deepEqual(await codes(down, {}), [3, 0x88], 'no credentials on a listener without anonymous access');
    // With the service up and answering "ignore", the same attempts are refusals.
    const up = await http1(`${service.base}/ignore`, true, [file]);
    assert.deepEqual(await codes(up, { username: 'alice', password: 'wrong' }), [4, 0x86], 'wrong password, service up');
    assert.deepEqual(await codes(up, { username: 'nobody', password: 'wrong' }), [4, 0x86], 'unknown user, service up');
  });
});

describe('a JWT expiring while connected is disconnected at exp, not exp + clock_tolerance', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-jwt-exp-'));
  const secret = new Uint8Array(Buffer.alloc(32, 7));
  let s: Setup;
  const sign = (claims: Record<string, unknown>): Promise<string> => new SignJWT({ sub: 'tess', ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(secret);

  before(async () => {
    writeFileSync(path.join(dir, 'secret'), secret);
    s = await brokerWith([{ type: 'jwt', algorithms: ['HS256'], secretFile: path.join(dir, 'secret'), clockToleranceSeconds: 30 }]);
  });
  after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('[MQTT-3.14.2-1] a token expiring in 2 s with clock_tolerance 30: DISCONNECT 0xA0 (Maximum connect time) within ~2.5 s', async () => {
    const exp = now() + 2;
    const c = await connackCode(s.tb.url, { clientId: uid('tess'), username: 'tess', password: await sign({ exp }), protocolVersion: 5 });
    assert.equal(c.code, 0);
    try {
      const at = await new Promise<{ reason: number; time: number }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('still connected 5 s after exp')), (exp + 5) * 1000 - Date.now());
        c.client!.once('disconnect', (packet) => {
          clearTimeout(timer);
          resolve({ reason: packet.reasonCode ?? 0, time: Date.now() });
        });
      });
      assert.equal(at.reason, 0xa0);
      assert.ok(at.time >= exp * 1000, 'not before exp');
      assert.ok(at.time <= exp * 1000 + 700, `at exp, within one expiry sweep (${at.time - exp * 1000} ms after it)`);
    } finally {
      await c.client!.endAsync(true);
    }
  });

  it('the tolerance forgives skew at validation, but is no grace period: a token 10 s past exp is refused (3.1.1: 4, MQTT 5: 0x86), one with nbf 10 s ahead is accepted', async () => {
    const expired = await sign({ exp: now() - 10 });
    assert.equal(await code(s.tb.url, { username: 'tess', password: expired }), 4);
    assert.equal(await code(s.tb.url, { username: 'tess', password: expired, protocolVersion: 5 }), 0x86);
    assert.equal(await code(s.tb.url, { username: 'tess', password: await sign({ exp: now() + 600, nbf: now() + 10 }), protocolVersion: 5 }), 0);
  });
});
