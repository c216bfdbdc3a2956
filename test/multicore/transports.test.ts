import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { rawConnect } from '../helpers/codec.js';
import { idOn } from '../helpers/multicore.js';
import { resumes, sessionTicket } from '../helpers/tls-sessions.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * Every listener type in multi-core mode (`moat --workers 2`): TLS, WebSocket and PROXY connections go to the
 * workers in turn, and each is relayed to the worker that owns its Client Identifier. A client's session is found
 * whichever worker ran its handshake; TLS sessions resume on any worker (shared ticket keys).
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

describe('multi-core mode serves TLS, WebSocket, PROXY and Unix socket listeners', () => {
  let dir: string;
  let pki: TestPki;
  let proc: Proc;
  const port: Record<'tcp' | 'tls' | 'ws' | 'proxiedTls', number> = { tcp: 0, tls: 0, ws: 0, proxiedTls: 0 };
  let socketPath: string;
  const clients: MqttClient[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-mc-transports-'));
    pki = makePki();
    for (const key of Object.keys(port) as Array<keyof typeof port>) port[key] = await freePort();
    socketPath = path.join(dir, 'moat.sock');
    copyFileSync(pki.serverCertFile, path.join(dir, 'server.crt'));
    copyFileSync(pki.serverKeyFile, path.join(dir, 'server.key'));
    const tlsKeys = '{ cert_file: server.crt, key_file: server.key }';
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'workers: 2',
      'listeners:',
      `  - { port: ${port.tcp}, allow_anonymous: true }`,
      `  - { port: ${port.tls}, allow_anonymous: true, tls: ${tlsKeys} }`,
      `  - { port: ${port.ws}, allow_anonymous: true, websocket: { path: /mqtt } }`,
      `  - { port: ${port.proxiedTls}, allow_anonymous: true, proxy_protocol: true, trusted_proxies: [127.0.0.1], tls: ${tlsKeys} }`,
      `  - { path: ${socketPath} }`,
      'log:\n  format: json',
      'store:\n  type: memory',
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync().catch(() => {})));
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const over: Record<'tls' | 'ws', () => [string, IClientOptions]> = {
    tls: () => [`mqtts://127.0.0.1:${port.tls}`, { ca: pki.ca, servername: 'localhost' }],
    ws: () => [`ws://127.0.0.1:${port.ws}/mqtt`, {}],
  };

  async function connect(url: string, options: IClientOptions): Promise<{ client: MqttClient; sessionPresent: boolean; got: string[] }> {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...options });
    const got: string[] = [];
    client.on('message', (_topic, payload) => got.push(payload.toString()));
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    return { client, sessionPresent: connack.sessionPresent, got };
  }

  for (const transport of ['tls', 'ws'] as const) {
    it(`${transport}: a client's session is found on every reconnection, whichever worker ran the transport; messages cross from TCP`, async () => {
      const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port.tcp}`, { reconnectPeriod: 0 });
      clients.push(publisher);
      for (const owner of [0, 1]) {
        const clientId = idOn(owner, `${transport}-owned`);
        const topic = `mc/${clientId}`;
        const [url, options] = over[transport]();
        const first = await connect(url, { ...options, clientId, clean: false });
        await first.client.subscribeAsync(topic, { qos: 1 });
        await first.client.endAsync();
        // Connections reach the workers in turn: of four reconnections, some run their transport on the other worker.
        for (let round = 0; round < 4; round++) {
          await publisher.publishAsync(topic, `offline ${round}`, { qos: 1 });
          const again = await connect(url, { ...options, clientId, clean: false });
          assert.equal(again.sessionPresent, true, `round ${round}: ${clientId} (owned by worker ${owner}) finds its session`);
          for (let waited = 0; again.got.length === 0 && waited < 3000; waited += 20) await new Promise((r) => setTimeout(r, 20));
          assert.deepEqual(again.got, [`offline ${round}`], `round ${round}: the message queued while offline`);
          await again.client.endAsync();
        }
      }
    });
  }

  it('TLS sessions resume on every connection, whichever worker ran the first handshake (shared ticket keys)', async () => {
    const options = { host: '127.0.0.1', port: port.tls, ca: pki.ca, servername: 'localhost' };
    const ticket = await sessionTicket(options);
    // The workers take connections in turn: of six, three run their handshake on the worker that did not issue the ticket.
    const reused: boolean[] = [];
    for (let i = 0; i < 6; i++) reused.push(await resumes(options, ticket));
    assert.deepEqual(reused, [true, true, true, true, true, true]);
  });

  it('a PROXY header before TLS names the client, for the worker that serves it', async () => {
    const ids = [idOn(0, 'proxied'), idOn(1, 'proxied'), idOn(0, 'proxied'), idOn(1, 'proxied')];
    for (const [i, clientId] of ids.entries()) {
      const code = await new Promise<number>((resolve, reject) => {
        const raw = net.connect({ port: port.proxiedTls, host: '127.0.0.1' }, () => {
          raw.write(`PROXY TCP4 203.0.113.${i + 1} 10.0.0.1 4000${i} 8883\r\n`);
          const socket = tls.connect({ socket: raw, ca: pki.ca, servername: 'localhost' }, () => socket.write(rawConnect({ clientId })));
          socket.once('data', (chunk: Buffer) => {
            socket.destroy();
            resolve(chunk[3]!);
          });
          socket.once('error', reject);
        });
        raw.once('error', reject);
      });
      assert.equal(code, 0);
    }
    await proc.waitStdout((out) => ids.every((id) => out.includes(`"clientId":"${id}"`)), 5_000, 'every proxied client logged');
    const seen = proc.stdout.split('\n').filter((l) => l.includes('"client connected"') && l.includes('proxied-'))
      .map((l) => JSON.parse(l) as { clientId: string; remoteAddress: string });
    assert.deepEqual(seen.map((l) => [l.clientId, l.remoteAddress]).sort(), ids.map((id, i) => [id, `203.0.113.${i + 1}`]).sort());
  });

  it('a Unix domain socket listener: mosquitto_pub over the socket reaches a TCP subscriber on the other worker', async () => {
    const subscriber = await mqtt.connectAsync(`mqtt://127.0.0.1:${port.tcp}`, { reconnectPeriod: 0, clientId: idOn(0, 'unix-sub') });
    clients.push(subscriber);
    await subscriber.subscribeAsync('mc/unix', { qos: 1 });
    const got = new Promise<string>((resolve) => subscriber.once('message', (_t, p) => resolve(p.toString())));
    const pub = await run('mosquitto_pub', ['--unix', socketPath, '-i', idOn(1, 'unix-pub'), '-q', '1', '-t', 'mc/unix', '-m', 'over the socket'], { limitMs: 10_000 });
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal(await got, 'over the socket');
    await proc.waitStdout((out) => out.includes('"clientId":"unix-pub'), 5_000, 'the publisher logged');
    const line = proc.stdout.split('\n').find((l) => l.includes('"client connected"') && l.includes('"clientId":"unix-pub'))!;
    assert.equal((JSON.parse(line) as { remoteAddress: string }).remoteAddress, `unix:${socketPath}`, 'named by the socket path in the worker too');
  });

  it('a connection to a worker\'s relay socket that is not from a worker (no secret) is closed, never served', async () => {
    const primary = proc.pid;
    const children = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/);
    const environ = readFileSync(`/proc/${children[0]}/environ`, 'utf8').split('\0');
    const socketDir = environ.find((e) => e.startsWith('MOAT_WORKER_SOCKETS='))!.slice('MOAT_WORKER_SOCKETS='.length);
    const forged = Buffer.from(JSON.stringify({ secret: '00'.repeat(32), listener: 1, peer: { remoteAddress: '10.9.9.9', remotePort: 1, pskIdentity: 'admin' } }));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(forged.length);
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(path.join(socketDir, 'relay0.sock'), () => socket.write(Buffer.concat([prefix, forged, rawConnect({ clientId: 'forged' })])));
      socket.once('data', () => resolve('answered'));
      socket.once('close', () => resolve('closed'));
      socket.once('error', () => resolve('closed'));
    });
    assert.equal(answer, 'closed');
    await proc.waitStdout((out) => out.includes('not from a worker of this broker'), 5_000, 'the warning');
    assert.ok(!proc.stdout.includes('"clientId":"forged"'));
  });

  it('after a certificate reload (SIGHUP), tickets issued by one worker still resume on the other', async () => {
    const renewed = makePki();
    copyFileSync(renewed.serverCertFile, path.join(dir, 'server.crt'));
    copyFileSync(renewed.serverKeyFile, path.join(dir, 'server.key'));
    const before = proc.stdout.length;
    proc.kill('SIGHUP');
    await proc.waitStdout((out) => (out.slice(before).match(/tls certificates/g) ?? []).length >= 2, 10_000, 'both workers applying the new certificates');
    const options = { host: '127.0.0.1', port: port.tls, ca: renewed.ca, servername: 'localhost' };
    const ticket = await sessionTicket(options);
    const reused: boolean[] = [];
    for (let i = 0; i < 4; i++) reused.push(await resumes(options, ticket));
    assert.deepEqual(reused, [true, true, true, true]);
  });
});

describe('multi-core mode: clients waited on for their CONNECT count against each worker\'s socket limit', () => {
  it('TLS clients that finish the handshake and stay silent are capped, then closed at connect_timeout', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-mc-cap-'));
    const pki = makePki();
    const port = await freePort();
    // max_connections 4: each worker holds at most 4 + 16 sockets.
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'workers: 2',
      `listeners:\n  - { port: ${port}, allow_anonymous: true, tls: { cert_file: ${pki.serverCertFile}, key_file: ${pki.serverKeyFile} } }`,
      'limits:\n  max_connections: 4\n  connect_timeout: 3',
      'log:\n  format: json', 'store:\n  type: memory',
    ].join('\n'));
    const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    try {
      await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
      const sockets = Array.from({ length: 60 }, () => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost' });
        socket.on('error', () => {});
        return socket;
      });
      await new Promise((r) => setTimeout(r, 1500));
      const open = sockets.filter((s) => !s.destroyed && !s.readableEnded).length;
      assert.ok(open <= 40, `${open} silent TLS clients still open (at most 2 × 20)`);
      assert.ok(open >= 20, `${open}: the cap is the limit, not a refusal of everyone`);
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(sockets.filter((s) => !s.destroyed && !s.readableEnded).length, 0, 'closed at connect_timeout');
      for (const s of sockets) s.destroy();
    } finally {
      proc.kill('SIGTERM');
      await proc.waitExit(15_000);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
