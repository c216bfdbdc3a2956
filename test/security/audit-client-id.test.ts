import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import type { ClientInfo } from '../../src/broker/hooks.js';
import { createEntry, createSecurity, formatEntry, MemoryAudit, SCRAM_METHOD, type AuditEvent, type Security } from '../../src/security/index.js';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { freePort, killAll, run, spawnProc } from '../helpers/process.js';

/**
 * A client that sends an empty Client Identifier is given one by the server [MQTT-3.1.3-6] (MQTT 5: in the
 * Assigned Client Identifier of CONNACK [MQTT-3.2.2-16]); the audit trail must name that id, never ''.
 */

const FAST = { logN: 10, r: 8, p: 1 };
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** Connects with MQTT.js (no reconnects) and resolves with the client and its CONNACK. */
function connect(url: string, options: IClientOptions, setup?: (c: MqttClient) => void): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    setup?.(client);
    client.once('connect', (connack) => resolve({ client, connack }));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** The minimum of a SCRAM-SHA-256 client (RFC 5802), enough to log in through MQTT 5 AUTH. */
function scramClient(user: string, password: string): { first: string; final(serverFirst: string): string } {
  const bare = `n=${user},r=${randomBytes(18).toString('base64')}`;
  return {
    first: `n,,${bare}`,
    final(serverFirst) {
      const f = Object.fromEntries(serverFirst.split(',').map((x) => [x[0], x.slice(2)]));
      const salted = pbkdf2Sync(password, Buffer.from(f.s!, 'base64'), Number(f.i), 32, 'sha256');
      const clientKey = createHmac('sha256', salted).update('Client Key').digest();
      const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${f.r}`;
      const signature = createHmac('sha256', createHash('sha256').update(clientKey).digest()).update(`${bare},${serverFirst},${withoutProof}`).digest();
      return `${withoutProof},p=${Buffer.from(clientKey.map((b, i) => b ^ signature[i]!)).toString('base64')}`;
    },
  };
}

describe('audit of clients whose identifier the server assigned (MQTT.js, in process)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-audit-id-'));
  const audit = new MemoryAudit();
  const logged: Array<{ msg: string | undefined; obj: Record<string, unknown> }> = [];
  const capture = (obj: object, msg?: string): void => void logged.push({ msg, obj: obj as Record<string, unknown> });
  let security: Security;
  let tb: TestBroker;
  const clients: MqttClient[] = [];

  before(async () => {
    const file = path.join(dir, 'pw');
    writeFileSync(file, `${formatEntry(await createEntry('ann', Buffer.from('ann-password'), FAST))}\n`);
    security = createSecurity({ authentication: [{ type: 'passwordFile', path: file, watch: false }], audit }, { info() {}, warn() {}, error() {} });
    tb = await startBroker({
      hooks: security.hooks, authMethods: security.authMethods,
      listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: true }],
      logger: { debug: capture, info: capture, warn: capture, error: capture },
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await tb.close();
    security.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Connects one client with an empty id; returns the audit events it caused and the id its session has. */
  async function emptyIdClient(options: IClientOptions, setup?: (c: MqttClient) => void): Promise<{ events: AuditEvent[]; sessionId: string; connack: IConnackPacket }> {
    const from = audit.events.length;
    const joined = new Promise<ClientInfo>((resolve) => tb.broker.once('clientConnected', resolve));
    const { client, connack } = await connect(tb.url, { clientId: '', clean: true, ...options }, setup);
    clients.push(client);
    const sessionId = (await joined).id;
    assert.match(sessionId, /^moat-/, 'the broker assigned an identifier');
    return { events: audit.events.slice(from), sessionId, connack };
  }

  it('MQTT 3.1.1, empty id with a clean session [MQTT-3.1.3-7]: connect.accepted names the assigned id, as the log does', async () => {
    const { events, sessionId } = await emptyIdClient({ protocolVersion: 4, username: 'ann', password: 'ann-password' });
    assert.deepEqual(events.map((e) => [e.event, e.clientId, e.username]), [['connect.accepted', sessionId, 'ann']]);
    const line = logged.find((l) => l.msg === 'client connected' && l.obj.clientId === sessionId);
    assert.ok(line, 'the "client connected" log line names the same id');
  });

  it('MQTT 5: connect.accepted names the Assigned Client Identifier the client was given [MQTT-3.2.2-16]', async () => {
    const { events, sessionId, connack } = await emptyIdClient({ protocolVersion: 5, username: 'ann', password: 'ann-password' });
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.equal(assigned, sessionId, 'CONNACK carries the identifier of the session');
    assert.deepEqual(events.map((e) => [e.event, e.clientId]), [['connect.accepted', assigned]]);
  });

  it('MQTT 5 without credentials: connect.anonymous names the assigned id', async () => {
    const { events, connack } = await emptyIdClient({ protocolVersion: 5 });
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.ok(assigned);
    assert.deepEqual(events.map((e) => [e.event, e.clientId]), [['connect.anonymous', assigned]]);
  });

  it('MQTT 5 with SCRAM-SHA-256 (enhanced authentication): connect.accepted names the assigned id', async () => {
    const scram = scramClient('ann', 'ann-password');
    const { events, connack } = await emptyIdClient(
      { protocolVersion: 5, properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(scram.first) } },
      (c) => {
        c.handleAuth = (packet, callback) => {
          const serverFirst = packet.properties!.authenticationData!.toString();
          callback(undefined, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: SCRAM_METHOD, authenticationData: Buffer.from(scram.final(serverFirst)) } });
        };
      },
    );
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.ok(assigned);
    assert.deepEqual(events.map((e) => [e.event, e.clientId, e.method]), [['connect.accepted', assigned, 'scram']]);
  });

  it('a client that names itself is audited under that name', async () => {
    const from = audit.events.length;
    const { client, connack } = await connect(tb.url, { clientId: 'named-7', protocolVersion: 5, username: 'ann', password: 'ann-password' });
    clients.push(client);
    assert.equal(connack.properties?.assignedClientIdentifier, undefined);
    assert.deepEqual(audit.events.slice(from).map((e) => [e.event, e.clientId]), [['connect.accepted', 'named-7']]);
  });
});

describe('audit file of the moat command, with mosquitto_pub (which sends an empty id when -i is not given)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-audit-id-cli-'));
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('MQTT 5 and 3.1.1: each connect.accepted line names the id the session was given, not ""', async () => {
    writeFileSync(path.join(dir, 'pw'), `${formatEntry(await createEntry('ann', Buffer.from('ann-password'), FAST))}\n`);
    const port = await freePort();
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:', `  - port: ${port}`, '    host: 127.0.0.1', 'store:', '  type: memory', 'sys_interval: 0',
      'log:', '  format: json', 'audit:', '  file: audit.log', 'authentication:', '  - type: password_file', '    path: pw', '',
    ].join('\n'));
    const moat = spawnProc(process.execPath, [MOAT, '-c', path.join(dir, 'moat.yaml')], { cwd: dir, limitMs: 60_000 });
    await moat.waitStdout((out) => out.includes('"msg":"listening"'), 10_000, 'listening');
    const auditLines = (): Array<Record<string, unknown>> =>
      readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    const connectedIds = (): string[] =>
      moat.stdout.split('\n').filter((l) => l.includes('"msg":"client connected"')).map((l) => (JSON.parse(l) as { clientId: string }).clientId);

    // MQTT 5: -d prints the identifier libmosquitto took from CONNACK ("Client <id> received CONNACK").
    const v5 = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-V', '5', '-d', '-u', 'ann', '-P', 'ann-password', '-t', 't', '-m', 'x'], { limitMs: 10_000 });
    assert.equal(v5.code, 0, v5.stderr);
    const given = /Client (\S+) received CONNACK/.exec(v5.stdout)?.[1];
    assert.match(given ?? '', /^moat-/, `mosquitto_pub was assigned an id: ${v5.stdout}`);
    await waitFor(() => auditLines().length >= 1, 5000, 'the first audit line');
    assert.deepEqual(auditLines().map((l) => [l.event, l.clientId]), [['connect.accepted', given]]);

    // MQTT 3.1.1: the client is not told its id; the session's id is the one the main log names.
    const v4 = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-u', 'ann', '-P', 'ann-password', '-t', 't', '-m', 'x'], { limitMs: 10_000 });
    assert.equal(v4.code, 0, v4.stderr);
    await waitFor(() => auditLines().length >= 2 && connectedIds().length >= 2, 5000, 'the second audit line');
    const second = connectedIds()[1]!;
    assert.match(second, /^moat-/);
    assert.notEqual(second, given);
    assert.deepEqual(auditLines().map((l) => [l.event, l.clientId]), [['connect.accepted', given], ['connect.accepted', second]]);
  });
});
