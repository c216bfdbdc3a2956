import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuthPacket, ConnackPacket } from '../../src/protocol/index.js';
import { createEntry, createSecurity, formatEntry, MemoryAudit, SCRAM_METHOD, ScramMethod, type Security } from '../../src/security/index.js';
import { scramCredential } from '../../src/security/password-file.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { expectType, sendConnect, T } from '../helpers/v5.js';
import { ScramClient } from '../helpers/scram.js';
import { RawClient } from '../helpers/broker.js';
import mqtt from 'mqtt';

describe('SCRAM-SHA-256 (RFC 7677 example)', () => {
  it('the server side reproduces the RFC 7677 exchange byte for byte', async () => {
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const credential = await scramCredential(Buffer.from('pencil'), 4096, salt);
    const method = new ScramMethod({ scramCredential: (u) => (u === 'user' ? credential : undefined) }, () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');
    const exchange = method.begin({ clientId: 'c', username: undefined, password: undefined, protocolVersion: 5, remoteAddress: '', remotePort: 0, listener: 'l', allowAnonymous: false }, false);
    const first = await exchange.step(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    assert.deepEqual(first, { result: 'continue', data: Buffer.from('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096') });
    const final = await exchange.step(Buffer.from('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='));
    assert.equal(final.result, 'success');
    assert.equal((final as { data: Buffer }).data.toString(), 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });
});

describe('SCRAM-SHA-256 over MQTT 5 AUTH against the password file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-scram-'));
  let security: Security;
  let tb: TestBroker;
  const raws: RawClient[] = [];
  const audit = new MemoryAudit();
  before(async () => {
    const file = path.join(dir, 'pw');
    writeFileSync(file, `${formatEntry(await createEntry('fay,=x', Buffer.from('fay-pw'), { logN: 10, r: 8, p: 1 }))}\n`);
    security = createSecurity({ authentication: [{ type: 'passwordFile', path: file, watch: false }], audit }, { info() {}, warn() {}, error() {} });
    tb = await startBroker({ hooks: security.hooks, authMethods: security.authMethods, listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
  });
  after(async () => {
    for (const r of raws) r.destroy();
    await tb.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the exchange; returns the final CONNACK and what the server sent in round one. */
  async function exchange(username: string, password: string, connectUsername?: string): Promise<{ connack: ConnackPacket; serverFirst: string; client: ScramClient }> {
    const raw = await RawClient.connect(tb.port, 5);
    raws.push(raw);
    const client = new ScramClient(username, password);
    sendConnect(raw, {
      clientId: `scram-${raws.length}`, ...(connectUsername !== undefined && { username: connectUsername }),
      properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.first()) },
    });
    const challenge = await expectType<AuthPacket>(raw, T.AUTH);
    assert.equal(challenge.reasonCode, 0x18, 'Continue Authentication');
    assert.equal(challenge.properties?.authenticationMethod, SCRAM_METHOD);
    const serverFirst = challenge.properties!.authenticationData!.toString();
    raw.send({ type: T.AUTH, reasonCode: 0x18, properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.final(serverFirst)) } }, 5);
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    return { connack, serverFirst, client };
  }

  it('succeeds with the password behind the stored keys; the server proves it knows them too (v=)', async () => {
    const { connack, client } = await exchange('fay,=x', 'fay-pw');
    assert.equal(connack.returnCode, 0);
    assert.equal(connack.properties?.authenticationMethod, SCRAM_METHOD);
    assert.ok(client.verifies(connack.properties!.authenticationData!.toString()), 'server signature');
    assert.equal([...tb.broker.connections].find((c) => c.client?.id === `scram-${raws.length}`)?.client?.identity?.username, 'fay,=x');
  });

  it('a wrong password fails at the proof: CONNACK 0x86; both outcomes are audited', async () => {
    const { connack } = await exchange('fay,=x', 'wrong');
    assert.equal(connack.returnCode, 0x86);
    const scramEvents = audit.events.filter((e) => e.method === 'scram').map((e) => e.event);
    assert.deepEqual(scramEvents, ['connect.accepted', 'connect.refused']);
  });

  it('the guard counts a failed SCRAM exchange, and refuses a banned client before the exchange starts (0x8A)', async () => {
    const guard = security.guard!;
    const before = guard.counters.authenticationFailures;
    const { connack } = await exchange('fay,=x', 'wrong-again');
    assert.equal(connack.returnCode, 0x86);
    assert.equal(guard.counters.authenticationFailures, before + 1, 'the failure is counted as a provider\'s would be');
    guard.ban('clientId', 'scram-banned', 'test', 60);
    try {
      const raw = await RawClient.connect(tb.port, 5);
      raws.push(raw);
      const client = new ScramClient('fay,=x', 'fay-pw');
      sendConnect(raw, { clientId: 'scram-banned', properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.first()) } });
      const refused = await expectType<ConnackPacket>(raw, T.CONNACK);
      assert.equal(refused.returnCode, 0x8a, 'Banned, with no AUTH challenge first');
    } finally {
      guard.unban('clientId', 'scram-banned');
    }
  });

  it('a CONNECT user name other than the SCRAM user is refused (the identity is the SCRAM user)', async () => {
    const raw = await RawClient.connect(tb.port, 5);
    raws.push(raw);
    const client = new ScramClient('fay,=x', 'fay-pw');
    sendConnect(raw, { clientId: 'scram-spoof', username: 'admin', properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.first()) } });
    const connack = await expectType<ConnackPacket>(raw, T.CONNACK);
    assert.equal(connack.returnCode, 0x86);
  });

  it('an unknown user goes through the same steps (a stable made-up salt) and fails the same way', async () => {
    const a = await exchange('nobody', 'x');
    const b = await exchange('nobody', 'y');
    assert.equal(a.connack.returnCode, 0x86);
    const salt = (s: string): string => s.split(',').find((f) => f.startsWith('s='))!;
    assert.equal(salt(a.serverFirst), salt(b.serverFirst), 'the same salt each time, as for a real user');
    assert.match(a.serverFirst, /,i=4096$/);
  });

  it('works with MQTT.js as the client (CONNECT with the method, AUTH answered through handleAuth)', async () => {
    const client = new ScramClient('fay,=x', 'fay-pw');
    const c = mqtt.connect(tb.url, {
      clientId: 'scram-mqttjs', protocolVersion: 5, reconnectPeriod: 0,
      properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.first()) },
    });
    c.handleAuth = (packet, callback) => {
      const serverFirst = packet.properties!.authenticationData!.toString();
      callback(undefined, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(client.final(serverFirst)) } });
    };
    const connack = await new Promise<{ properties?: { authenticationData?: Buffer } }>((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    });
    try {
      assert.ok(client.verifies(connack.properties!.authenticationData!.toString()), 'server signature checked by the client');
      await c.publishAsync('scram/ok', 'authenticated', { qos: 1 });
    } finally {
      await c.endAsync(true);
    }
  });
});
