import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/**
 * TLS files replaced on disk while `moat` runs (renamed over the old ones, as certbot and operators do): new
 * handshakes get them without a reload, a certificate whose key has not come yet changes nothing, and connections
 * made before carry on.
 */

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

/** Copies `from` next to `to`, then renames it over `to`: the file changes in one step. */
function replace(from: string, to: string): void {
  copyFileSync(from, `${to}.tmp`);
  renameSync(`${to}.tmp`, to);
}

const serialOf = (pki: TestPki): string => new crypto.X509Certificate(pki.serverCert).serialNumber;

describe('TLS files replaced on disk', () => {
  let dir: string;
  let first: TestPki;
  let second: TestPki;
  let proc: Proc;
  let port: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-tls-watch-'));
    [first, second] = [makePki(), makePki()];
    copyFileSync(first.serverCertFile, path.join(dir, 'server.crt'));
    copyFileSync(first.serverKeyFile, path.join(dir, 'server.key'));
    port = await freePort();
    writeFileSync(path.join(dir, 'moat.yaml'), `listeners:\n  - { port: ${port}, host: 127.0.0.1, tls: { cert_file: server.crt, key_file: server.key } }\nlog:\n  format: json\nstore:\n  type: memory\n`);
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(async () => {
    await killAll();
    for (const d of [dir, first.dir, second.dir]) rmSync(d, { recursive: true, force: true });
  });

  it('a new certificate alone keeps the old pair (with a warning); once its key follows, new handshakes get it and earlier connections carry on', async () => {
    assert.equal(await servedSerial(port), serialOf(first));
    const before = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { ca: first.ca, servername: 'localhost', reconnectPeriod: 0, clientId: 'before' });
    try {
      replace(second.serverCertFile, path.join(dir, 'server.crt'));
      await proc.waitStdout((out) => out.includes('TLS files changed, but not applied'), 10_000, 'the half-replaced pair refused');
      assert.match(proc.stdout, /does not belong to the certificate/, 'the warning says why');
      assert.equal(await servedSerial(port), serialOf(first), 'the running pair stays');

      replace(second.serverKeyFile, path.join(dir, 'server.key'));
      await proc.waitStdout((out) => out.includes('TLS files changed: in force'), 10_000, 'the complete pair applied');
      assert.equal(await servedSerial(port), serialOf(second));

      const after = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { ca: second.ca, servername: 'localhost', reconnectPeriod: 0, clientId: 'after' });
      try {
        await after.subscribeAsync('renewed', { qos: 1 });
        const got = new Promise<string>((resolve) => after.once('message', (_t, p) => resolve(p.toString())));
        await before.publishAsync('renewed', 'across the change', { qos: 1 });
        assert.equal(await got, 'across the change', 'the connection from before carries messages to one made after');
      } finally {
        await after.endAsync();
      }
    } finally {
      await before.endAsync();
    }
  });
});
