import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import type { TlsListenerOptions } from '../../src/broker/options.js';
import { MQTT_ALPN, serverOptions } from '../../src/transport/tls.js';
import { PskKeys } from '../../src/transport/tls-psk.js';
import { attachSessionCache, sessionVersion, TlsSessionCache } from '../../src/transport/tls-sessions.js';
import { run } from '../helpers/process.js';

/**
 * What a TLS listener's server negotiates, seen by `openssl s_client`: ALPN (RFC 7301) and TLS 1.2 session
 * resumption by session id. The servers are built here from the listener's options as the TLS and wss listeners
 * build theirs (serverOptions, attachSessionCache).
 */

let pki: TestPki;
let dir: string;
before(() => {
  pki = makePki();
  dir = mkdtempSync(path.join(tmpdir(), 'moat-tls-handshake-'));
});
after(() => {
  rmSync(pki.dir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

async function listening(server: tls.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/**
 * openssl s_client to `port` with `args`; what it printed (stdout and stderr). It closes once the server has
 * answered and closed (after the session tickets); with `waitForServer` false, right after the handshake.
 */
async function sClient(port: number, args: string[], waitForServer = true): Promise<string> {
  const result = await run('openssl', [
    's_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.caFile, ...(waitForServer ? ['-ign_eof'] : []), ...args,
  ], { limitMs: 8000 });
  return result.stdout + result.stderr;
}

/** A server that answers "ok" and closes: s_client reads the session (and a TLS 1.3 ticket) before it ends. */
const answering = (options: tls.TlsOptions): tls.Server => tls.createServer(options, (socket) => {
  socket.on('error', () => {});
  socket.end('ok\n');
});

describe('ALPN', () => {
  let server: tls.Server;
  let port: number;
  before(async () => {
    server = answering(serverOptions({ cert: pki.serverCert, key: pki.serverKey }, MQTT_ALPN));
    port = await listening(server);
  });
  after(() => server.close());

  it('a TLS listener advertises "mqtt": a client that offers it gets it', async () => {
    assert.match(await sClient(port, ['-alpn', 'mqtt']), /^ALPN protocol: mqtt$/m);
    assert.match(await sClient(port, ['-alpn', 'h2,mqtt']), /^ALPN protocol: mqtt$/m, 'among others');
  });

  it('a client that offers no ALPN connects as before', async () => {
    const out = await sClient(port, []);
    assert.match(out, /^New, TLSv1\.3/m);
    assert.match(out, /^No ALPN negotiated$/m);
  });

  it('a client that offers only other protocols is refused with no_application_protocol (RFC 7301 section 3.2)', async () => {
    const out = await sClient(port, ['-alpn', 'h2,http/1.1']);
    assert.match(out, /no application protocol/);
    assert.doesNotMatch(out, /^New, TLS/m);
  });

  it('a wss server (no ALPN given: Node\'s HTTPS server) offers http/1.1, which browsers ask for', async () => {
    const wss = https.createServer(serverOptions({ cert: pki.serverCert, key: pki.serverKey }), (_req, res) => res.end('ok\n'));
    try {
      const wssPort = await listening(wss);
      assert.match(await sClient(wssPort, ['-alpn', 'h2,http/1.1'], false), /^ALPN protocol: http\/1\.1$/m);
    } finally {
      wss.close();
    }
  });
});

describe('TLS 1.2 session resumption by session id', () => {
  const options: TlsListenerOptions = { cert: undefined, key: undefined };
  before(() => Object.assign(options, { cert: pki.serverCert, key: pki.serverKey }));

  /** Connects twice with a TLS 1.2 session id (no ticket): the second handshake's first line of its summary. */
  async function secondHandshake(port: number, name: string): Promise<string> {
    const file = path.join(dir, name);
    const first = await sClient(port, ['-tls1_2', '-no_ticket', '-sess_out', file]);
    assert.match(first, /^New, TLSv1\.2/m);
    const second = await sClient(port, ['-tls1_2', '-no_ticket', '-sess_in', file]);
    return /^(New|Reused), TLSv1\.2.*$/m.exec(second)?.[0] ?? second;
  }

  it('with the session cache, a second connection offering the session id is "Reused"', async () => {
    const server = answering(serverOptions(options, MQTT_ALPN));
    const cache = attachSessionCache(server, options);
    try {
      const port = await listening(server);
      assert.match(await secondHandshake(port, 'with-cache.sess'), /^Reused, TLSv1\.2/);
      assert.equal(cache?.hits, 1);
      // New credentials (a new CA or CRL) forget the sessions: the next one is verified afresh.
      server.setSecureContext({ cert: pki.serverCert, key: pki.serverKey });
      assert.equal(cache?.size, 0);
      assert.match(await sClient(port, ['-tls1_2', '-no_ticket', '-sess_in', path.join(dir, 'with-cache.sess')]), /^New, TLSv1\.2/m);
    } finally {
      server.close();
    }
  });

  it('without it, Node resumes no session id: a full handshake', async () => {
    const server = answering(serverOptions(options, MQTT_ALPN));
    try {
      const port = await listening(server);
      assert.match(await secondHandshake(port, 'without-cache.sess'), /^New, TLSv1\.2/);
    } finally {
      server.close();
    }
  });

  it('a listener with PSK keys gets no cache, and no tickets: every connection proves its key', () => {
    const server = tls.createServer(serverOptions({ ...options, psk: new PskKeys(new Map()) }));
    assert.equal(attachSessionCache(server, { ...options, psk: new PskKeys(new Map()) }), undefined);
    assert.equal(server.listenerCount('resumeSession'), 0);
  });

  it('the cache keeps at most maxEntries sessions, each for its lifetime, and forgets all on clear()', () => {
    let now = 0;
    const cache = new TlsSessionCache(1000, { maxEntries: 2, now: () => now });
    const id = (n: number): Buffer => Buffer.from([n]);
    cache.set(id(1), Buffer.from('one'));
    cache.set(id(2), Buffer.from('two'));
    cache.set(id(3), Buffer.from('three'));
    assert.equal(cache.size, 2);
    assert.equal(cache.get(id(1)), undefined, 'the oldest went');
    assert.equal(cache.get(id(3))?.toString(), 'three');
    now = 1000;
    assert.equal(cache.get(id(3)), undefined, 'expired');
    cache.set(id(4), Buffer.from('four'));
    assert.equal(cache.size, 1, 'expired sessions are dropped as new ones come');
    cache.clear();
    assert.equal(cache.size, 0);
  });

  it('reads the protocol version of an OpenSSL session (TLS 1.3 ones are not cached: their tickets carry them)', () => {
    assert.equal(sessionVersion(Buffer.from('3081a0020101020203030402', 'hex')), 0x0303);
    assert.equal(sessionVersion(Buffer.from('30820100020101020203040402', 'hex')), 0x0304);
    assert.equal(sessionVersion(Buffer.from('0400', 'hex')), undefined);
  });
});
