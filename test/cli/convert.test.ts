import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { parse } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import type { FileConfig } from '../../src/config/schema.js';
import { makePki } from '../../bench/lib/pki.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * `moat convert`, run as a real process, and the YAML it writes run as a real
 * Moat broker; the same mosquitto_pub / mosquitto_sub commands go to the real
 * Mosquitto started on the same configuration file, to show they agree.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const DEBIAN_CONF = '/etc/mosquitto/mosquitto.conf';

function convert(args: string[], cwd?: string): ReturnType<typeof run> {
  return run(process.execPath, [MOAT, 'convert', ...args], { limitMs: 15_000, ...(cwd && { cwd }) });
}

/** Converts `conf` into `yaml` (exit status 0 asserted) and returns the parsed YAML. */
async function convertTo(conf: string, yaml: string): Promise<FileConfig> {
  const r = await convert([conf]);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(yaml, r.stdout);
  return parse(r.stdout) as FileConfig;
}

async function startMoat(yaml: string, cwd: string): Promise<Proc> {
  const proc = spawnProc(process.execPath, [MOAT, '-c', yaml], { cwd, limitMs: 60_000 });
  await proc.waitStdout((out) => out.includes('"msg":"moat started"'), 15_000, 'moat started');
  return proc;
}

function startMosquitto(conf: string, cwd: string): Proc {
  return spawnProc('mosquitto', ['-c', conf], { cwd, limitMs: 60_000 });
}

/** mosquitto_pub's exit status and error text (it exits non-zero when CONNACK refuses). */
async function pub(port: number, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', ...args], { limitMs: 10_000 });
  return { code: r.code, stderr: r.stderr };
}

/** Retries mosquitto_pub until it succeeds: the broker is up and accepts that client. */
async function untilAccepted(port: number, args: string[], what: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 50; i++) {
    const r = await pub(port, args);
    if (r.code === 0) return;
    last = r.stderr;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail(`${what} on port ${port} never accepted ${args.join(' ')}: ${last}`);
}

/**
 * Starts mosquitto_sub (-v: "topic payload"), publishes probes (`probe`: client and topic) until one arrives, runs
 * `during`, and stops once `lastLine` arrives; returns the lines other than the probes.
 */
async function subscribe(port: number, args: string[], probe: string[], during: () => Promise<void>, lastLine: string): Promise<string[]> {
  const sub = spawnProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-v', '-q', '1', '-W', '20', ...args], { limitMs: 25_000 });
  let probes = 0;
  while (!sub.stdout.includes(' ready')) {
    assert.equal(sub.status, undefined, `mosquitto_sub exited: ${sub.stderr}`);
    assert.ok(probes++ < 50, 'mosquitto_sub never received the probe');
    assert.equal((await pub(port, [...probe, '-m', 'ready'])).code, 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await during();
  await sub.waitStdout((out) => out.includes(lastLine), 10_000, lastLine);
  sub.kill();
  return sub.stdout.split('\n').filter((l) => l !== '' && !l.endsWith(' ready'));
}

/** An MQTT.js client over WebSockets once connected, or why it could not connect. */
function wsClient(url: string): Promise<MqttClient | Error> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, clientId: `ws-${process.pid}-${url.length}` });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      resolve(err);
    });
    client.once('close', () => resolve(new Error('closed before CONNACK')));
  });
}

describe('moat convert (command line)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-convert-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--help prints the usage on stdout, exit status 0', async () => {
    const r = await convert(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /usage: moat convert <mosquitto\.conf> > moat\.yaml/);
  });

  it('no file, or an unreadable one: a message naming it on stderr, exit status 1, nothing on stdout', async () => {
    const none = await convert([]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no file given/);
    const missing = path.join(dir, 'missing.conf');
    const r = await convert([missing]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`cannot read ${missing}`), r.stderr);
    assert.equal(r.stdout, '');
  });

  it('moat -c with a Mosquitto file says what it is and shows the convert command, exit status 1', async () => {
    const conf = path.join(dir, 'mosquitto.conf');
    writeFileSync(conf, 'listener 1883\nallow_anonymous false\npassword_file /etc/mosquitto/passwd\n');
    const r = await run(process.execPath, [MOAT, '-c', conf], { limitMs: 15_000 });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `moat: ${conf}: this is a Mosquitto configuration file; convert it with: moat convert ${conf} > moat.yaml\n`);
  });

  it("Debian's /etc/mosquitto/mosquitto.conf converts to a configuration Moat loads", async () => {
    const yaml = path.join(dir, 'debian.yaml');
    const config = await convertTo(DEBIAN_CONF, yaml);
    assert.deepEqual(config.listeners, [{ host: '127.0.0.1', port: 1883, allow_anonymous: true }], 'no listener: local-only mode');
    assert.deepEqual(config.store, { type: 'sqlite', directory: '/var/lib/mosquitto' });
    const text = readFileSync(yaml, 'utf8');
    assert.match(text, /# {3}mosquitto\.conf:\d+: pid_file \/run\/mosquitto\/mosquitto\.pid — /);
    assert.match(text, /# {3}mosquitto\.conf:\d+: log_dest file \/var\/log\/mosquitto\/mosquitto\.log — /);
    const loaded = loadConfigFile(yaml);
    assert.equal(loaded.store.type, 'sqlite');
    assert.deepEqual(loaded.broker.listeners?.map((l) => [l.host, l.port, l.allowAnonymous]), [['127.0.0.1', 1883, true]]);
  });
});

describe('converted configurations run: Moat and Mosquitto answer the same commands', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-convert-run-'));
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("Debian's configuration with a listener added in conf.d: a message goes round on both brokers", async () => {
    const debian = readFileSync(DEBIAN_CONF, 'utf8');
    for (const broker of ['moat', 'mosquitto'] as const) {
      const home = path.join(dir, `debian-${broker}`);
      mkdirSync(path.join(home, 'conf.d'), { recursive: true });
      mkdirSync(path.join(home, 'data'));
      // Debian's file, with its paths moved into the test directory and include_dir pointing at our conf.d.
      writeFileSync(path.join(home, 'mosquitto.conf'), debian
        .replace(/^pid_file .*$/m, `pid_file ${home}/mosquitto.pid`)
        .replace(/^persistence_location .*$/m, 'persistence_location data/')
        .replace(/^log_dest file .*$/m, `log_dest file ${home}/mosquitto.log`)
        .replace(/^include_dir .*$/m, 'include_dir conf.d'));
      const port = await freePort();
      writeFileSync(path.join(home, 'conf.d', 'local.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nuser root\n`);
      writeFileSync(path.join(home, 'conf.d', 'README'), 'not read: only *.conf files are\n');
      let proc: Proc;
      if (broker === 'moat') {
        const yaml = path.join(home, 'moat.yaml');
        const config = await convertTo(path.join(home, 'mosquitto.conf'), yaml);
        assert.deepEqual(config.listeners, [{ host: '127.0.0.1', port, allow_anonymous: true }]);
        assert.deepEqual(config.store, { type: 'sqlite', directory: path.join(home, 'data') });
        assert.match(readFileSync(yaml, 'utf8'), /conf\.d\/local\.conf:3: user root — /);
        assert.equal(loadConfigFile(yaml).store.type, 'sqlite');
        proc = await startMoat(yaml, tmpdir());
      } else {
        proc = await startMosquitto(path.join(home, 'mosquitto.conf'), home);
      }
      await untilAccepted(port, ['-t', 'boot', '-m', 'x'], broker);
      const lines = await subscribe(port, ['-t', 'hello/#'], ['-t', 'hello/probe'], async () => {
        assert.equal((await pub(port, ['-t', 'hello/world', '-m', 'from-mosquitto_pub'])).code, 0);
      }, 'hello/world from-mosquitto_pub');
      assert.deepEqual(lines, ['hello/world from-mosquitto_pub'], broker);
      proc.kill();
      await proc.waitExit(10_000);
    }
  });

  it('a WebSocket listener beside a TCP one: MQTT.js over ws:// gets what mosquitto_pub sends over TCP on both brokers; Moat serves /mqtt only', async () => {
    for (const broker of ['moat', 'mosquitto'] as const) {
      const home = path.join(dir, `ws-${broker}`);
      mkdirSync(path.join(home, 'www'), { recursive: true });
      const tcp = await freePort();
      const ws = await freePort();
      const conf = path.join(home, 'mosquitto.conf');
      // Debian's Mosquitto (2.0.11) opens no WebSocket listener without a plain one, the usual pair anyway;
      // user root keeps it able to read the test's private directory (http_dir).
      writeFileSync(conf, [
        'user root',
        `listener ${tcp} 127.0.0.1`,
        'protocol mqtt',
        `listener ${ws} 127.0.0.1`,
        'protocol websockets',
        'http_dir www',
        'websockets_log_level 0',
        'allow_anonymous true',
        'persistence false',
        '',
      ].join('\n'));
      let proc: Proc;
      if (broker === 'moat') {
        const yaml = path.join(home, 'moat.yaml');
        const config = await convertTo(conf, yaml);
        assert.deepEqual(config.listeners, [
          { host: '127.0.0.1', port: tcp, allow_anonymous: true },
          { host: '127.0.0.1', port: ws, allow_anonymous: true, websocket: {} },
        ]);
        const text = readFileSync(yaml, 'utf8');
        assert.match(text, /mosquitto\.conf:6: http_dir www — not supported: Moat serves no files/);
        assert.match(text, /mosquitto\.conf:4: protocol websockets: Mosquitto answers WebSocket clients on any URL path, Moat only on websocket\.path/);
        proc = await startMoat(yaml, tmpdir());
      } else {
        proc = startMosquitto(conf, home);
      }
      await untilAccepted(tcp, ['-t', 'boot', '-m', 'x'], broker);
      const client = await wsClient(`ws://127.0.0.1:${ws}/mqtt`);
      assert.ok(!(client instanceof Error), `${broker}: MQTT.js connects over ws:// (${String(client)})`);
      try {
        await client.subscribeAsync('web/#', { qos: 1 });
        const received = new Promise<string>((resolve) => client.once('message', (topic, payload) => resolve(`${topic} ${payload.toString()}`)));
        assert.equal((await pub(tcp, ['-t', 'web/hello', '-m', 'from-tcp'])).code, 0);
        assert.equal(await received, 'web/hello from-tcp', broker);
      } finally {
        client.end(true);
      }
      const elsewhere = await wsClient(`ws://127.0.0.1:${ws}/elsewhere`);
      if (!(elsewhere instanceof Error)) elsewhere.end(true);
      if (broker === 'mosquitto') assert.ok(!(elsewhere instanceof Error), 'Mosquitto serves any path');
      else assert.ok(elsewhere instanceof Error, 'Moat serves websocket.path only (the note in the output says so)');
      proc.kill();
      await proc.waitExit(10_000);
    }
  });

  it('a TLS-PSK listener (psk_hint, psk_file, use_identity_as_username) and a Unix socket listener: mosquitto_pub --psk gets through to a subscriber on the socket on both brokers', async () => {
    const KEY = '6d6f61742d636f6e766572742d70736b';
    for (const broker of ['moat', 'mosquitto'] as const) {
      const home = path.join(dir, `psk-${broker}`);
      mkdirSync(home, { recursive: true });
      writeFileSync(path.join(home, 'keys.psk'), `dev1:${KEY}\n`);
      // Anonymous clients (the socket's) may read; dev1, named by its PSK identity, may write under devices/dev1/.
      writeFileSync(path.join(home, 'rules.acl'), 'topic read devices/#\n\nuser dev1\ntopic readwrite devices/dev1/#\n');
      const port = await freePort();
      const conf = path.join(home, 'mosquitto.conf');
      // Relative paths: Mosquitto takes them from its working directory (home), Moat gets them absolute.
      writeFileSync(conf, [
        'user root',
        `listener ${port} 127.0.0.1`,
        'psk_hint moat-convert',
        'use_identity_as_username true',
        'listener 0 mq.sock',
        'allow_anonymous true',
        'psk_file keys.psk',
        'acl_file rules.acl',
        'persistence false',
        '',
      ].join('\n'));
      const socket = path.join(home, 'mq.sock');
      let proc: Proc;
      if (broker === 'moat') {
        const yaml = path.join(home, 'moat.yaml');
        const config = await convertTo(conf, yaml);
        assert.deepEqual(config.listeners, [
          { host: '127.0.0.1', port, allow_anonymous: true, tls: { psk_file: path.join(home, 'keys.psk'), psk_hint: 'moat-convert' } },
          { path: socket, allow_anonymous: true },
        ]);
        assert.deepEqual(config.authentication, [{ type: 'psk', require_username_match: false }]);
        proc = await startMoat(yaml, tmpdir());
      } else {
        proc = startMosquitto(conf, home);
      }
      const psk = (key: string): string[] => ['--psk', key, '--psk-identity', 'dev1'];
      await untilAccepted(port, [...psk(KEY), '-t', 'devices/dev1/boot', '-m', 'x'], broker);
      const wrong = await pub(port, [...psk('00112233445566778899aabbccddeeff'), '-t', 'devices/dev1/t', '-m', 'no']);
      assert.notEqual(wrong.code, 0, `${broker}: a wrong key fails the handshake`);

      // Line-buffered, so that its debug lines (the SUBACK) arrive as they are printed.
      const sub = spawnProc('stdbuf', ['-oL', 'mosquitto_sub', '--unix', socket, '-t', 'devices/#', '-v', '-q', '1', '-C', '1', '-W', '10', '-d'], { limitMs: 15_000 });
      await sub.waitStdout((out) => out.includes('SUBACK'), 8000, `${broker}: the SUBACK on the Unix socket`);
      // The ACL lets dev1 write only under devices/dev1/: what arrives was published as user dev1, the PSK identity.
      assert.equal((await pub(port, [...psk(KEY), '-t', 'devices/dev2/t', '-m', 'not-dev1'])).code, 0);
      assert.equal((await pub(port, [...psk(KEY), '-u', 'someone-else', '-t', 'devices/dev1/t', '-m', 'from-psk'])).code, 0, `${broker}: the CONNECT user name is replaced by the identity`);
      const status = await sub.waitExit(10_000);
      assert.equal(status.code, 0, `${broker}: ${sub.stderr}`);
      const lines = sub.stdout.split('\n').filter((l) => l !== '' && !l.startsWith('Client ') && !l.startsWith('Subscribed ('));
      assert.deepEqual(lines, ['devices/dev1/t from-psk'], broker);
      proc.kill();
      await proc.waitExit(10_000);
    }
  });

  it('TLS, a mosquitto_passwd password file and an acl_file: the same clients pass and fail on both brokers', async () => {
    const pki = makePki();
    try {
      for (const broker of ['moat', 'mosquitto'] as const) {
        const home = path.join(dir, `secure-${broker}`);
        mkdirSync(path.join(home, 'certs'), { recursive: true });
        for (const f of ['ca.crt', 'server.crt', 'server.key']) copyFileSync(path.join(pki.dir, f), path.join(home, 'certs', f));
        const pw = path.join(home, 'passwords');
        assert.equal((await run('mosquitto_passwd', ['-c', '-b', pw, 'sensor', 'sensor-pw'])).code, 0);
        assert.equal((await run('mosquitto_passwd', ['-b', pw, 'viewer', 'viewer-pw'])).code, 0);
        writeFileSync(path.join(home, 'rules.acl'), [
          'user sensor',
          'topic write sensors/#',
          '',
          'user viewer',
          'topic deny sensors/secret',
          'topic read sensors/#',
          '',
        ].join('\n'));
        const port = await freePort();
        const conf = path.join(home, 'mosquitto.conf');
        // Relative paths throughout: Mosquitto takes them from its working directory (home), Moat gets them absolute.
        writeFileSync(conf, [
          '# a secured Mosquitto',
          'per_listener_settings false',
          'user root',
          `listener ${port} 127.0.0.1`,
          'certfile certs/server.crt',
          'keyfile certs/server.key',
          'cafile certs/ca.crt',
          'require_certificate false',
          '',
          'allow_anonymous false',
          'password_file passwords',
          'acl_file rules.acl',
          'persistence false',
          'max_inflight_messages 20',
          '',
        ].join('\n'));
        let proc: Proc;
        if (broker === 'moat') {
          const out = path.join(home, 'out');
          mkdirSync(out);
          const yaml = path.join(out, 'moat.yaml');
          const config = await convertTo(conf, yaml);
          assert.deepEqual(config.listeners, [{
            host: '127.0.0.1', port, allow_anonymous: false,
            tls: { cert_file: path.join(home, 'certs/server.crt'), key_file: path.join(home, 'certs/server.key'), ca_file: path.join(home, 'certs/ca.crt') },
          }]);
          assert.deepEqual(config.authentication, [{ type: 'password_file', path: pw }]);
          assert.deepEqual(config.authorization, { acl_file: path.join(home, 'rules.acl') });
          assert.deepEqual(config.store, { type: 'memory' });
          assert.equal(config.limits?.max_inflight_messages, 20);
          const loaded = loadConfigFile(yaml);
          assert.ok(loaded.broker.listeners?.[0]?.tls, 'the TLS files were read');
          assert.equal(loaded.security.authorization?.aclFile, path.join(home, 'rules.acl'));
          proc = await startMoat(yaml, tmpdir()); // another working directory: the paths must not depend on it
        } else {
          proc = await startMosquitto(conf, home);
        }
        const tls = ['--cafile', path.join(home, 'certs', 'ca.crt')];
        const sensor = [...tls, '-u', 'sensor', '-P', 'sensor-pw'];
        await untilAccepted(port, [...sensor, '-t', 'sensors/boot', '-m', 'x'], broker);

        const wrong = await pub(port, [...tls, '-u', 'sensor', '-P', 'wrong', '-t', 'sensors/t', '-m', '1']);
        assert.notEqual(wrong.code, 0, `${broker}: a wrong password is refused`);
        assert.match(wrong.stderr, /not authori[sz]ed|bad user name or password/i, broker);
        assert.notEqual((await pub(port, [...tls, '-t', 'sensors/t', '-m', '1'])).code, 0, `${broker}: anonymous clients are refused`);
        assert.notEqual((await pub(port, ['-u', 'sensor', '-P', 'sensor-pw', '-t', 'sensors/t', '-m', '1'])).code, 0, `${broker}: plain MQTT on the TLS port fails`);

        const lines = await subscribe(port, [...tls, '-u', 'viewer', '-P', 'viewer-pw', '-t', 'sensors/#'], [...sensor, '-t', 'sensors/probe'], async () => {
          assert.equal((await pub(port, [...sensor, '-t', 'sensors/secret', '-m', 'hidden'])).code, 0);
          assert.equal((await pub(port, [...sensor, '-t', 'sensors/temp', '-m', 'allowed'])).code, 0);
        }, 'sensors/temp allowed');
        assert.deepEqual(lines, ['sensors/temp allowed'], `${broker}: the ACL keeps sensors/secret from the viewer`);
        proc.kill();
        await proc.waitExit(10_000);
      }
    } finally {
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });
});
