import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { execFileSync } from 'node:child_process';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/** New TLS certificates without a restart, and the listener's TLS options (real `moat` processes, MQTT.js and mosquitto_pub). */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

/** The serial number of the certificate the listener presents now. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}

describe('TLS certificate reload', () => {
  let dir: string;
  let first: TestPki;
  let second: TestPki;
  let proc: Proc;
  let port: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-tls-reload-'));
    [first, second] = [makePki(), makePki()];
    copyFileSync(first.serverCertFile, path.join(dir, 'server.crt'));
    copyFileSync(first.serverKeyFile, path.join(dir, 'server.key'));
    port = await freePort();
    writeFileSync(path.join(dir, 'moat.yaml'), `listeners:\n  - { port: ${port}, host: 127.0.0.1, tls: { cert_file: server.crt, key_file: server.key } }\nlog:\n  format: json\nstore:\n  type: memory\n`);
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('after SIGHUP new handshakes get the new certificate, and a connection made before carries on', async () => {
    const serialOf = (pki: TestPki): string => new crypto.X509Certificate(pki.serverCert).serialNumber;
    assert.equal(await servedSerial(port), serialOf(first));
    const before = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { ca: first.ca, servername: 'localhost', reconnectPeriod: 0 });
    copyFileSync(second.serverCertFile, path.join(dir, 'server.crt'));
    copyFileSync(second.serverKeyFile, path.join(dir, 'server.key'));
    proc.kill('SIGHUP');
    // The reload applies them; so would the file watcher, had it seen the change first (then the reload finds nothing new).
    await proc.waitStdout((out) => out.includes('tls certificates') || out.includes('TLS files changed: in force'), 10_000, 'the new certificates in force');
    assert.equal(await servedSerial(port), serialOf(second));
    const after = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { ca: second.ca, servername: 'localhost', reconnectPeriod: 0 });
    // The connection from before the reload still carries messages, to the one after it.
    await after.subscribeAsync('renewed', { qos: 1 });
    const got = new Promise<string>((resolve) => after.once('message', (_t, p) => resolve(p.toString())));
    await before.publishAsync('renewed', 'across the reload', { qos: 1 });
    assert.equal(await got, 'across the reload');
    await before.endAsync();
    await after.endAsync();
  });
});

describe('TLS listener options', () => {
  it('an encrypted key with its passphrase file, and min_version TLSv1.3 refusing a TLS 1.2 client', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-tls-options-'));
    try {
      const pki = makePki();
      execFileSync('openssl', ['pkey', '-in', pki.serverKeyFile, '-aes256', '-passout', 'pass:s3cret', '-out', path.join(dir, 'server.key')], { stdio: 'pipe' });
      writeFileSync(path.join(dir, 'passphrase'), 's3cret\n');
      const port = await freePort();
      writeFileSync(path.join(dir, 'moat.yaml'), [
        'listeners:',
        `  - { port: ${port}, host: 127.0.0.1, tls: { cert_file: ${pki.serverCertFile}, key_file: server.key, key_passphrase_file: passphrase, min_version: TLSv1.3 } }`,
        'log:\n  format: json\nstore:\n  type: memory\n',
      ].join('\n'));
      const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
      await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
      const pub = await run('mosquitto_pub', ['-p', String(port), '--cafile', pki.caFile, '-t', 'tls/options', '-m', 'hi', '-q', '1']);
      assert.equal(pub.code, 0, pub.stderr);
      await assert.rejects(new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => resolve(socket));
        socket.once('error', reject);
      }), /protocol version|alert/i, 'a TLS 1.2 client is refused at the handshake');
      proc.kill('SIGTERM');
      await proc.waitExit(10_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
