import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { freePort, killAll, run, spawnProc } from '../helpers/process.js';

/**
 * The moat command with a broken configuration, as a user meets it: one line on stderr,
 * `moat: configuration error: <file>:<line>: <key>: <problem>`, exit status 1, nothing started
 * (no log line, the ports left free).
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

/** True when nothing listens on the port: we can bind it ourselves. */
async function portIsFree(port: number): Promise<boolean> {
  const server = net.createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (bound) await new Promise<void>((resolve) => server.close(() => resolve()));
  return bound;
}

describe('moat -c <broken file>: one line, exit 1, nothing started', () => {
  let dir: string;
  let pki: TestPki;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-config-cli-'));
    pki = makePki();
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  /** Runs moat on `yaml` (written to `name` in the test directory) and checks the whole refusal. */
  async function refused(name: string, yaml: string, ports: number[], expected: (file: string) => string): Promise<void> {
    const file = path.join(dir, name);
    writeFileSync(file, yaml);
    const r = await run(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 10_000 });
    assert.equal(r.code, 1, `exit status 1; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.equal(r.stderr, `moat: configuration error: ${expected(file)}\n`, 'one line on stderr');
    assert.equal(r.stdout, '', 'nothing logged: the broker never started');
    for (const port of ports) assert.ok(await portIsFree(port), `port ${port} was never bound`);
  }

  it('an empty file', async () => {
    await refused('empty.yaml', '', [], (file) => `${file}: the configuration file is empty`);
  });

  it('a missing password file: file, line, key and "no such file"', async () => {
    const port = await freePort();
    await refused('passwords.yaml',
      `listeners:\n  - port: ${port}\nstore:\n  type: memory\nauthentication:\n  - type: password_file\n    path: missing.pw\n`,
      [port], (file) => `${file}:7: authentication.0.path: cannot read ${dir}/missing.pw: ENOENT (no such file)`);
  });

  it('the key of another certificate on the second listener (certificates made with openssl)', async () => {
    const [plain, secure] = [await freePort(), await freePort()];
    await refused('tls.yaml', [
      'listeners:', `  - port: ${plain}`, `  - port: ${secure}`, '    tls:', `      cert_file: ${pki.serverCertFile}`,
      `      key_file: ${pki.clientKeyFile}`, 'store:', '  type: memory', '',
    ].join('\n'), [plain, secure],
    (file) => `${file}:6: listeners.1.tls.key_file: the key in ${pki.clientKeyFile} does not belong to the certificate in ${pki.serverCertFile}`);
  });

  it('a certificate given as the TLS key', async () => {
    const port = await freePort();
    await refused('tls-cert-as-key.yaml', [
      'listeners:', `  - port: ${port}`, '    tls:', `      cert_file: ${pki.serverCertFile}`, `      key_file: ${pki.serverCertFile}`, '',
    ].join('\n'), [port], (file) => `${file}:5: listeners.0.tls.key_file: ${pki.serverCertFile} is a certificate, not a private key (PEM)`);
  });

  describe('a JWT public key of another type than the first algorithm (it used to crash after "moat started")', () => {
    before(() => {
      execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key'], { cwd: dir, stdio: 'pipe' });
      execFileSync('openssl', ['pkey', '-in', 'ec.key', '-pubout', '-out', 'ec.pem'], { cwd: dir, stdio: 'pipe' });
    });
    const config = (port: number, algorithms: string): string =>
      `listeners:\n  - port: ${port}\nstore:\n  type: memory\nauthentication:\n  - type: jwt\n    algorithms: ${algorithms}\n    public_key_file: ec.pem\n`;

    it('an EC P-256 key with algorithms [RS256, ES256] is a configuration error', async () => {
      const port = await freePort();
      await refused('jwt.yaml', config(port, '[RS256, ES256]'), [port],
        (file) => `${file}:7: authentication.0.algorithms: RS256 needs an RSA key, but ${dir}/ec.pem is an EC P-256 key; list only ES256`);
    });

    it('the same key with algorithms [ES256] starts, and stays up', async () => {
      const port = await freePort();
      const file = path.join(dir, 'jwt-ok.yaml');
      writeFileSync(file, `${config(port, '[ES256]')}log:\n  format: json\n`);
      const moat = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 20_000 });
      await moat.waitStdout((out) => out.includes('"moat started"'), 10_000, 'moat started');
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(moat.status, undefined, `still running; stderr: ${moat.stderr}`);
      assert.equal(await portIsFree(port), false, 'listening');
      moat.kill('SIGTERM');
      assert.equal((await moat.waitExit(10_000)).code, 0, moat.stderr);
    });
  });
});
