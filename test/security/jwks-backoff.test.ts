import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { MqttClient } from 'mqtt';
import { createSecurity, MemoryAudit, type JwtProviderOptions } from '../../src/security/index.js';
import { connackCode } from '../helpers/security.js';
import { delay, startBroker, type TestBroker } from '../helpers/broker.js';

/**
 * A JWKS URL that fails (HTTP 500, or a server that closes the connection) must not make every CONNECT fetch
 * it again: one fetch in flight for all, none during a backoff that doubles per failure, the last good key
 * set still serving. A real HTTP server counts the fetches; real MQTT.js clients connect to a real broker.
 */

const MQTT5_SERVER_UNAVAILABLE = 0x88;
const MQTT311_SERVER_UNAVAILABLE = 3;
const MQTT5_BAD_CREDENTIALS = 0x86;

type Mode = 'ok' | '500' | 'close';

/** Serves `keys` as a JWKS, or answers 500, or closes the socket; counts every request, answers after `latencyMs`. */
class JwksServer {
  mode: Mode = 'ok';
  keys: JWK[] = [];
  fetches = 0;
  latencyMs = 0;
  private readonly server = http.createServer((req, res) => {
    this.fetches++;
    const mode = this.mode;
    setTimeout(() => {
      if (mode === 'close') req.socket.destroy();
      else if (mode === '500') res.writeHead(500, { 'content-type': 'text/plain' }).end('identity provider down');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
    }, this.latencyMs);
  });

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}/jwks.json`;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

interface Signer {
  jwk: JWK;
  sign(sub: string): Promise<string>;
}

async function signer(kid: string): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return {
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256' },
    sign: (sub) => new SignJWT({ sub }).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('1h').sign(privateKey),
  };
}

async function brokerWith(jwks: JwksServer, timing: Partial<JwtProviderOptions>): Promise<TestBroker> {
  const security = createSecurity({
    authentication: [{ type: 'jwt', algorithms: ['ES256'], jwksUrl: jwks.url, ...timing }],
    audit: new MemoryAudit(),
    // The guard would count the refusals of 127.0.0.1 (it allows it by default; off, to test only the key set).
    guard: false,
  }, { info() {}, warn() {}, error() {} });
  return startBroker({ hooks: security.hooks, listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
}

describe('a failing JWKS URL is fetched once per backoff, whatever the CONNECTs', () => {
  const clients: MqttClient[] = [];
  let clientSeq = 0;
  let k1: Signer;
  let k2: Signer;
  before(async () => {
    k1 = await signer('k1');
    k2 = await signer('k2');
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  });

  /** The CONNACK codes of `n` clients connecting at once with `token`, half MQTT 5, half 3.1.1 (v5 first). */
  const connectMany = async (tb: TestBroker, n: number, token: string): Promise<{ v5: number[]; v311: number[] }> => {
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => {
      const protocolVersion = i % 2 === 0 ? 5 : 4;
      return connackCode(tb.url, { clientId: `jwks-${++clientSeq}`, username: 'dev', password: token, protocolVersion })
        .then(({ code, client }) => {
          if (client) clients.push(client);
          return { protocolVersion, code };
        });
    }));
    return {
      v5: answers.filter((a) => a.protocolVersion === 5).map((a) => a.code),
      v311: answers.filter((a) => a.protocolVersion === 4).map((a) => a.code),
    };
  };
  const all = (n: number, code: number): number[] => Array.from({ length: n }, () => code);
  const unavailable = { v5: all(5, MQTT5_SERVER_UNAVAILABLE), v311: all(5, MQTT311_SERVER_UNAVAILABLE) };
  const accepted = { v5: all(5, 0), v311: all(5, 0) };
  const one = async (tb: TestBroker, token: string): Promise<number> =>
    (await connectMany(tb, 1, token)).v5[0]!;

  it('HTTP 500 from the start: 10 CONNECTs at once fetch once, 10 more during the backoff none, all Server unavailable (0x88 / 3); after recovery and the backoff, one fetch and accepted', async () => {
    const jwks = new JwksServer();
    await jwks.start();
    jwks.keys = [k1.jwk];
    jwks.mode = '500';
    // The answer takes a while, so the ten CONNECTs are all waiting on the one fetch in flight.
    jwks.latencyMs = 200;
    const tb = await brokerWith(jwks, { jwksBackoffMs: 2000 });
    try {
      const token = await k1.sign('dev');
      assert.deepEqual(await connectMany(tb, 10, token), unavailable, 'first ten: a service failure, not bad credentials');
      assert.equal(jwks.fetches, 1, 'ten CONNECTs at once share one fetch');
      assert.deepEqual(await connectMany(tb, 10, token), unavailable, 'ten more during the backoff');
      assert.equal(jwks.fetches, 1, 'no fetch during the backoff');

      jwks.mode = 'ok';
      await delay(2300);
      assert.equal(await one(tb, token), 0, 'accepted once the server is back and the backoff has passed');
      assert.equal(jwks.fetches, 2, 'one fetch after the backoff');
      assert.deepEqual(await connectMany(tb, 10, token), accepted, 'the fetched set is cached');
      assert.equal(jwks.fetches, 2);
    } finally {
      await tb.close();
      await jwks.close();
    }
  });

  it('a server that closes the connection: the backoff doubles per failure up to its maximum, and a success resets it', async () => {
    const jwks = new JwksServer();
    await jwks.start();
    jwks.keys = [k1.jwk];
    jwks.mode = 'close';
    const tb = await brokerWith(jwks, { jwksBackoffMs: 600, jwksBackoffMaxMs: 1200, jwksCooldownMs: 300 });
    try {
      const token = await k1.sign('dev');
      assert.deepEqual(await connectMany(tb, 10, token), unavailable, 'unreachable: a service failure');
      assert.equal(jwks.fetches, 1, 'failure 1 (next try after 600 ms)');
      await delay(900);
      assert.equal(await one(tb, token), MQTT5_SERVER_UNAVAILABLE);
      assert.equal(jwks.fetches, 2, 'failure 2, after the first delay (next try after 1200 ms)');
      await delay(700);
      assert.deepEqual(await connectMany(tb, 10, token), unavailable);
      assert.equal(jwks.fetches, 2, 'the delay has doubled: no fetch 700 ms after the second failure');
      await delay(800);
      assert.equal(await one(tb, token), MQTT5_SERVER_UNAVAILABLE);
      assert.equal(jwks.fetches, 3, 'failure 3, after the doubled delay (next try after 1200 ms: the maximum, not 2400)');
      await delay(1500);
      assert.equal(await one(tb, token), MQTT5_SERVER_UNAVAILABLE);
      assert.equal(jwks.fetches, 4, 'failure 4: the delay stayed at its maximum');

      jwks.mode = 'ok';
      await delay(1500);
      assert.equal(await one(tb, token), 0, 'the server is back: accepted');
      assert.equal(jwks.fetches, 5);

      // After the cooldown, a key the set lacks (a rotation) fetches; it fails, and the delay is the first one again.
      jwks.mode = 'close';
      await delay(400);
      const rotated = await k2.sign('dev');
      assert.equal(await one(tb, rotated), MQTT5_SERVER_UNAVAILABLE, 'a key the set lacks, and the set cannot be fetched: a service failure');
      assert.equal(jwks.fetches, 6, 'failure 1 after a success (next try after 600 ms)');
      assert.equal(await one(tb, token), 0, 'a key of the last good set still verifies');
      await delay(900);
      assert.equal(await one(tb, rotated), MQTT5_SERVER_UNAVAILABLE);
      assert.equal(jwks.fetches, 7, 'the success reset the backoff to its first delay');
    } finally {
      await tb.close();
      await jwks.close();
    }
  });

  it('the last good key set keeps verifying while the URL fails, past its age; a key it lacks is a service failure; a rotation refetches once per cooldown', async () => {
    const jwks = new JwksServer();
    await jwks.start();
    jwks.keys = [k1.jwk];
    const tb = await brokerWith(jwks, { jwksCacheMaxAgeMs: 800, jwksCooldownMs: 800, jwksBackoffMs: 2000 });
    try {
      const token = await k1.sign('dev');
      const rotated = await k2.sign('dev');
      assert.equal(await one(tb, token), 0);
      assert.equal(jwks.fetches, 1);
      assert.deepEqual(await connectMany(tb, 10, rotated), { v5: all(5, MQTT5_BAD_CREDENTIALS), v311: all(5, 4) },
        'an unknown key while the set is younger than the cooldown: bad credentials, no fetch');
      assert.equal(jwks.fetches, 1);

      jwks.mode = '500';
      await delay(1000);
      // The set is past its age: one refetch for all, which fails; the keys it had still verify.
      assert.deepEqual(await connectMany(tb, 10, token), accepted, 'tokens of the last good set verify while the server fails');
      assert.equal(jwks.fetches, 2, 'one fetch for ten CONNECTs');
      assert.deepEqual(await connectMany(tb, 10, rotated), unavailable, 'a key the last good set lacks while backing off: a service failure');
      assert.deepEqual(await connectMany(tb, 10, token), accepted);
      assert.equal(jwks.fetches, 2, 'no fetch during the backoff');

      // The provider is back with the rotated key: after the backoff, one fetch, and both keys verify.
      jwks.mode = 'ok';
      jwks.keys = [k1.jwk, k2.jwk];
      await delay(2300);
      assert.deepEqual(await connectMany(tb, 10, rotated), accepted, 'the rotated key, once the set could be fetched');
      assert.equal(jwks.fetches, 3, 'one fetch for ten CONNECTs');
      assert.equal(await one(tb, token), 0);
      assert.equal(jwks.fetches, 3);
    } finally {
      await tb.close();
      await jwks.close();
    }
  });
});
