import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/**
 * A real browser (headless Chromium, Debian's `chromium`) loads a page that uses MQTT.js's browser build over
 * ws:// to a `moat` process, and exchanges a message with mosquitto_pub/sub on TCP; a page from an Origin the
 * listener does not allow is refused before the upgrade.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const MQTT_BROWSER = readFileSync(path.join(ROOT, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js'), 'utf8');

/** The page: connects, subscribes to `page/in`, publishes what arrives there to `page/out`; its progress in `window.log`. */
const PAGE = (url: string): string => `<!doctype html><meta charset="utf-8"><title>moat</title>
<script>${MQTT_BROWSER}</script>
<script>
  window.log = [];
  const client = mqtt.connect(${JSON.stringify(url)}, { reconnectPeriod: 0, connectTimeout: 5000 });
  client.on('connect', () => client.subscribe('page/in', { qos: 1 }, () => window.log.push('subscribed')));
  client.on('message', (topic, payload) => {
    window.log.push('got ' + payload.toString());
    client.publish('page/out', 'echo ' + payload.toString(), { qos: 1 });
  });
  client.on('error', (err) => window.log.push('error ' + err.message));
  client.on('close', () => window.log.push('closed'));
</script>`;

/** Serves the page on 127.0.0.1 (origin http://127.0.0.1:port). */
async function pageServer(html: string): Promise<{ server: http.Server; origin: string }> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('MQTT over WebSockets from a browser', () => {
  let dir: string;
  let browser: Browser;
  let proc: Proc;
  let tcp: number;
  let ws: number;
  let allowed: { server: http.Server; origin: string };
  let other: { server: http.Server; origin: string };
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-browser-'));
    [tcp, ws] = [await freePort(), await freePort()];
    allowed = await pageServer(PAGE(`ws://127.0.0.1:${ws}/mqtt`));
    other = await pageServer(PAGE(`ws://127.0.0.1:${ws}/mqtt`));
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'listeners:',
      `  - { port: ${tcp}, host: 127.0.0.1 }`,
      `  - { port: ${ws}, host: 127.0.0.1, websocket: { allowed_origins: ["${allowed.origin}"] } }`,
      'log:\n  format: json',
      'store:\n  type: memory',
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    allowed?.server.close();
    other?.server.close();
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a page on an allowed origin subscribes, receives from a TCP client and publishes back', async () => {
    const page = await browser.newPage();
    await page.goto(allowed.origin);
    await page.waitForFunction(() => (globalThis as unknown as { log: string[] }).log.includes('subscribed'), undefined, { timeout: 10_000 });
    const sub = spawnProc('mosquitto_sub', ['-p', String(tcp), '-t', 'page/out', '-C', '1', '-q', '1']);
    await new Promise((r) => setTimeout(r, 300));
    const pub = spawnProc('mosquitto_pub', ['-p', String(tcp), '-t', 'page/in', '-m', 'hello browser', '-q', '1']);
    assert.equal((await pub.waitExit(5000)).code, 0);
    assert.equal((await sub.waitExit(10_000)).code, 0);
    assert.equal(sub.stdout.trim(), 'echo hello browser');
    const log = await page.evaluate(() => (globalThis as unknown as { log: string[] }).log);
    assert.deepEqual(log.slice(0, 2), ['subscribed', 'got hello browser']);
    await page.close();
  });

  it('a page on another origin is refused before the upgrade and never connects', async () => {
    const page = await browser.newPage();
    await page.goto(other.origin);
    await page.waitForFunction(() => (globalThis as unknown as { log: string[] }).log.some((l) => l.startsWith('error') || l === 'closed'), undefined, { timeout: 10_000 });
    const log = await page.evaluate(() => (globalThis as unknown as { log: string[] }).log);
    assert.ok(!log.includes('subscribed'), `never connected: ${log.join(', ')}`);
    await page.close();
  });
});
