import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { parseProxyHeader } from '../../src/transport/proxy-protocol.js';
import { rawConnect } from '../helpers/codec.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/** The PROXY protocol (v1 and v2): the parser as pure code, then a `moat` listener behind a "balancer" (raw sockets). */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');
const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function v2(command: number, family: number, body: number[]): Buffer {
  return Buffer.from([...SIGNATURE, 0x20 | command, family, body.length >> 8, body.length & 0xff, ...body]);
}
const v2ipv4 = (src: number[], port: number): Buffer => v2(1, 0x11, [...src, 10, 0, 0, 1, port >> 8, port & 0xff, 0x07, 0x5b]);

describe('PROXY protocol header parser', () => {
  it('v1: TCP4, TCP6, UNKNOWN; incomplete is "more"; garbage is an error', () => {
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 203.0.113.9 10.0.0.1 51234 1883\r\nrest')), { length: 44, source: { address: '203.0.113.9', port: 51234 } });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 4000 1883\r\n')), { length: 46, source: { address: '2001:db8::7', port: 4000 } });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { length: 15 });
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 203.0')), 'more');
    assert.equal(parseProxyHeader(Buffer.from('PRO')), 'more');
    assert.ok('error' in (parseProxyHeader(Buffer.from('PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n')) as object));
    assert.ok('error' in (parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 10.0.0.1 99999 2\r\n')) as object));
    assert.ok('error' in (parseProxyHeader(Buffer.from([0x10, 0x0c, 0x00])) as object), 'an MQTT CONNECT is not a header');
    assert.ok('error' in (parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(120)}`)) as object), 'longer than 107 bytes without CRLF');
  });

  it('v2: PROXY over IPv4 and IPv6, LOCAL, split at any byte', () => {
    const header = v2ipv4([198, 51, 100, 7], 40_000);
    assert.deepEqual(parseProxyHeader(Buffer.concat([header, Buffer.from([0x10])])), { length: 28, source: { address: '198.51.100.7', port: 40_000 } });
    for (let cut = 1; cut < header.length; cut++) assert.equal(parseProxyHeader(header.subarray(0, cut)), 'more', `cut at ${cut}`);
    const ipv6 = v2(1, 0x21, [0x20, 0x01, 0x0d, 0xb8, ...Array(10).fill(0), 0x00, 0x07, ...Array(16).fill(0), 0x1f, 0x90, 0x07, 0x5b]);
    assert.deepEqual(parseProxyHeader(ipv6), { length: 52, source: { address: '2001:db8::7', port: 8080 } });
    assert.deepEqual(parseProxyHeader(v2(0, 0x00, [])), { length: 16 });
    const mapped = v2(1, 0x21, [...Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 1, ...Array(16).fill(0), 0x1f, 0x90, 0x07, 0x5b]);
    assert.deepEqual(parseProxyHeader(mapped), { length: 52, source: { address: '192.0.2.1', port: 8080 } }, 'IPv4-mapped: the IPv4 address');
    assert.ok('error' in (parseProxyHeader(Buffer.from([...SIGNATURE, 0x31, 0x11, 0, 0])) as object), 'version 3');
  });
});

describe('a listener behind a load balancer (proxy_protocol: true)', () => {
  let dir: string;
  let proc: Proc;
  let open: number;
  let strict: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-proxy-'));
    [open, strict] = [await freePort(), await freePort()];
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:',
      `  - { port: ${open}, host: 127.0.0.1, proxy_protocol: true }`,
      `  - { port: ${strict}, host: 127.0.0.1, proxy_protocol: true, trusted_proxies: [10.0.0.0/8] }`,
      'guard:\n  bans:\n    - { address: 203.0.113.66 }',
      'log:\n  format: json',
      'store:\n  type: memory',
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends `bytes` in pieces and resolves with the CONNACK's return code, or 'closed'. */
  function attempt(port: number, pieces: Buffer[]): Promise<number | 'closed'> {
    return new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.once('connect', async () => {
        for (const piece of pieces) {
          socket.write(piece);
          await new Promise((r) => setTimeout(r, 20));
        }
      });
      socket.on('data', (chunk: Buffer) => {
        if (chunk[0] === 0x20) {
          socket.destroy();
          resolve(chunk[3]!);
        }
      });
      socket.once('close', () => resolve('closed'));
      socket.once('error', () => resolve('closed'));
    });
  }

  it('the address in the header is the client\'s: in the log, and for bans', async () => {
    const v1 = Buffer.from('PROXY TCP4 203.0.113.9 10.0.0.1 51234 1883\r\n');
    assert.equal(await attempt(open, [Buffer.concat([v1, rawConnect({ clientId: 'behind-v1' })])]), 0);
    assert.equal(await attempt(open, [v2ipv4([198, 51, 100, 7], 40_000).subarray(0, 10), v2ipv4([198, 51, 100, 7], 40_000).subarray(10), rawConnect({ clientId: 'behind-v2' })]), 0);
    const connected = proc.stdout.split('\n').filter((l) => l.includes('"client connected"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(connected.map((l) => [l.clientId, l.remoteAddress]), [['behind-v1', '203.0.113.9'], ['behind-v2', '198.51.100.7']]);
    // A static ban on the client's address applies behind the balancer: closed at accept.
    assert.equal(await attempt(open, [Buffer.from('PROXY TCP4 203.0.113.66 10.0.0.1 1 1883\r\n'), rawConnect({ clientId: 'banned' })]), 'closed');
    // A health check (LOCAL) is the balancer's own connection: served as such.
    assert.equal(await attempt(open, [v2(0, 0x00, []), rawConnect({ clientId: 'health' })]), 0);
  });

  it('without a valid header the connection is closed; trusted_proxies shuts out everyone else', async () => {
    assert.equal(await attempt(open, [rawConnect({ clientId: 'no-header' })]), 'closed');
    assert.equal(await attempt(open, [Buffer.from('PROXY TCP4 nonsense\r\n'), rawConnect({ clientId: 'bad' })]), 'closed');
    assert.equal(await attempt(strict, [Buffer.from('PROXY TCP4 203.0.113.9 10.0.0.1 51234 1883\r\n'), rawConnect({ clientId: 'untrusted' })]), 'closed', '127.0.0.1 is not in 10.0.0.0/8');
  });
});

describe('the PROXY protocol before TLS and before a WebSocket upgrade', () => {
  let dir: string;
  let proc: Proc;
  let pki: TestPki;
  let tlsPort: number;
  let wsPort: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-proxy-tls-'));
    pki = makePki();
    [tlsPort, wsPort] = [await freePort(), await freePort()];
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:',
      `  - { port: ${tlsPort}, host: 127.0.0.1, proxy_protocol: true, trusted_proxies: [127.0.0.1], tls: { cert_file: ${pki.serverCertFile}, key_file: ${pki.serverKeyFile} } }`,
      // trusted_proxies would also make X-Forwarded-For believed: behind a PROXY header it is not read.
      `  - { port: ${wsPort}, host: 127.0.0.1, proxy_protocol: true, trusted_proxies: [127.0.0.1], websocket: { path: /mqtt } }`,
      'log:\n  format: json',
      'store:\n  type: memory',
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const connectedFrom = async (clientId: string): Promise<string | undefined> => {
    const line = (l: string): boolean => l.includes('"client connected"') && l.includes(`"clientId":"${clientId}"`);
    await proc.waitStdout((out) => out.split('\n').some(line), 5_000, `${clientId} connected`);
    return (JSON.parse(proc.stdout.split('\n').find(line)!) as { remoteAddress: string }).remoteAddress;
  };

  it('TLS: the header comes in the clear, then the handshake; the client is the header\'s address', async () => {
    const code = await new Promise<number>((resolve, reject) => {
      const raw = net.connect({ port: tlsPort, host: '127.0.0.1' }, () => {
        // The header and the ClientHello in one segment: what follows the header must reach the TLS layer.
        raw.cork();
        raw.write(v2ipv4([198, 51, 100, 42], 40_001));
        const socket = tls.connect({ socket: raw, ca: pki.ca, servername: 'localhost' }, () => socket.write(rawConnect({ clientId: 'tls-behind' })));
        process.nextTick(() => raw.uncork());
        socket.once('data', (chunk: Buffer) => {
          socket.destroy();
          resolve(chunk[3]!);
        });
        socket.once('error', reject);
      });
      raw.once('error', reject);
    });
    assert.equal(code, 0);
    assert.equal(await connectedFrom('tls-behind'), '198.51.100.42');
  });

  it('WebSocket: the header, then the HTTP upgrade; X-Forwarded-For is not read on top of it', async () => {
    const code = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/mqtt`, 'mqtt', {
        headers: { 'x-forwarded-for': '192.0.2.250' },
        createConnection: () => {
          const raw = net.connect({ port: wsPort, host: '127.0.0.1' });
          raw.write('PROXY TCP4 203.0.113.77 10.0.0.1 40002 8083\r\n');
          return raw;
        },
      });
      ws.once('open', () => ws.send(rawConnect({ clientId: 'ws-behind' })));
      ws.once('message', (data: Buffer) => {
        ws.terminate();
        resolve(data[3]!);
      });
      ws.once('error', reject);
    });
    assert.equal(code, 0);
    assert.equal(await connectedFrom('ws-behind'), '203.0.113.77');
  });

  it('without a header the TLS and WebSocket listeners close the connection', async () => {
    const tlsOutcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: pki.ca, servername: 'localhost' }, () => resolve('handshake'));
      socket.once('error', () => resolve('closed'));
      socket.once('close', () => resolve('closed'));
    });
    assert.equal(tlsOutcome, 'closed');
    const wsOutcome = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/mqtt`, 'mqtt');
      ws.once('open', () => resolve('upgraded'));
      ws.once('error', () => resolve('closed'));
    });
    assert.equal(wsOutcome, 'closed');
  });
});
