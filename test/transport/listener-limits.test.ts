import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { freePort, killAll, spawnProc } from '../helpers/process.js';

/** A listener's own max_connections, against a real `moat` process. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

/** The client once connected, or 'refused' if the socket closed first. */
function attempt(port: number, clientId: string): Promise<MqttClient | 'refused'> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0, connectTimeout: 3000 });
  return new Promise((resolve) => {
    client.once('connect', () => resolve(client));
    client.once('close', () => {
      client.end(true);
      resolve('refused');
    });
  });
}

describe('max_connections per listener', () => {
  let dir: string;
  let small: number;
  let big: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-listener-limits-'));
    [small, big] = [await freePort(), await freePort()];
    writeFileSync(path.join(dir, 'moat.yaml'), `listeners:\n  - { port: ${small}, host: 127.0.0.1, max_connections: 2 }\n  - { port: ${big}, host: 127.0.0.1 }\nlog:\n  format: json\nstore:\n  type: memory\n`);
    const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the third connection to a listener of two is closed, the other listener serves, and a freed place is taken again', async () => {
    const first = await attempt(small, 'one');
    const second = await attempt(small, 'two');
    assert.ok(first !== 'refused' && second !== 'refused');
    assert.equal(await attempt(small, 'three'), 'refused');
    const elsewhere = await attempt(big, 'elsewhere');
    assert.notEqual(elsewhere, 'refused');
    await first.endAsync();
    await new Promise((r) => setTimeout(r, 200));
    const again = await attempt(small, 'again');
    assert.notEqual(again, 'refused', 'the place the first left is free again');
    for (const c of [second, elsewhere, again]) if (c !== 'refused') await c.endAsync();
  });
});

describe('connections still in a handshake (TLS, WebSocket upgrade) count against the socket limit', () => {
  let dir: string;
  let tlsPort: number;
  let wsPort: number;
  let pki: TestPki;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-handshake-limits-'));
    pki = makePki();
    [tlsPort, wsPort] = [await freePort(), await freePort()];
    // max_connections 4: sockets are capped at 4 + 16 (the margin for CONNACK refusals), 20 in all.
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:',
      `  - { port: ${tlsPort}, host: 127.0.0.1, tls: { cert_file: ${pki.serverCertFile}, key_file: ${pki.serverKeyFile} } }`,
      `  - { port: ${wsPort}, host: 127.0.0.1, websocket: {} }`,
      'limits:\n  max_connections: 4\n  connect_timeout: 2',
      'log:\n  format: json',
      'store:\n  type: memory',
    ].join('\n'));
    const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A TCP connection that sends nothing; resolves with the milliseconds until the broker closed it (or `limitMs`). */
  function silent(port: number, limitMs: number): { socket: net.Socket; closedAfter: Promise<number> } {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const start = Date.now();
    const closedAfter = new Promise<number>((resolve) => {
      const timer = setTimeout(() => resolve(limitMs), limitMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - start);
      });
      socket.on('error', () => {});
    });
    socket.resume(); // an answer is read and dropped: its end is seen
    return { socket, closedAfter };
  }

  it('a flood of silent connections is capped, each is closed after connect_timeout, and clients get in again', async () => {
    const held = Array.from({ length: 20 }, (_, i) => silent(i % 2 === 0 ? tlsPort : wsPort, 10_000));
    await new Promise((r) => setTimeout(r, 300));
    const extra = silent(tlsPort, 10_000);
    assert.ok(await extra.closedAfter < 1000, 'the 21st socket is closed at once');
    // The TLS handshake and the HTTP request must be done in the CONNECT timeout (2 s here), not Node's minutes.
    const times = await Promise.all(held.map((h) => h.closedAfter));
    for (const ms of times) assert.ok(ms >= 1500 && ms < 5000, `closed after ${ms} ms`);
    for (const h of held) h.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${tlsPort}`, { ca: pki.ca, servername: 'localhost', reconnectPeriod: 0 });
    await client.endAsync();
  });

  it('a refused upgrade (wrong path) is let go after its answer even if the client never closes its side', async () => {
    // Half-open clients: they read the 404 and its end, and never send their own.
    const held = Array.from({ length: 25 }, () => {
      const socket = net.connect({ port: wsPort, host: '127.0.0.1', allowHalfOpen: true });
      socket.on('error', () => {});
      socket.resume();
      socket.write('GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      return socket;
    });
    await new Promise((r) => setTimeout(r, 500));
    // Had the broker kept their sockets, the socket limit (20) would shut WebSocket and TLS clients out.
    const client = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { reconnectPeriod: 0, connectTimeout: 3000 });
    await client.endAsync();
    for (const socket of held) socket.destroy();
  });
});
