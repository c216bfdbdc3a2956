import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { makePki } from '../../bench/lib/pki.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { createServer } from '../../src/server/index.js';
import { parsePskFile, PskFileError } from '../../src/transport/tls-psk.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * TLS-PSK listeners (`tls.psk_file`, `tls.psk_hint`) against a real `moat` process: mosquitto_pub and mosquitto_sub
 * with --psk (TLS 1.3 external PSKs, their default), MQTT.js over TLS 1.2 PSK suites, the identity as the user name
 * for authorization, and the file read again when it changes.
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');
const KEY1 = '6d6f61742d7073652d6b65792d6f6e65';
const KEY2 = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

describe('TLS-PSK listener', () => {
  let dir: string;
  let proc: Proc;
  let port: number;

  /** mosquitto_pub with a pre-shared key; its exit status and output. */
  const publish = (identity: string, key: string, topic: string, message: string, extra: string[] = []): ReturnType<typeof run> => run('mosquitto_pub', [
    '-h', '127.0.0.1', '-p', String(port), '--psk', key, '--psk-identity', identity, '-t', topic, '-m', message, '-q', '1', ...extra,
  ], { limitMs: 8000 });
  /** mosquitto_sub with a pre-shared key, once its SUBACK came: it exits after `count` messages. */
  const subscribe = async (identity: string, key: string, filter: string, count = 1): Promise<Proc> => {
    // Line-buffered, so that its debug lines (the SUBACK) arrive as they are printed.
    const sub = spawnProc('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '--psk', key, '--psk-identity', identity, '-t', filter, '-q', '1', '-C', String(count), '-W', '8', '-d'], { limitMs: 10_000 });
    await sub.waitStdout((out) => out.includes('SUBACK'), 6000, 'the SUBACK');
    return sub;
  };
  /** The messages a subscriber printed (mosquitto_sub -d also prints its packets). */
  const messages = (sub: Proc): string[] => sub.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('Client ') && !line.startsWith('Subscribed ('));

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-psk-'));
    writeFileSync(path.join(dir, 'psk.txt'), `# identity:hexkey\n\ndev1:${KEY1}\ndev2:${KEY2}\n`);
    port = await freePort();
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:',
      `  - { port: ${port}, host: 127.0.0.1, tls: { psk_file: psk.txt, psk_hint: moat-psk } }`,
      'authentication:',
      '  - type: psk',
      'authorization:',
      '  roles:',
      '    own:',
      '      - topic: devices/%u/#',
      '  users:',
      '    dev1: { roles: [own] }',
      '    dev2: { roles: [own] }',
      'log:\n  format: json\nstore:\n  type: memory\n',
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 90_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mosquitto_sub and mosquitto_pub with the right key get in, and a message goes round', async () => {
    const sub = await subscribe('dev1', KEY1, 'devices/dev1/#');
    const pub = await publish('dev1', KEY1, 'devices/dev1/temperature', '21.5');
    assert.equal(pub.code, 0, pub.stderr);
    const status = await sub.waitExit(8000);
    assert.equal(status.code, 0, sub.stderr);
    assert.deepEqual(messages(sub), ['21.5']);
  });

  it('a wrong key, or an identity the file does not know, fails the TLS handshake', async () => {
    // -d prints every packet: none is exchanged, the connection ends in the handshake.
    const wrongKey = await publish('dev1', KEY2, 'devices/dev1/x', 'no', ['-d']);
    assert.notEqual(wrongKey.code, 0, 'a wrong key is refused');
    assert.doesNotMatch(wrongKey.stdout + wrongKey.stderr, /CONNACK/);
    const unknown = await publish('stranger', KEY1, 'devices/stranger/x', 'no', ['-d']);
    assert.notEqual(unknown.code, 0, 'an unknown identity is refused');
    assert.doesNotMatch(unknown.stdout + unknown.stderr, /CONNACK/);
    await proc.waitStdout((out) => out.split('\n').filter((line) => line.includes('"tls.refused"')).length >= 2, 5000, 'both refusals audited');
  });

  it('the identity is the user name for authorization: dev1 may publish under devices/dev1/ only', async () => {
    const sub = await subscribe('dev2', KEY2, 'devices/dev2/#');
    // Not allowed: dropped by the broker (acknowledged, as MQTT 3.1.1 has no refusal).
    const denied = await publish('dev1', KEY1, 'devices/dev2/door', 'from dev1');
    assert.equal(denied.code, 0, denied.stderr);
    const allowed = await publish('dev2', KEY2, 'devices/dev2/door', 'from dev2');
    assert.equal(allowed.code, 0, allowed.stderr);
    await sub.waitExit(8000);
    assert.deepEqual(messages(sub), ['from dev2'], 'only the message dev2 may publish arrives');
    await proc.waitStdout((out) => /"publish\.refused".*"username":"dev1".*devices\/dev2\/door/.test(out), 5000, 'the refusal audited for user dev1');
  });

  it('a client that proved dev1 and names another user is refused', async () => {
    const other = await publish('dev1', KEY1, 'devices/dev1/x', 'no', ['-u', 'dev2']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr + other.stdout, /bad user name or password|not authori[sz]ed/i);
  });

  it('TLS 1.2 with a PSK suite (MQTT.js): the hint is sent, and the identity is accepted', async () => {
    let hint: string | null = null;
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, {
      clientId: 'psk-tls12', reconnectPeriod: 0, connectTimeout: 5000,
      maxVersion: 'TLSv1.2', ciphers: 'ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256',
      pskCallback: (offered: string | null) => {
        hint = offered;
        return { identity: 'dev2', psk: Buffer.from(KEY2, 'hex') };
      },
      checkServerIdentity: () => undefined,
    } as mqtt.IClientOptions & tls.ConnectionOptions);
    try {
      const socket = client.stream as tls.TLSSocket;
      assert.equal(socket.getProtocol(), 'TLSv1.2');
      assert.match(socket.getCipher().name, /PSK/);
      assert.equal(hint, 'moat-psk');
      await client.publishAsync('devices/dev2/tls12', 'ok', { qos: 1 });
    } finally {
      await client.endAsync();
    }
    await proc.waitStdout((out) => /"clientId":"psk-tls12".*"client connected"/.test(out), 5000, 'psk-tls12 connected');
  });

  it('a new PSK file renamed over the old one applies to the next handshakes without a reload', async () => {
    const fresh = path.join(dir, 'psk.txt.new');
    writeFileSync(fresh, `dev1:${KEY2}\ndev3:${KEY1}\n`);
    renameSync(fresh, path.join(dir, 'psk.txt'));
    await proc.waitStdout((out) => out.includes('TLS files changed: in force'), 10_000, 'the new keys applied');
    assert.notEqual((await publish('dev1', KEY1, 'devices/dev1/x', 'old key')).code, 0, 'the old key of dev1 no longer works');
    const renewed = await publish('dev1', KEY2, 'devices/dev1/x', 'new key');
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.notEqual((await publish('dev2', KEY2, 'devices/dev2/x', 'gone')).code, 0, 'dev2 is gone');
  });
});

describe('TLS-PSK keys on reload (SIGHUP)', () => {
  it('reload() reads the PSK file again: the listener\'s lookup takes the new keys at once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-psk-reload-'));
    const port = await freePort();
    const file = path.join(dir, 'moat.yaml');
    writeFileSync(path.join(dir, 'psk.txt'), `dev1:${KEY1}\n`);
    writeFileSync(file, `listeners:\n  - { port: ${port}, host: 127.0.0.1, allow_anonymous: true, tls: { psk_file: psk.txt } }\nstore:\n  type: memory\n`);
    const server = createServer({ configFile: file });
    server.logger.level = 'silent';
    await server.listen();
    try {
      const publish = (key: string): ReturnType<typeof run> => run('mosquitto_pub', [
        '-h', '127.0.0.1', '-p', String(port), '--psk', key, '--psk-identity', 'dev1', '-t', 'reload', '-m', 'x',
      ], { limitMs: 8000 });
      assert.equal((await publish(KEY1)).code, 0);
      writeFileSync(path.join(dir, 'psk.txt'), `dev1:${KEY2}\n`);
      const result = server.reload(); // before the file watch settles
      assert.equal(result.ok, true, result.error);
      assert.deepEqual(result.applied, ['tls certificates']);
      assert.equal((await publish(KEY2)).code, 0, 'the new key works');
      assert.notEqual((await publish(KEY1)).code, 0, 'the old one no longer does');
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TLS-PSK in the configuration file', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-psk-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (): string => path.join(dir, 'moat.yaml');
  const refusal = (text: string): ConfigError => {
    try {
      parseConfig(text, file());
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err;
    }
    assert.fail('the configuration was accepted');
  };
  const listener = (tlsLines: string[]): string => ['listeners:', '  - port: 8883', '    tls:', ...tlsLines.map((l) => `      ${l}`), ''].join('\n');

  it('Mosquitto\'s format: identity:hexkey lines, # comments and blank lines', () => {
    const keys = parsePskFile(`# devices\n\ndev1:${KEY1}\n  dev2:${KEY2.toUpperCase()}  \r\n`, 'psk.txt');
    assert.deepEqual([...keys.keys()], ['dev1', 'dev2']);
    assert.deepEqual(keys.get('dev2'), Buffer.from(KEY2, 'hex'));
    const problem = (text: string): string => {
      try {
        parsePskFile(text, 'psk.txt');
      } catch (err) {
        assert.ok(err instanceof PskFileError);
        return err.message;
      }
      assert.fail('accepted');
    };
    assert.equal(problem('dev1\n'), 'psk.txt:1: expected "identity:hexkey"');
    assert.equal(problem(`dev1:${KEY1}\n\ndev1:${KEY2}\n`), 'psk.txt:3: identity "dev1" appears twice');
    assert.equal(problem('dev1:0x1234\n'), 'psk.txt:1: the key of "dev1" starts with 0x: write the hexadecimal digits only');
    assert.equal(problem('dev1:xyz\n'), 'psk.txt:1: the key of "dev1" is not hexadecimal');
    assert.equal(problem('dev1:123\n'), 'psk.txt:1: the key of "dev1" has an odd number of hexadecimal digits');
    assert.equal(problem('dev1:\n'), 'psk.txt:1: identity "dev1" has no key');
  });

  it('a PSK-only listener: keys and hint loaded, no certificate needed', () => {
    writeFileSync(path.join(dir, 'psk.txt'), `dev1:${KEY1}\n`);
    const tlsOptions = parseConfig(listener(['psk_file: psk.txt', 'psk_hint: hello']), file()).broker.listeners![0]!.tls!;
    assert.deepEqual(tlsOptions.psk?.get('dev1'), Buffer.from(KEY1, 'hex'));
    assert.equal(tlsOptions.pskIdentityHint, 'hello');
    assert.equal(tlsOptions.cert, undefined);
    assert.doesNotMatch(JSON.stringify(tlsOptions), new RegExp(KEY1), 'the keys never appear in a serialised configuration');
  });

  it('an unreadable PSK file names file, line and key; a malformed line names its own line too', () => {
    let err = refusal(listener(['psk_file: missing.txt']));
    assert.equal(err.key, 'listeners.0.tls.psk_file');
    assert.equal(err.line, 4);
    assert.match(err.problem, /missing\.txt: ENOENT \(no such file\)/);
    writeFileSync(path.join(dir, 'bad.txt'), `dev1:${KEY1}\ndev2 ${KEY2}\n`);
    err = refusal(listener(['psk_file: bad.txt']));
    assert.equal(err.key, 'listeners.0.tls.psk_file');
    assert.match(err.problem, /bad\.txt:2: expected "identity:hexkey"/);
  });

  it('what does not go together: no certificate and no PSK file, psk_hint alone, PSK with a required client certificate, a psk provider without a PSK listener', () => {
    const missing = refusal(listener(['ca_file: ca.crt']));
    assert.equal(missing.key, 'listeners.0.tls.cert_file');
    assert.equal(missing.line, 3, 'the line of the tls block');
    assert.match(missing.problem, /needs cert_file and key_file \(or psk_file/);
    writeFileSync(path.join(dir, 'psk.txt'), `dev1:${KEY1}\n`);
    const hint = refusal(['listeners:', '  - port: 8883', '    tls:', '      cert_file: a.crt', '      psk_hint: hello', ''].join('\n'));
    assert.equal(hint.key, 'listeners.0.tls.key_file', 'a certificate without its key');
    assert.equal(refusal(listener(['psk_hint: hello', 'psk_file: missing.txt'])).key, 'listeners.0.tls.psk_file');
    const pki = makePki();
    try {
      const alone = refusal(listener([`cert_file: ${pki.serverCertFile}`, `key_file: ${pki.serverKeyFile}`, 'psk_hint: hello']));
      assert.equal(alone.key, 'listeners.0.tls.psk_hint');
      assert.match(alone.problem, /only means something with psk_file/);
    } finally {
      rmSync(pki.dir, { recursive: true, force: true });
    }
    writeFileSync(path.join(dir, 'psk.txt'), `dev1:${KEY1}\n`);
    assert.equal(refusal(listener(['psk_file: psk.txt', 'require_client_certificate: true'])).key, 'listeners.0.tls.psk_file');
    const err = refusal('listeners:\n  - port: 1883\nauthentication:\n  - type: psk\n');
    assert.equal(err.key, 'authentication.0.type');
    assert.match(err.problem, /no listener has tls\.psk_file/);
  });
});
