import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { CrlAuthority } from '../helpers/crl-ca.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/** Certificate revocation lists on a mutual-TLS listener (`tls.crl_file`), with mosquitto_pub as the client. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

describe('TLS: revoked client certificates (crl_file)', () => {
  let pki: TestPki;
  let authority: CrlAuthority;
  let dir: string;
  let proc: Proc;
  let port: number;
  let good: { certFile: string; keyFile: string };
  let revoked: { certFile: string; keyFile: string };

  /** mosquitto_pub over TLS with a client certificate; its exit status and output. */
  const publish = (client: { certFile: string; keyFile: string }, topic: string): ReturnType<typeof run> => run('mosquitto_pub', [
    '-h', '127.0.0.1', '-p', String(port), '--cafile', pki.caFile, '--cert', client.certFile, '--key', client.keyFile,
    '-t', topic, '-m', 'hello', '-q', '1', '-i', `crl-${topic.replace(/\//g, '-')}`,
  ], { limitMs: 8000 });

  before(async () => {
    pki = makePki();
    authority = new CrlAuthority();
    good = authority.issue('sensor-good');
    revoked = authority.issue('sensor-revoked');
    authority.revoke('sensor-revoked');
    dir = mkdtempSync(path.join(tmpdir(), 'moat-crl-'));
    authority.writeCrl(path.join(dir, 'clients.crl'));
    copyFileSync(authority.caFile, path.join(dir, 'clients-ca.crt'));
    port = await freePort();
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:',
      `  - port: ${port}`,
      '    host: 127.0.0.1',
      '    allow_anonymous: true',
      '    tls:',
      `      cert_file: ${pki.serverCertFile}`,
      `      key_file: ${pki.serverKeyFile}`,
      '      ca_file: clients-ca.crt',
      '      crl_file: clients.crl',
      '      require_client_certificate: true',
      'log:\n  format: json\nstore:\n  type: memory\n',
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
    rmSync(authority.dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it('a certificate the CRL revokes is refused at the handshake; one it does not revoke connects', async () => {
    const ok = await publish(good, 'crl/good');
    assert.equal(ok.code, 0, `the good certificate connects: ${ok.stderr}`);
    const refused = await publish(revoked, 'crl/revoked');
    assert.notEqual(refused.code, 0, 'the revoked certificate does not get through');
    await proc.waitStdout((out) => /"tls\.refused".*CERT_REVOKED/.test(out), 5000, 'the handshake refusal in the audit trail');
  });

  it('a new CRL renamed over the old one applies to the next handshakes without a reload', async () => {
    authority.revoke('sensor-good');
    authority.writeCrl(path.join(dir, 'clients.crl'));
    await proc.waitStdout((out) => out.includes('TLS files changed: in force'), 10_000, 'the new CRL applied');
    const refused = await publish(good, 'crl/good-now-revoked');
    assert.notEqual(refused.code, 0, 'the certificate revoked since is refused');
  });
});

describe('TLS: crl_file in the configuration file', () => {
  let pki: TestPki;
  let authority: CrlAuthority;
  before(() => {
    pki = makePki();
    authority = new CrlAuthority();
  });
  after(() => {
    rmSync(authority.dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  const yaml = (extra: string[], clientCertificates = true): string => [
    'listeners:', '  - port: 8883', '    tls:', `      cert_file: ${pki.serverCertFile}`, `      key_file: ${pki.serverKeyFile}`,
    `      ca_file: ${authority.caFile}`, ...(clientCertificates ? ['      require_client_certificate: true'] : []), ...extra.map((line) => `      ${line}`), '',
  ].join('\n');
  const file = (): string => path.join(pki.dir, 'moat.yaml');
  const refusal = (text: string): ConfigError => {
    try {
      parseConfig(text, file());
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err;
    }
    assert.fail('the configuration was accepted');
  };

  it('a readable CRL is loaded, one list per PEM block', () => {
    const crlFile = path.join(pki.dir, 'two.crl');
    authority.writeCrl(crlFile);
    const one = new CrlAuthority(); // a second CA's list in the same file
    const other = path.join(one.dir, 'other.crl');
    one.writeCrl(other);
    writeFileSync(crlFile, readFileSync(crlFile, 'utf8') + readFileSync(other, 'utf8'));
    const config = parseConfig(yaml(['crl_file: two.crl']), file());
    const crl = config.broker.listeners![0]!.tls!.crl;
    assert.ok(Array.isArray(crl) && crl.length === 2, 'both lists');
    rmSync(one.dir, { recursive: true, force: true });
  });

  it('a missing CRL file is an error naming the file, the line and the key', () => {
    const err = refusal(yaml(['crl_file: nowhere.crl']));
    assert.equal(err.key, 'listeners.0.tls.crl_file');
    assert.equal(err.line, 8);
    assert.match(err.message, /nowhere\.crl: ENOENT \(no such file\)/);
  });

  it('a file that is not a CRL (a certificate), a damaged CRL and an out-of-date CRL are errors on the crl_file line', () => {
    let err = refusal(yaml([`crl_file: ${pki.caFile}`]));
    assert.equal(err.key, 'listeners.0.tls.crl_file');
    assert.match(err.problem, /holds a certificate, not a certificate revocation list/);

    const damaged = path.join(pki.dir, 'damaged.crl');
    writeFileSync(damaged, '-----BEGIN X509 CRL-----\nnot base64 at all\n-----END X509 CRL-----\n');
    err = refusal(yaml(['crl_file: damaged.crl']));
    assert.equal(err.key, 'listeners.0.tls.crl_file');
    assert.match(err.problem, /does not parse/);

    const old = path.join(pki.dir, 'old.crl');
    authority.writeCrl(old, { lastUpdate: '20200101000000Z', nextUpdate: '20200102000000Z' });
    err = refusal(yaml(['crl_file: old.crl']));
    assert.equal(err.key, 'listeners.0.tls.crl_file');
    assert.match(err.problem, /expired on 2020-01-02T00:00:00\.000Z .*every certificate it covers would be refused/);
  });

  it('crl_file on a listener that asks for no client certificate is an error', () => {
    const crlFile = path.join(pki.dir, 'plain.crl');
    authority.writeCrl(crlFile);
    const err = refusal(yaml(['crl_file: plain.crl'], false));
    assert.equal(err.key, 'listeners.0.tls.crl_file');
    assert.match(err.problem, /only means something when client certificates are asked for/);
  });
});
