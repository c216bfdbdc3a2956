import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { createBroker, type Broker } from '../../src/index.js';
import {
  CertificateProvider, createEntry, createSecurity, formatEntry, MemoryAudit, PasswordFile, PasswordProvider, type Security,
} from '../../src/security/index.js';
import { connackCode } from '../helpers/security.js';
import { delay, startBroker, type TestBroker } from '../helpers/broker.js';


const quiet = { info() {}, warn() {}, error() {} };

describe('HTTP authentication and authorization hooks', () => {
  const requests: Array<Record<string, unknown>> = [];
  let mode: 'normal' | 'slow' | 'broken' = 'normal';
  let server: http.Server;
  let security: Security;
  let tb: TestBroker;
  const clients: MqttClient[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const request = JSON.parse(body) as Record<string, unknown>;
        requests.push({ path: req.url, ...request });
        if (mode === 'slow') return; // never answers: the broker's timeout decides
        if (mode === 'broken') return void res.writeHead(500).end('oops');
        let answer: unknown;
        if (req.url === '/authn') {
          if (request.username === 'ivan' && request.password === 'ivan-pw') {
            answer = { result: 'allow', groups: ['staff'], permissions: { publish: ['ivan/#'], subscribe: ['ivan/#', 'news'] } };
          } else if (request.username === 'other') answer = { result: 'ignore' };
          else answer = { result: 'deny' };
        } else {
          answer = { result: request.topic === 'ivan/forbidden' ? 'deny' : 'allow' };
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    security = createSecurity({
      authentication: [{ type: 'http', url: `${base}/authn`, timeoutMs: 500, cacheTtlMs: 60_000 }],
      authorization: { http: { url: `${base}/authz`, timeoutMs: 500 } },
      audit: new MemoryAudit(),
    }, quiet);
    tb = await startBroker({ hooks: security.hooks, listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await tb.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('posts the CONNECT description and follows allow / deny; ignore falls through to a refusal', async () => {
    const ok = await connackCode(tb.url, { clientId: 'ivan-1', username: 'ivan', password: 'ivan-pw' });
    assert.equal(ok.code, 0);
    clients.push(ok.client!);
    const sent = requests.find((r) => r.path === '/authn' && r.clientId === 'ivan-1')!;
    assert.deepEqual(
      { username: sent.username, password: sent.password, remoteAddress: sent.remoteAddress, protocolVersion: sent.protocolVersion },
      { username: 'ivan', password: 'ivan-pw', remoteAddress: '127.0.0.1', protocolVersion: 4 },
    );
    assert.equal((await connackCode(tb.url, { clientId: 'x', username: 'ivan', password: 'wrong' })).code, 4);
    assert.equal((await connackCode(tb.url, { clientId: 'y', username: 'other', password: 'p' })).code, 4);
  });

  it('caches positive answers (bounded), so a reconnect does not ask again', async () => {
    const before = requests.filter((r) => r.path === '/authn').length;
    const again = await connackCode(tb.url, { clientId: 'ivan-1', username: 'ivan', password: 'ivan-pw' });
    assert.equal(again.code, 0);
    clients.push(again.client!);
    assert.equal(requests.filter((r) => r.path === '/authn').length, before);
  });

  it('fails closed: a service that times out or errors lets nobody new in (3.1.1: 3 Server unavailable, a failure, not a refusal)', async () => {
    for (const m of ['slow', 'broken'] as const) {
      mode = m;
      try {
        assert.equal((await connackCode(tb.url, { clientId: `ivan-${m}`, username: 'ivan', password: 'ivan-pw' })).code, 3, m);
      } finally {
        mode = 'normal';
      }
    }
  });

  it('enforces the permissions in the answer, and asks the authorization hook for publishes', async () => {
    const c = await connackCode(tb.url, { clientId: 'ivan-5', username: 'ivan', password: 'ivan-pw', protocolVersion: 5 });
    assert.equal(c.code, 0);
    clients.push(c.client!);
    await c.client!.publishAsync('ivan/ok', 'x', { qos: 1 });
    await assert.rejects(c.client!.publishAsync('elsewhere', 'x', { qos: 1 }), (err: { code?: number }) => err.code === 0x87, 'outside the permissions');
    await assert.rejects(c.client!.publishAsync('ivan/forbidden', 'x', { qos: 1 }), (err: { code?: number }) => err.code === 0x87, 'denied by the hook');
    assert.ok(requests.some((r) => r.path === '/authz' && r.action === 'publish' && r.topic === 'ivan/ok'));
  });
});

describe('client certificates (the chain is ready for TLS listeners)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-cert-'));
  let broker: Broker;
  let gate: net.Server;
  let url = '';
  const audit = new MemoryAudit();
  // Stands in for a TLS listener: it hands each socket to the broker with the certificate the TLS layer verified.
  let nextCertificate: { subject: string; commonName?: string; fingerprint256: string } | undefined;

  before(async () => {
    const file = path.join(dir, 'pw');
    writeFileSync(file, `${formatEntry(await createEntry('sensor-7', Buffer.from('s7-pw'), { logN: 10, r: 8, p: 1 }))}\n`);
    const passwords = new PasswordFile(file);
    const security = createSecurity({
      authentication: [
        { type: 'provider', provider: new CertificateProvider({ alsoRequire: new PasswordProvider(passwords) }) },
        { type: 'provider', provider: new PasswordProvider(passwords) },
      ],
      audit,
    }, quiet);
    broker = createBroker({ listeners: [], hooks: security.hooks, sysInterval: 0 });
    await broker.listen();
    gate = net.createServer((socket) => {
      const certificate = nextCertificate;
      broker.accept(socket, { name: 'tls-standin', allowAnonymous: false }, {
        remoteAddress: socket.remoteAddress!, remotePort: socket.remotePort!, ...(certificate && { certificate }),
      });
    });
    await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(gate.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    gate.close();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('certificate and password together: both must hold; the certificate names the user', async () => {
    nextCertificate = { subject: 'CN=sensor-7,O=Example', commonName: 'sensor-7', fingerprint256: 'AA:BB' };
    const ok = await connackCode(url, { clientId: 'c1', username: 'sensor-7', password: 's7-pw' });
    assert.equal(ok.code, 0);
    await ok.client!.endAsync();
    assert.equal((await connackCode(url, { clientId: 'c2', username: 'sensor-7', password: 'wrong' })).code, 4, 'right certificate, wrong password');
    assert.equal((await connackCode(url, { clientId: 'c3', username: 'sensor-8', password: 's7-pw' })).code, 4, "user name not the certificate's");
    assert.equal(audit.events.find((e) => e.clientId === 'c1' && e.event === 'connect.accepted')?.method, 'certificate+password');
  });

  it('without a certificate the next provider decides (password alone)', async () => {
    nextCertificate = undefined;
    const ok = await connackCode(url, { clientId: 'c4', username: 'sensor-7', password: 's7-pw' });
    assert.equal(ok.code, 0);
    await ok.client!.endAsync();
    await delay(10);
    assert.equal(audit.events.find((e) => e.clientId === 'c4' && e.event === 'connect.accepted')?.method, 'password');
  });
});
