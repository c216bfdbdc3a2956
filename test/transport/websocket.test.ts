import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import WebSocket from 'ws';
import { PacketDecoder, PacketType, type Packet } from '../../src/protocol/index.js';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { rawConnect, rawPublish, rawSubscribe } from '../helpers/codec.js';
import { waitFor } from '../helpers/broker.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';
import { makePki, type TestPki } from '../../bench/lib/pki.js';

/**
 * MQTT over WebSockets (section 6 of the specifications) against a real `moat` process: MQTT.js over ws and wss,
 * mosquitto_pub/sub on TCP beside them, and a raw WebSocket client for the frame-level rules.
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/** A raw WebSocket client: the MQTT packets in the binary frames it receives, and how it was closed. */
async function rawSocket(url: string, protocols: string[] = ['mqtt'], headers: Record<string, string> = {}): Promise<{ ws: WebSocket; packets: Packet[]; closed: Promise<number> }> {
  const ws = new WebSocket(url, protocols, { headers });
  const packets: Packet[] = [];
  const decoder = new PacketDecoder();
  ws.on('message', (data: Buffer) => {
    decoder.push(data, (p) => {
      packets.push(p);
      return true;
    });
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return { ws, packets, closed };
}

describe('MQTT over WebSockets', () => {
  let dir: string;
  let pki: TestPki;
  let proc: Proc;
  let tcp: number;
  let ws: number;
  let wss: number;
  let guarded: number;
  let proxied: number;
  let rfc7239: number;
  let mutual: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-ws-'));
    pki = makePki();
    const entry = formatEntry(await createEntry('alice', Buffer.from('alice-password'), { logN: 10, r: 8, p: 1 }));
    writeFileSync(path.join(dir, 'users.pw'), `${entry}\n`);
    [tcp, ws, wss, guarded, proxied, rfc7239, mutual] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:',
      `  - { port: ${tcp}, host: 127.0.0.1 }`,
      `  - { port: ${ws}, host: 127.0.0.1, websocket: {} }`,
      `  - { port: ${wss}, host: 127.0.0.1, websocket: { path: /secure }, tls: { cert_file: ${pki.serverCertFile}, key_file: ${pki.serverKeyFile} } }`,
      `  - { port: ${guarded}, host: 127.0.0.1, allow_anonymous: false, websocket: { allowed_origins: ["https://app.example.com"] } }`,
      `  - { port: ${proxied}, host: 127.0.0.1, websocket: {}, trusted_proxies: [127.0.0.0/8] }`,
      `  - { port: ${rfc7239}, host: 127.0.0.1, websocket: { forwarded_header: forwarded }, trusted_proxies: [127.0.0.0/8] }`,
      `  - { port: ${mutual}, host: 127.0.0.1, websocket: {}, tls: { cert_file: ${pki.serverCertFile}, key_file: ${pki.serverKeyFile}, ca_file: ${pki.caFile}, request_client_certificate: true } }`,
      'authentication:\n  - type: password_file\n    path: users.pw',
      'log:\n  format: json',
      'store:\n  type: memory',
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('MQTT.js over ws and TCP clients exchange messages both ways, 3.1.1 and 5', async () => {
    // Loopback listeners with authentication configured take no anonymous clients: everyone is alice here.
    const alice = { username: 'alice', password: 'alice-password' };
    for (const protocolVersion of [4, 5] as const) {
      const browserLike = await connect(`ws://127.0.0.1:${ws}/mqtt`, { ...alice, protocolVersion });
      const got: string[] = [];
      browserLike.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      await browserLike.subscribeAsync('ws/in', { qos: 1 });
      await run('mosquitto_pub', ['-p', String(tcp), '-u', 'alice', '-P', 'alice-password', '-t', 'ws/in', '-m', `from tcp ${protocolVersion}`, '-q', '1']);
      await waitFor(() => got.length === 1, 5000, 'the message from TCP');
      assert.deepEqual(got, [`ws/in from tcp ${protocolVersion}`]);

      const sub = spawnProc('mosquitto_sub', ['-p', String(tcp), '-u', 'alice', '-P', 'alice-password', '-t', 'ws/out', '-C', '1', '-q', '1']);
      await new Promise((r) => setTimeout(r, 300));
      await browserLike.publishAsync('ws/out', `from ws ${protocolVersion}`, { qos: 1 });
      assert.equal((await sub.waitExit(5000)).code, 0);
      assert.equal(sub.stdout.trim(), `from ws ${protocolVersion}`);
      await browserLike.endAsync();
    }
  });

  it('wss: the same over TLS, on its own path', async () => {
    const client = await connect(`wss://127.0.0.1:${wss}/secure`, { username: 'alice', password: 'alice-password', ca: pki.ca, servername: 'localhost' });
    await client.subscribeAsync('secure/x', { qos: 1 });
    const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
    await client.publishAsync('secure/x', 'over wss', { qos: 1 });
    assert.equal(await got, 'over wss');
    await client.endAsync();
  });

  it('wss with a requested client certificate: one that does not verify ends the connection, as on a TLS listener', async () => {
    const options = { username: 'alice', password: 'alice-password', ca: pki.ca, servername: 'localhost' };
    const trusted = await connect(`wss://127.0.0.1:${mutual}/mqtt`, { ...options, cert: pki.clientCert, key: pki.clientKey });
    await trusted.endAsync();
    await assert.rejects(connect(`wss://127.0.0.1:${mutual}/mqtt`, { ...options, cert: pki.strangerCert, key: pki.strangerKey }));
    await waitFor(() => proc.stdout.includes('client certificate not trusted'), 5000, 'the refusal audited');
  });

  it('authentication as on TCP: a wrong password is refused over ws', async () => {
    await assert.rejects(connect(`ws://127.0.0.1:${ws}/mqtt`, { username: 'alice', password: 'wrong' }), (err: Error & { code?: number }) => err.code === 4 || err.code === 5);
  });

  it('the subprotocol "mqtt" (or "mqttv3.1") is echoed [MQTT-6.0.0-3]; other paths get 404, plain HTTP 426', async () => {
    const mqttProtocol = await rawSocket(`ws://127.0.0.1:${ws}/mqtt`, ['mqtt']);
    assert.equal(mqttProtocol.ws.protocol, 'mqtt');
    mqttProtocol.ws.close();
    const v31 = await rawSocket(`ws://127.0.0.1:${ws}/mqtt`, ['mqttv3.1']);
    assert.equal(v31.ws.protocol, 'mqttv3.1');
    v31.ws.close();
    await assert.rejects(rawSocket(`ws://127.0.0.1:${ws}/elsewhere`), /HTTP 404/);
    const status = await new Promise<number>((resolve) => http.get(`http://127.0.0.1:${ws}/mqtt`, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }));
    assert.equal(status, 426);
  });

  it('a browser from an Origin not allowed gets 403 before the upgrade; an allowed one is served', async () => {
    await assert.rejects(rawSocket(`ws://127.0.0.1:${guarded}/mqtt`, ['mqtt'], { Origin: 'https://evil.example' }), /HTTP 403/);
    const allowed = await rawSocket(`ws://127.0.0.1:${guarded}/mqtt`, ['mqtt'], { Origin: 'https://app.example.com' });
    allowed.ws.send(rawConnect({ clientId: 'from-app', username: 'alice', password: [...Buffer.from('alice-password')] }));
    await waitFor(() => allowed.packets.length === 1, 5000, 'CONNACK');
    assert.equal(allowed.packets[0]!.type, PacketType.CONNACK);
    allowed.ws.close();
  });

  it('packets split across frames and several packets in one frame are both read; a text frame closes the connection [MQTT-6.0.0-1]', async () => {
    const raw = await rawSocket(`ws://127.0.0.1:${ws}/mqtt`);
    const connectBytes = rawConnect({ clientId: 'framed', username: 'alice', password: [...Buffer.from('alice-password')] });
    raw.ws.send(connectBytes.subarray(0, 5));
    raw.ws.send(connectBytes.subarray(5));
    await waitFor(() => raw.packets.length === 1, 5000, 'CONNACK to a CONNECT in two frames');
    assert.equal(raw.packets[0]!.type, PacketType.CONNACK);
    // SUBSCRIBE and a PUBLISH to it in one frame: SUBACK, then the message back.
    raw.ws.send(Buffer.concat([rawSubscribe([['frames/#', 0]]), rawPublish({ topic: 'frames/one', payload: [0x68, 0x69] })]));
    await waitFor(() => raw.packets.length === 3, 5000, 'SUBACK and the PUBLISH');
    assert.deepEqual(raw.packets.slice(1).map((p) => p.type), [PacketType.SUBACK, PacketType.PUBLISH]);
    raw.ws.send('a text frame');
    assert.equal(await raw.closed, 1003, 'closed: MQTT is carried in binary frames');
  });

  it('an upgrade request whose target no URL parser reads gets 400, and the broker carries on', async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect({ port: ws, host: '127.0.0.1' }, () => socket.write(
        'GET http://[ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'));
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 400/);
    const client = await connect(`ws://127.0.0.1:${ws}/mqtt`, { username: 'alice', password: 'alice-password' });
    await client.endAsync();
  });

  it('a message larger than the maximum packet size closes that connection, and others carry on', async () => {
    const raw = await rawSocket(`ws://127.0.0.1:${ws}/mqtt`);
    const other = await connect(`ws://127.0.0.1:${ws}/mqtt`, { username: 'alice', password: 'alice-password' });
    raw.ws.send(Buffer.alloc(1024 * 1024 + 10));
    assert.equal(await raw.closed, 1009);
    await other.publishAsync('still/here', 'yes', { qos: 1 });
    await other.endAsync();
  });

  it('a reload that raises max_packet_size reaches the WebSocket listeners: a larger message is then served, not closed with 1009', async () => {
    const file = path.join(dir, 'moat.yaml');
    writeFileSync(file, `${readFileSync(file, 'utf8')}\nlimits:\n  max_packet_size: 4194304\n`);
    const before = proc.stdout.length;
    proc.kill('SIGHUP');
    await proc.waitStdout((out) => out.slice(before).includes('"configuration reloaded"'), 10_000, 'the reload');
    const client = await connect(`ws://127.0.0.1:${ws}/mqtt`, { username: 'alice', password: 'alice-password' });
    await client.subscribeAsync('big/one', { qos: 1 });
    const got = new Promise<number>((resolve) => client.once('message', (_t, payload) => resolve(payload.length)));
    await client.publishAsync('big/one', Buffer.alloc(2 * 1024 * 1024, 7), { qos: 1 });
    assert.equal(await got, 2 * 1024 * 1024);
    await client.endAsync();
    // Back to the default for the tests that follow.
    writeFileSync(file, readFileSync(file, 'utf8').replace('\nlimits:\n  max_packet_size: 4194304\n', ''));
    const again = proc.stdout.length;
    proc.kill('SIGHUP');
    await proc.waitStdout((out) => out.slice(again).includes('"configuration reloaded"'), 10_000, 'the second reload');
  });

  it('behind a trusted reverse proxy the client is the one Forwarded / X-Forwarded-For names; elsewhere the headers are ignored', async () => {
    const login = (clientId: string) => rawConnect({ clientId, username: 'alice', password: [...Buffer.from('alice-password')] });
    const cases: Array<[number, Record<string, string>, string]> = [
      [proxied, { 'X-Forwarded-For': '203.0.113.5' }, 'xff'],
      [proxied, { 'X-Forwarded-For': '198.51.100.1, 127.0.0.9' }, 'xff-chain'],
      // The proxy maintains X-Forwarded-For: a Forwarded header the client sent itself is not believed.
      [proxied, { 'X-Forwarded-For': '203.0.113.5', Forwarded: 'for=198.51.100.77' }, 'spoofed-forwarded'],
      [rfc7239, { Forwarded: 'for="[2001:db8::7]:4711";proto=https' }, 'forwarded'],
      [ws, { 'X-Forwarded-For': '203.0.113.5' }, 'untrusted-listener'],
    ];
    for (const [port, headers, clientId] of cases) {
      const raw = await rawSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'], headers);
      raw.ws.send(login(clientId));
      await waitFor(() => raw.packets.length === 1, 5000, `CONNACK for ${clientId}`);
      raw.ws.close();
    }
    const address = (clientId: string): unknown => proc.stdout.split('\n').filter((l) => l.includes('"client connected"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.clientId === clientId)?.remoteAddress;
    assert.equal(address('xff'), '203.0.113.5');
    assert.equal(address('xff-chain'), '198.51.100.1', 'read from the right, past the trusted proxies');
    assert.equal(address('spoofed-forwarded'), '203.0.113.5', 'only the configured header is read');
    assert.equal(address('forwarded'), '2001:db8::7');
    assert.equal(address('untrusted-listener'), '127.0.0.1', 'a listener without trusted_proxies believes no header');
  });
});

describe('WebSocket listener warnings', () => {
  it('an anonymous WebSocket listener without allowed_origins says at start that any web page can reach it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-ws-warn-'));
    try {
      const port = await freePort();
      writeFileSync(path.join(dir, 'moat.yaml'), `listeners:\n  - { port: ${port}, host: 127.0.0.1, websocket: {} }\nlog:\n  format: json\nstore:\n  type: memory\n`);
      const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 30_000 });
      await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
      assert.match(proc.stdout, /anonymous WebSocket clients from any web page/);
      const client = await connect(`ws://127.0.0.1:${port}/mqtt`);
      await client.endAsync();
      proc.kill('SIGTERM');
      await proc.waitExit(10_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
