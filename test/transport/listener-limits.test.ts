import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, killAll, spawnProc } from '../helpers/process.js';

/** A listener's own max_connections, against a real `moat` process. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

/** The client once connected, or 'refused' if the socket closed first. */
function attempt(port: number, clientId: string): Promise<MqttClient | 'refused'> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0, connectTimeout: 3000 });
  return new Promise((resolve) => {
    client.once('connect', () => resolve(client));
    client.once('close', () => {
      client.end(true);
      resolve('refused');
    });
  });
}

describe('max_connections per listener', () => {
  let dir: string;
  let small: number;
  let big: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-listener-limits-'));
    [small, big] = [await freePort(), await freePort()];
    writeFileSync(path.join(dir, 'moat.yaml'), `listeners:\n  - { port: ${small}, host: 127.0.0.1, max_connections: 2 }\n  - { port: ${big}, host: 127.0.0.1 }\nlog:\n  format: json\nstore:\n  type: memory\n`);
    const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the third connection to a listener of two is closed, the other listener serves, and a freed place is taken again', async () => {
    const first = await attempt(small, 'one');
    const second = await attempt(small, 'two');
    assert.ok(first !== 'refused' && second !== 'refused');
    assert.equal(await attempt(small, 'three'), 'refused');
    const elsewhere = await attempt(big, 'elsewhere');
    assert.notEqual(elsewhere, 'refused');
    await first.endAsync();
    await new Promise((r) => setTimeout(r, 200));
    const again = await attempt(small, 'again');
    assert.notEqual(again, 'refused', 'the place the first left is free again');
    for (const c of [second, elsewhere, again]) if (c !== 'refused') await c.endAsync();
  });
});
