import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { createBroker, type Broker, type BrokerOptions, type TlsListenerOptions } from '../../src/index.js';
import type { AuthenticateRequest, HandshakeFailure } from '../../src/broker/hooks.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { connectClient, delay, waitFor } from '../helpers/broker.js';
import { freePort, killAll, run, spawnProc } from '../helpers/process.js';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { TicketKeyRotation } from '../../src/transport/ticket-keys.js';
import { resumes, sessionTicket } from '../helpers/tls-sessions.js';

/** MQTT over TLS and mutual TLS, with MQTT.js, mosquitto_pub/sub and raw sockets as clients. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');
let pki: TestPki;
before(() => {
  pki = makePki();
});
after(killAll);

async function tlsBroker(tlsOptions: Partial<TlsListenerOptions>, options: BrokerOptions = {}): Promise<{ broker: Broker; port: number }> {
  const broker = createBroker({
    sysInterval: 0,
    listeners: [{ host: '127.0.0.1', port: 0, tls: { cert: pki.serverCert, key: pki.serverKey, ...tlsOptions } }],
    ...options,
  });
  const [address] = await broker.listen();
  return { broker, port: address!.port };
}

const CONNECT_311 = Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0x61]);

/** A raw TLS handshake; resolves with the first bytes the broker answers a CONNECT with, rejects if the handshake fails. */
function rawTls(port: number, options: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.ca, ...options }, () => socket.write(CONNECT_311));
    socket.once('data', (chunk) => {
      socket.destroy();
      resolve(chunk);
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed without an answer')));
  });
}

describe('MQTT over TLS', () => {
  let broker: Broker;
  let port: number;
  const clients: MqttClient[] = [];
  before(async () => ({ broker, port } = await tlsBroker({})));
  after(async () => {
    for (const c of clients) c.end(true);
    await broker.close();
  });

  it('MQTT.js connects with mqtts:// and the CA, and a message goes round', async () => {
    const sub = await connectClient(`mqtts://127.0.0.1:${port}`, { ca: pki.ca, clientId: 'tls-sub' });
    const pub = await connectClient(`mqtts://127.0.0.1:${port}`, { ca: pki.ca, clientId: 'tls-pub' });
    clients.push(sub, pub);
    await sub.subscribeAsync('tls/t', { qos: 1 });
    const got = new Promise<string>((resolve) => sub.once('message', (_t, payload) => resolve(payload.toString())));
    await pub.publishAsync('tls/t', 'over tls', { qos: 1 });
    assert.equal(await got, 'over tls');
  });

  it('a client that does not trust the server certificate is refused at the handshake', async () => {
    await assert.rejects(rawTls(port, { ca: pki.strangerCert }), /self[- ]signed|unable to (verify|get)|certificate/i);
  });

  it('mosquitto_pub and mosquitto_sub talk to it with --cafile', async () => {
    const sub = spawnProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '--cafile', pki.caFile, '-t', 'tls/m', '-C', '1', '-W', '6', '-i', 'tls-msub'], { limitMs: 9000 });
    for (let i = 0; i < 100 && !broker.sessions.get('tls-msub')?.subscriptions.has('tls/m'); i++) await delay(50);
    assert.ok(broker.sessions.get('tls-msub')?.subscriptions.has('tls/m'), 'mosquitto_sub subscribed over TLS');
    const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '--cafile', pki.caFile, '-t', 'tls/m', '-m', 'from mosquitto_pub', '-q', '1'], { limitMs: 8000 });
    assert.equal(pub.code, 0, pub.stderr);
    const status = await sub.waitExit(8000);
    assert.equal(status.code, 0, sub.stderr);
    assert.equal(sub.stdout.trim(), 'from mosquitto_pub');
  });

  it('plain MQTT on the TLS port fails its handshake only: the broker and TLS clients carry on', async () => {
    const plain = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => plain.once('connect', () => resolve()));
    plain.write(CONNECT_311);
    plain.write(Buffer.alloc(2048, 0x30)); // and some garbage
    await new Promise<void>((resolve) => plain.once('close', () => resolve()));
    const answer = await rawTls(port, {});
    assert.deepEqual([...answer.subarray(0, 4)], [0x20, 0x02, 0x00, 0x00], 'CONNACK accepted over TLS afterwards');
  });
});

describe('mutual TLS (client certificates)', () => {
  it('require_client_certificate: without a certificate, or with one from an untrusted CA, the handshake fails, and each failure is told to the handshakeFailed hook and counted', async () => {
    const failures: HandshakeFailure[] = [];
    const { broker, port } = await tlsBroker({ ca: pki.ca, requireClientCertificate: true }, {
      hooks: { handshakeFailed: (event) => failures.push(event) },
    });
    try {
      await assert.rejects(rawTls(port, {}), 'no certificate');
      await assert.rejects(rawTls(port, { cert: pki.strangerCert, key: pki.strangerKey }), 'untrusted certificate');
      const answer = await rawTls(port, { cert: pki.clientCert, key: pki.clientKey });
      assert.equal(answer[0], 0x20, 'a trusted certificate gets its CONNACK');
      assert.equal(answer[3], 0x00);
      await waitFor(() => failures.length === 2, 2000, 'both failures reported');
      for (const failure of failures) {
        assert.equal(failure.remoteAddress, '127.0.0.1');
        assert.equal(failure.listener, broker.addresses[0]!.name);
        assert.ok(failure.reason.length > 0, 'with Node\'s reason');
      }
      const reasons = failures.map((f) => f.reason).sort();
      assert.match(reasons[0]!, /^client certificate not trusted: [A-Z_]+$/, 'untrusted, with OpenSSL\'s code (not "socket hang up")');
      assert.match(reasons[1]!, /^peer did not return a certificate$/, 'no certificate');
      assert.equal(broker.stats.tlsHandshakesFailed, 2, 'the trusted client is not counted');
    } finally {
      await broker.close();
    }
  });

  it('the verified certificate reaches the authenticate hook (subject, common name, SHA-256 fingerprint)', async () => {
    const seen: AuthenticateRequest[] = [];
    const { broker, port } = await tlsBroker({ ca: pki.ca, requireClientCertificate: true }, {
      hooks: { authenticate: (request) => (seen.push(request), true) },
    });
    try {
      const client = await connectClient(`mqtts://127.0.0.1:${port}`, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, clientId: 'mtls' });
      client.end(true);
      assert.equal(seen.length, 1);
      const certificate = seen[0]!.certificate;
      assert.equal(certificate?.commonName, 'sensor-7');
      assert.equal(certificate?.subject, 'CN=sensor-7,O=Example');
      assert.equal(certificate?.issuer, 'CN=ca');
      assert.equal(certificate?.fingerprint256, new crypto.X509Certificate(pki.clientCert).fingerprint256);
    } finally {
      await broker.close();
    }
  });

  it('request_client_certificate: a client without one connects with no certificate; an untrusted one is refused', async () => {
    const seen: AuthenticateRequest[] = [];
    const { broker, port } = await tlsBroker({ ca: pki.ca, requestClientCertificate: true }, {
      hooks: { authenticate: (request) => (seen.push(request), true) },
    });
    try {
      const answer = await rawTls(port, {});
      assert.equal(answer[3], 0x00, 'accepted without a certificate');
      assert.equal(seen[0]?.certificate, undefined);
      await assert.rejects(rawTls(port, { cert: pki.strangerCert, key: pki.strangerKey }));
    } finally {
      await broker.close();
    }
  });
});

describe('TLS in the configuration file', () => {
  it('a tls block reads the PEM files next to the configuration', () => {
    const file = path.join(pki.dir, 'moat.yaml');
    const config = parseConfig(`listeners:\n  - port: 8883\n    tls:\n      cert_file: server.crt\n      key_file: server.key\n      ca_file: ca.crt\n      require_client_certificate: true\n`, file);
    const listener = config.broker.listeners![0]!;
    assert.deepEqual(listener.tls?.cert, pki.serverCert);
    assert.deepEqual(listener.tls?.key, pki.serverKey);
    assert.deepEqual(listener.tls?.ca, pki.ca);
    assert.equal(listener.tls?.requireClientCertificate, true);
  });

  it('a missing certificate file is an error naming the file, line and key', () => {
    const file = path.join(pki.dir, 'bad.yaml');
    assert.throws(
      () => parseConfig(`listeners:\n  - port: 8883\n    tls:\n      cert_file: server.crt\n      key_file: nowhere.key\n`, file),
      (err: unknown) => err instanceof ConfigError && err.line === 5 && err.key === 'listeners.0.tls.key_file' && /nowhere\.key: ENOENT/.test(err.message),
    );
  });

  it('certificate authentication in YAML: options mapped, a key of another provider refused on its line', () => {
    const file = path.join(pki.dir, 'auth.yaml');
    writeFileSync(path.join(pki.dir, 'users.pw'), ''); // read when the configuration is loaded
    const config = parseConfig('authentication:\n  - type: certificate\n    username_from: subject\n    also_password_file: users.pw\n    watch: false\n', file);
    assert.deepEqual(config.security.authentication, [
      { type: 'certificate', usernameFrom: 'subject', alsoPasswordFile: { path: path.join(pki.dir, 'users.pw'), watch: false } },
    ]);
    assert.throws(
      () => parseConfig('authentication:\n  - type: certificate\n    url: http://127.0.0.1:1/\n', file),
      (err: unknown) => err instanceof ConfigError && err.line === 3 && err.key === 'authentication.0.url' && /not a certificate setting/.test(err.problem),
    );
  });

  it('mutual TLS from YAML: the certificate\'s common name is the user its topic permissions are looked up by (mosquitto_pub/sub --cert)', async () => {
    const port = await freePort();
    const config = path.join(pki.dir, 'mtls.yaml');
    writeFileSync(config, [
      'listeners:', `  - port: ${port}`, '    host: 127.0.0.1', '    tls:', '      cert_file: server.crt', '      key_file: server.key',
      '      ca_file: ca.crt', '      require_client_certificate: true',
      'authentication:', '  - type: certificate',
      'authorization:', '  roles:', '    own:', '      - topic: sensors/%u/#', '  users:', '    sensor-7: { roles: [own] }',
      'store:', '  type: memory', 'log:', '  level: info', '  format: json', '',
    ].join('\n'));
    const moat = spawnProc(process.execPath, [MOAT, '--config', config], { cwd: pki.dir, limitMs: 20_000 });
    await moat.waitStdout((out) => out.includes('"listening"'), 10_000, 'listening');
    const tlsArgs = ['-h', '127.0.0.1', '-p', String(port), '--cafile', pki.caFile, '--cert', pki.clientCertFile, '--key', pki.clientKeyFile];
    const noCert = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '--cafile', pki.caFile, '-t', 'sensors/sensor-7/t', '-m', 'x'], { limitMs: 5000 });
    assert.notEqual(noCert.code, 0, 'no client certificate: refused');
    const sub = spawnProc('mosquitto_sub', [...tlsArgs, '-t', 'sensors/sensor-7/#', '-v', '-C', '1', '-W', '8'], { limitMs: 10_000 });
    const acceptedAs = (out: string, user: string): boolean =>
      out.split('\n').some((l) => l.includes('"connect.accepted"') && (JSON.parse(l) as { username?: string }).username === user);
    await moat.waitStdout((out) => acceptedAs(out, 'sensor-7'), 8000, 'the subscriber accepted as sensor-7');
    await delay(200);
    const refused = await run('mosquitto_pub', [...tlsArgs, '-t', 'sensors/other/t', '-m', 'not mine'], { limitMs: 5000 });
    assert.equal(refused.code, 0, refused.stderr);
    const allowed = await run('mosquitto_pub', [...tlsArgs, '-t', 'sensors/sensor-7/t', '-m', 'mine'], { limitMs: 5000 });
    assert.equal(allowed.code, 0, allowed.stderr);
    const status = await sub.waitExit(8000);
    assert.equal(status.code, 0, sub.stderr);
    assert.equal(sub.stdout.trim(), 'sensors/sensor-7/t mine');
    const audit = moat.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const refusal = audit.find((l) => l.event === 'publish.refused' && l.topic === 'sensors/other/t');
    assert.equal(refusal?.username, 'sensor-7', 'the refusal is audited for the certificate\'s user');
    const handshake = audit.find((l) => l.event === 'tls.refused');
    assert.ok(handshake, 'the client without a certificate is in the audit trail');
    assert.equal(handshake.audit, true);
    assert.equal(handshake.remoteAddress, '127.0.0.1');
    assert.equal(typeof handshake.reason, 'string');
    assert.equal(handshake.level, 40, 'a refusal, at warn level');
    moat.kill('SIGTERM');
    await moat.waitExit(10_000);
  });

  it('the moat command serves MQTT over TLS from its YAML configuration (mosquitto_sub and mosquitto_pub)', async () => {
    const port = await freePort();
    const config = path.join(pki.dir, 'cli.yaml');
    writeFileSync(config, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    tls:\n      cert_file: server.crt\n      key_file: server.key\nstore:\n  type: memory\nlog:\n  level: info\n  format: json\n`);
    const moat = spawnProc(process.execPath, [MOAT, '--config', config], { cwd: pki.dir, limitMs: 20_000 });
    await moat.waitStdout((out) => out.includes('"listening"'), 10_000, 'listening');
    const sub = spawnProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '--cafile', pki.caFile, '-t', 'cli/tls', '-C', '1', '-W', '8'], { limitMs: 10_000 });
    let delivered = false;
    for (let i = 0; i < 40 && !delivered; i++) {
      await delay(100);
      const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '--cafile', pki.caFile, '-t', 'cli/tls', '-m', 'cli over tls'], { limitMs: 5000 });
      assert.equal(pub.code, 0, pub.stderr);
      delivered = sub.status !== undefined || sub.stdout.includes('cli over tls');
    }
    const status = await sub.waitExit(8000);
    assert.equal(status.code, 0, sub.stderr);
    assert.equal(sub.stdout.trim(), 'cli over tls');
    moat.kill('SIGTERM');
    await moat.waitExit(10_000);
  });
});

describe('TLS session ticket keys', () => {
  /** A first connection's ticket, then whether a connection offering it resumes, after `between` ran. */
  async function resumesAfter(port: number, between: () => void | Promise<void>): Promise<boolean> {
    const options = { host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost' };
    const ticket = await sessionTicket(options);
    await between();
    return resumes(options, ticket);
  }

  it('tickets resume under the same keys, not after a rotation, and the rotation replaces them on its interval', async () => {
    const { broker, port } = await tlsBroker({});
    try {
      broker.setTicketKeys(crypto.randomBytes(48));
      assert.equal(await resumesAfter(port, () => {}), true, 'same keys: resumed');
      assert.equal(await resumesAfter(port, () => broker.setTicketKeys(crypto.randomBytes(48))), false, 'rotated: a full handshake');
      const applied: Buffer[] = [];
      const rotation = new TicketKeyRotation((keys) => applied.push(keys), 50);
      rotation.start();
      await delay(180);
      rotation.stop();
      assert.ok(applied.length >= 3, `${applied.length} sets applied`);
      assert.equal(new Set(applied.map((k) => k.toString('hex'))).size, applied.length, 'each set new');
      assert.ok(applied.every((k) => k.length === 48));
    } finally {
      await broker.close();
    }
  });

  it('new credentials (a reload, here a new CA) give new ticket keys: a ticket from before does not resume past them', async () => {
    const { broker, port } = await tlsBroker({});
    try {
      broker.setTicketKeys(crypto.randomBytes(48));
      // The same certificate, a new CA for client certificates: a ticket sealed before must not skip the new check.
      const other = makePki();
      assert.equal(await resumesAfter(port, () => void broker.updateTls(0, { cert: pki.serverCert, key: pki.serverKey, ca: other.ca })), false);
    } finally {
      await broker.close();
    }
  });
});
