import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { freePort, killAll, spawnProc } from '../helpers/process.js';

/** The guard on a broker that authenticates nobody: configured explicitly, its bans and flapping detection still hold. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** CONNACK code of an MQTT.js connection from `from`, or -2 if closed without one. */
function connackFrom(port: number, from: string, options: mqtt.IClientOptions): Promise<number> {
  return new Promise((resolve) => {
    const client = new mqtt.MqttClient(() => net.connect({ port, host: '127.0.0.1', localAddress: from }), { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    const done = (code: number): void => {
      client.end(true);
      resolve(code);
    };
    client.once('connect', () => done(0));
    client.once('error', (err) => {
      const code = (err as { code?: unknown }).code;
      done(typeof code === 'number' ? code : -2); // a reset or refused socket: no CONNACK
    });
    client.once('close', () => done(-2));
  });
}

describe('guard without authentication', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-open-guard-'));
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('static bans on addresses, client identifiers and user names, and flapping, on an anonymous loopback broker', async () => {
    const port = await freePort();
    const file = path.join(dir, 'moat.yaml');
    writeFileSync(file, [
      `listeners:\n  - port: ${port}\n    host: 127.0.0.1`,
      'log:\n  format: json',
      'store:\n  type: memory',
      'guard:',
      '  flapping: { connects: 3, window: 60, ban: 60 }',
      '  bans:',
      '    - { address: 127.0.0.7, reason: scanner }',
      '    - { client_id: evil }',
      '    - { username: mallory }',
    ].join('\n'));
    const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');

    assert.equal(await connackFrom(port, '127.0.0.1', { clientId: 'fine' }), 0, 'anonymous clients are served');
    assert.equal(await connackFrom(port, '127.0.0.7', { clientId: 'fine-too' }), -2, 'a banned address is closed at accept');
    assert.equal(await connackFrom(port, '127.0.0.1', { clientId: 'evil' }), 5, 'a banned client identifier: CONNACK 5');
    assert.equal(await connackFrom(port, '127.0.0.1', { clientId: 'evil', protocolVersion: 5 }), 0x8a, 'MQTT 5: 0x8A Banned');
    assert.equal(await connackFrom(port, '127.0.0.1', { clientId: 'm', username: 'mallory' }), 5, 'a banned user name');
    // A client identifier that connects more than 3 times within a minute is banned from the fourth on.
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push(await connackFrom(port, '127.0.0.1', { clientId: 'flappy' }));
    assert.deepEqual(codes, [0, 0, 0, 0, 5, 5]);
    const audit = proc.stdout.split('\n').filter((l) => l.includes('"guard.banned"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(audit.map((l) => [l.clientId, l.rule]), [['flappy', 'flapping']]);
  });
});
