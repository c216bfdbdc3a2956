/**
 * MQTT 5 enhanced authentication (section 4.12) over real TCP with a toy
 * challenge-response method defined here: 'TEST-CR' — the server sends a
 * random nonce in AUTH 0x18, the client answers HMAC-SHA256(secret, nonce).
 * Covers CONNECT-time exchanges, refusals, protocol errors during the exchange,
 * re-authentication, and asynchronous methods.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AuthenticateRequest } from '../../../src/broker/hooks.js';
import type { AuthExchange, AuthMethod, AuthStep } from '../../../src/broker/enhanced-auth.js';
import type { AuthPacket, ConnackPacket } from '../../../src/protocol/index.js';
import { delay, RawClient, startBroker, type TestBroker } from '../../helpers/broker.js';
import {
  connectedV5, connectV5, expectDisconnect, expectNothing, expectPublish, expectRefusal, expectType, next, ping,
  publish, publishAcked, sendConnect, show, subscribe, T, trackRaw, uid,
} from '../../helpers/v5.js';

const SECRET = 'open sesame';
const hmac = (nonce: Buffer, secret = SECRET): Buffer => createHmac('sha256', secret).update(nonce).digest();

interface Begun {
  method: string;
  request: AuthenticateRequest;
  reauthenticate: boolean;
}

/**
 * The toy challenge-response method. `failReason` is what a wrong answer
 * yields; `async` makes every step a Promise settled a little later.
 */
function challengeResponse(
  name: string, log: Begun[], o: { failReason?: 'badCredentials' | 'notAuthorized'; async?: boolean } = {},
): AuthMethod {
  return {
    begin(request, reauthenticate): AuthExchange {
      log.push({ method: name, request, reauthenticate });
      const nonce = randomBytes(16);
      let challenged = false;
      const decide = (data: Buffer | undefined): AuthStep => {
        if (!challenged) {
          challenged = true;
          return { result: 'continue', data: nonce };
        }
        if (data !== undefined && data.equals(hmac(nonce))) return { result: 'success', data: Buffer.from('welcome') };
        return o.failReason ? { result: 'failure', reason: o.failReason } : { result: 'failure' };
      };
      return {
        step: (data) => (o.async ? delay(30).then(() => decide(data)) : decide(data)),
      };
    },
  };
}

const track = trackRaw();

describe('MQTT 5 enhanced authentication', () => {
  let tb: TestBroker;
  const begun: Begun[] = [];

  before(async () => {
    tb = await startBroker({
      authMethods: {
        'TEST-CR': challengeResponse('TEST-CR', begun, { failReason: 'badCredentials' }),
        'TEST-CR-NA': challengeResponse('TEST-CR-NA', begun, { failReason: 'notAuthorized' }),
        'TEST-CR-ASYNC': challengeResponse('TEST-CR-ASYNC', begun, { failReason: 'notAuthorized', async: true }),
        'TEST-ONESHOT': {
          begin: () => ({
            step: (data) => (data?.toString() === SECRET ? { result: 'success' } : { result: 'failure', reason: 'notAuthorized' }),
          }),
        },
        'TEST-THROWS': {
          begin: () => ({
            step: () => {
              throw new Error('method broke');
            },
          }),
        },
        'TEST-REJECTS': {
          begin: () => ({ step: () => Promise.reject(new Error('method broke asynchronously')) }),
        },
      },
    });
  });
  after(() => tb.close());

  /** Sends CONNECT with `method` and returns the server's first packet (an AUTH challenge, normally). */
  async function startExchange(method: string, o: { clientId?: string; clean?: boolean; expiry?: number } = {}) {
    const raw = track(await RawClient.connect(tb.port, 5));
    sendConnect(raw, {
      clientId: o.clientId ?? uid('auth'),
      clean: o.clean ?? true,
      properties: {
        authenticationMethod: method,
        authenticationData: Buffer.from('hello'),
        ...(o.expiry !== undefined ? { sessionExpiryInterval: o.expiry } : {}),
      },
    });
    const challenge = await expectType<AuthPacket>(raw, T.AUTH);
    return { raw, challenge };
  }

  function answer(raw: RawClient, method: string, challenge: AuthPacket, correct = true): void {
    const nonce = challenge.properties?.authenticationData ?? Buffer.alloc(0);
    raw.send({
      type: T.AUTH,
      reasonCode: 0x18,
      properties: { authenticationMethod: method, authenticationData: correct ? hmac(nonce) : hmac(nonce, 'wrong secret') },
    }, 5);
  }

  /** A client fully authenticated with `method`. */
  async function authenticated(method: string, clientId = uid('auth')): Promise<RawClient> {
    const { raw, challenge } = await startExchange(method, { clientId });
    answer(raw, method, challenge);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    assert.equal(connack.returnCode, 0x00, `CONNACK ${show(connack)}`);
    return raw;
  }

  it('[MQTT-4.12.0-2] [MQTT-4.12.0-5] challenge-response succeeds: AUTH 0x18 with the nonce, then CONNACK 0x00 carrying the Authentication Method', async () => {
    const clientId = uid('cr-ok');
    const before = begun.length;
    const { raw, challenge } = await startExchange('TEST-CR', { clientId });
    assert.equal(challenge.reasonCode, 0x18, 'Continue authentication [MQTT-4.12.0-2]');
    assert.equal(challenge.properties?.authenticationMethod, 'TEST-CR', 'same Authentication Method [MQTT-4.12.0-5]');
    assert.equal(challenge.properties?.authenticationData?.length, 16, 'the nonce');
    assert.deepEqual(begun.slice(before).map((b) => [b.method, b.request.clientId, b.reauthenticate]), [['TEST-CR', clientId, false]]);

    answer(raw, 'TEST-CR', challenge);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    assert.equal(connack.returnCode, 0x00, `CONNACK ${show(connack)}`);
    assert.equal(connack.properties?.authenticationMethod, 'TEST-CR', 'Authentication Method in the successful CONNACK [MQTT-4.12.0-5]');
    assert.deepEqual(connack.properties?.authenticationData, Buffer.from('welcome'), 'the method\'s final data');

    // The connection works.
    await subscribe(raw, `auth/${clientId}`, 1);
    const { raw: pub } = await connectedV5(tb.port);
    track(pub);
    await publishAcked(pub, `auth/${clientId}`, 'after-auth');
    assert.equal((await expectPublish(raw)).payload.toString(), 'after-auth');
  });

  it('[MQTT-4.12.0-5] a one-step method: CONNACK 0x00 with the Authentication Method and no AUTH', async () => {
    const raw = track(await RawClient.connect(tb.port, 5));
    sendConnect(raw, { properties: { authenticationMethod: 'TEST-ONESHOT', authenticationData: Buffer.from(SECRET) } });
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    assert.equal(connack.returnCode, 0x00);
    assert.equal(connack.properties?.authenticationMethod, 'TEST-ONESHOT');
  });

  it('[MQTT-4.12.0-4] a wrong answer (method fails with bad credentials): CONNACK 0x86 and the connection is closed', async () => {
    const clientId = uid('cr-bad');
    const { raw, challenge } = await startExchange('TEST-CR', { clientId });
    answer(raw, 'TEST-CR', challenge, false);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    await expectRefusal(raw, connack, 0x86);
    assert.equal(tb.broker.sessions.has(clientId), false, 'no session for a refused client');
  });

  it('[MQTT-4.12.0-4] a wrong answer (method fails as not authorized): CONNACK 0x87 and the connection is closed', async () => {
    const { raw, challenge } = await startExchange('TEST-CR-NA');
    answer(raw, 'TEST-CR-NA', challenge, false);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    await expectRefusal(raw, connack, 0x87);
  });

  it('[MQTT-4.12.0-1] an unknown Authentication Method: CONNACK 0x8C and the connection is closed', async () => {
    const { raw, connack } = await connectV5(tb.port, { properties: { authenticationMethod: 'SCRAM-SHA-1' } });
    track(raw);
    await expectRefusal(raw, connack, 0x8c);
  });

  it('[MQTT-3.1.2-30] [MQTT-3.14.0-1] a packet other than AUTH during the exchange: closed, not routed, no successful CONNACK, no DISCONNECT', async () => {
    const topic = `auth/sneak/${uid('t')}`;
    const { raw: sub } = await connectedV5(tb.port);
    track(sub);
    await subscribe(sub, topic, 0);
    const { raw } = await startExchange('TEST-CR');
    publish(raw, topic, 'sneaked-in', 0);
    assert.equal(await raw.waitClosed(3000), true, 'the connection is closed');
    for (const p of raw.packets) {
      assert.notEqual(p.type, T.DISCONNECT, `no DISCONNECT before a successful CONNACK [MQTT-3.14.0-1]: ${show(p)}`);
      if (p.type === T.CONNACK) assert.ok(p.returnCode >= 0x80, `only a refusal CONNACK: ${show(p)}`);
    }
    await expectNothing(sub, 300, 'the PUBLISH sent before CONNACK is not routed');
  });

  it('[MQTT-3.1.2-30] a PINGREQ during the exchange: closed without PINGRESP', async () => {
    const { raw } = await startExchange('TEST-CR');
    raw.send({ type: T.PINGREQ }, 5);
    assert.equal(await raw.waitClosed(3000), true, 'the connection is closed');
    assert.ok(raw.packets.every((p) => p.type !== T.PINGRESP), `no PINGRESP: ${raw.packets.map(show).join(', ')}`);
  });

  it('[MQTT-4.12.0-5] [MQTT-4.13.1-1] AUTH with a different Authentication Method during the exchange: CONNACK 0x82 and closed', async () => {
    const { raw, challenge } = await startExchange('TEST-CR');
    answer(raw, 'TEST-CR-NA', challenge);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    await expectRefusal(raw, connack, 0x82);
  });

  it('[MQTT-4.12.0-3] AUTH with reason 0x19 instead of 0x18 during the exchange: CONNACK 0x82 and closed', async () => {
    const { raw, challenge } = await startExchange('TEST-CR');
    const nonce = challenge.properties?.authenticationData ?? Buffer.alloc(0);
    raw.send({ type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CR', authenticationData: hmac(nonce) } }, 5);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    await expectRefusal(raw, connack, 0x82);
  });

  it('[MQTT-4.12.0-4] a method that throws: refusal CONNACK (0x80 or above) and the connection is closed', async () => {
    const raw = track(await RawClient.connect(tb.port, 5));
    sendConnect(raw, { properties: { authenticationMethod: 'TEST-THROWS' } });
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    assert.ok(connack.returnCode >= 0x80, `refusal: ${show(connack)}`);
    assert.equal(await raw.waitClosed(3000), true);
  });

  it('[MQTT-4.12.0-4] a method whose Promise rejects: refusal CONNACK (0x80 or above) and the connection is closed', async () => {
    const raw = track(await RawClient.connect(tb.port, 5));
    sendConnect(raw, { properties: { authenticationMethod: 'TEST-REJECTS' } });
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    assert.ok(connack.returnCode >= 0x80, `refusal: ${show(connack)}`);
    assert.equal(await raw.waitClosed(3000), true);
  });

  it('[MQTT-4.12.1-1] [MQTT-4.12.0-5] re-authentication: AUTH 0x19 → AUTH 0x18 challenge → AUTH 0x00 on success, the connection stays usable', async () => {
    const clientId = uid('reauth');
    const raw = await authenticated('TEST-CR', clientId);
    await subscribe(raw, `reauth/${clientId}`, 1);
    const before = begun.length;
    raw.send({ type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CR' } }, 5);
    const challenge = await expectType<AuthPacket>(raw, T.AUTH);
    assert.equal(challenge.reasonCode, 0x18);
    assert.equal(challenge.properties?.authenticationMethod, 'TEST-CR', '[MQTT-4.12.0-5]');
    assert.equal(challenge.properties?.authenticationData?.length, 16);
    assert.deepEqual(begun.slice(before).map((b) => [b.method, b.request.clientId, b.reauthenticate]), [['TEST-CR', clientId, true]]);

    await ping(raw); // other packets flow during re-authentication
    answer(raw, 'TEST-CR', challenge);
    const done = await expectType<AuthPacket>(raw, T.AUTH);
    assert.equal(done.reasonCode, 0x00, `AUTH Success: ${show(done)}`);
    assert.equal(done.properties?.authenticationMethod, 'TEST-CR', '[MQTT-4.12.0-5]');

    const { raw: pub } = await connectedV5(tb.port);
    track(pub);
    await publishAcked(pub, `reauth/${clientId}`, 'after-reauth');
    assert.equal((await expectPublish(raw)).payload.toString(), 'after-reauth', 'session and subscriptions kept');
  });

  it('[MQTT-4.12.1-2] a failed re-authentication (not authorized): DISCONNECT 0x87 and the connection is closed', async () => {
    const raw = await authenticated('TEST-CR-NA');
    raw.send({ type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CR-NA' } }, 5);
    const challenge = await expectType<AuthPacket>(raw, T.AUTH);
    answer(raw, 'TEST-CR-NA', challenge, false);
    await expectDisconnect(raw, 0x87);
  });

  it('[MQTT-4.12.1-2] [MQTT-3.14.2-1] a failed re-authentication (bad credentials): DISCONNECT 0x87 — 0x86 is not a DISCONNECT reason code', async () => {
    const raw = await authenticated('TEST-CR');
    raw.send({ type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CR' } }, 5);
    const challenge = await expectType<AuthPacket>(raw, T.AUTH);
    answer(raw, 'TEST-CR', challenge, false);
    await expectDisconnect(raw, 0x87);
  });

  it('[MQTT-4.12.1-1] re-authentication with a different Authentication Method: DISCONNECT 0x82', async () => {
    const raw = await authenticated('TEST-CR');
    raw.send({ type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CR-NA' } }, 5);
    await expectDisconnect(raw, 0x82);
  });

  it('[MQTT-4.12.0-3] AUTH 0x18 after CONNACK with no exchange running: DISCONNECT 0x82', async () => {
    const raw = await authenticated('TEST-CR');
    raw.send({ type: T.AUTH, reasonCode: 0x18, properties: { authenticationMethod: 'TEST-CR', authenticationData: Buffer.from('x') } }, 5);
    await expectDisconnect(raw, 0x82);
  });

  it('[MQTT-4.12.0-7] [MQTT-4.12.0-6] AUTH from a client that did not use enhanced authentication: DISCONNECT 0x82', async () => {
    const { raw, connack } = await connectedV5(tb.port);
    track(raw);
    assert.equal(connack.properties?.authenticationMethod, undefined, 'no Authentication Method in CONNACK [MQTT-4.12.0-6]');
    raw.send({ type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CR' } }, 5);
    await expectDisconnect(raw, 0x82);
  });

  it('an asynchronous (Promise-returning) method works for CONNECT and for re-authentication', async () => {
    const { raw, challenge } = await startExchange('TEST-CR-ASYNC');
    assert.equal(challenge.reasonCode, 0x18);
    assert.equal(challenge.properties?.authenticationMethod, 'TEST-CR-ASYNC');
    answer(raw, 'TEST-CR-ASYNC', challenge);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    assert.equal(connack.returnCode, 0x00, `CONNACK ${show(connack)}`);
    assert.equal(connack.properties?.authenticationMethod, 'TEST-CR-ASYNC');

    raw.send({ type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CR-ASYNC' } }, 5);
    const again = await expectType<AuthPacket>(raw, T.AUTH);
    assert.equal(again.reasonCode, 0x18);
    answer(raw, 'TEST-CR-ASYNC', again);
    const done = await expectType<AuthPacket>(raw, T.AUTH);
    assert.equal(done.reasonCode, 0x00);
    await ping(raw);
  });

  it('an asynchronous method refusing a wrong answer: CONNACK 0x87', async () => {
    const { raw, challenge } = await startExchange('TEST-CR-ASYNC');
    answer(raw, 'TEST-CR-ASYNC', challenge, false);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    await expectRefusal(raw, connack, 0x87);
  });

  it('[MQTT-4.13.1-1] Authentication Data without an Authentication Method is a Protocol Error (section 3.1.2.11.10): not accepted, closed', async () => {
    const raw = track(await RawClient.connect(tb.port, 5));
    sendConnect(raw, { properties: { authenticationData: Buffer.from('orphan data') } });
    const closed = await raw.waitClosed(3000);
    const accepted = raw.packets.filter((p) => p.type === T.CONNACK && (p as ConnackPacket).returnCode < 0x80);
    assert.deepEqual(accepted.map(show), [], 'the CONNECT must not be accepted');
    assert.equal(closed, true, 'the connection is closed');
    for (const p of raw.packets) {
      if (p.type === T.CONNACK) assert.equal((p as ConnackPacket).returnCode, 0x82, `CONNACK 0x82 (Protocol Error) if any: ${show(p)}`);
    }
  });

  it('[MQTT-3.2.2-3] enhanced authentication resumes a stored session (Session Present 1)', async () => {
    const clientId = uid('crsess');
    const first = await startExchange('TEST-CR', { clientId, expiry: 60 });
    answer(first.raw, 'TEST-CR', first.challenge);
    const c1 = await expectType<ConnackPacket>(first.raw, T.CONNACK);
    assert.equal(c1.returnCode, 0);
    assert.equal(c1.sessionPresent, false);
    first.raw.send({ type: T.DISCONNECT, reasonCode: 0 }, 5);
    assert.equal(await first.raw.waitClosed(3000), true);
    const second = await startExchange('TEST-CR', { clientId, clean: false, expiry: 60 });
    answer(second.raw, 'TEST-CR', second.challenge);
    const c2 = await expectType<ConnackPacket>(second.raw, T.CONNACK);
    assert.equal(c2.returnCode, 0);
    assert.equal(c2.sessionPresent, true);
  });
});

describe('MQTT 5 enhanced authentication: an unanswered challenge', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { connectTimeout: 1 }, authMethods: { 'TEST-CR': challengeResponse('TEST-CR', []) } });
  });
  after(() => tb.close());

  it('[MQTT-4.12.0-4] a client that never answers the challenge is closed by the connect timeout', async () => {
    const raw = track(await RawClient.connect(tb.port, 5));
    sendConnect(raw, { properties: { authenticationMethod: 'TEST-CR' } });
    const challenge = await next(raw);
    assert.equal(challenge.type, T.AUTH, show(challenge));
    assert.equal(await raw.waitClosed(4000), true, 'closed by the connect timeout');
    assert.ok(raw.packets.every((p) => p.type !== T.CONNACK || (p as ConnackPacket).returnCode >= 0x80), 'never accepted');
  });
});
