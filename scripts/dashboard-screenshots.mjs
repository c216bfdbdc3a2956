#!/usr/bin/env node
// Screenshots of the admin dashboard for the docs (docs/images/dashboard-*.png): starts a real `moat` with an admin
// listener, gives it some traffic (clients, retained messages, a slow offline subscriber whose QoS 0 messages are
// dropped, refused logins, a denied publish, bans, a runtime role and user), lets the charts fill, and photographs
// each view in headless Chromium. Run after `npm run build`; it takes about a minute and a half.
// Usage: node scripts/dashboard-screenshots.mjs [seconds of traffic before the photos, default 80]
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MqttClient } from 'mqtt';
import { chromium } from 'playwright-core';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { createEntry, formatEntry } = await import(path.join(root, 'dist/src/security/index.js'));
const out = path.join(root, 'docs', 'images');
const seconds = Number(process.argv[2] ?? 80);
const TOKEN = `shots-${createHash('sha256').update(String(Math.random())).digest('hex')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const dir = mkdtempSync(path.join(tmpdir(), 'moat-shots-'));
const mqttPort = await freePort();
const adminPort = await freePort();
const base = `http://127.0.0.1:${adminPort}`;
const users = { root: 'root-password', 'line-1': 'line-password', 'line-2': 'line-password', viewer: 'viewer-password' };
const fast = { logN: 10, r: 8, p: 1 };
const entries = await Promise.all(Object.entries(users).map(async ([u, p]) => formatEntry(await createEntry(u, Buffer.from(p), fast))));
writeFileSync(path.join(dir, 'passwords'), `${entries.join('\n')}\n`);
writeFileSync(path.join(dir, 'moat.yaml'), `
listeners:
  - { name: mqtt, host: 127.0.0.1, port: ${mqttPort} }
authentication:
  - { type: password_file, path: passwords }
authorization:
  roles:
    admin: []
    line: [{ topic: "plant/#" }]
    viewer: [{ topic: "plant/#", actions: [subscribe] }]
  users:
    root: { roles: [admin] }
    line-1: { roles: [line] }
    line-2: { roles: [line] }
    viewer: { roles: [viewer] }
audit: { file: audit.log }
admin:
  host: 127.0.0.1
  port: ${adminPort}
  tokens:
    - { name: screenshots, token_sha256: ${createHash('sha256').update(TOKEN).digest('hex')}, scopes: [read, write] }
log: { level: warn }
store: { type: memory }
`);

const moat = spawn(process.execPath, [path.join(root, 'dist/src/cli/moat.js'), '-c', 'moat.yaml'], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
const clients = [];
let browser;
try {
  await waitForAdmin();
  const api = (method, pathname, body) => fetch(`${base}${pathname}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, ...(body && { body: JSON.stringify(body) }),
  }).then((r) => r.json());

  // Clients: production lines publishing, viewers subscribed, one persistent subscriber gone offline (its QoS 0 is dropped).
  const offline = await connect('historian', 'viewer', { from: '127.0.0.9', clean: false, properties: { sessionExpiryInterval: 3600 } });
  await offline.subscribeAsync('plant/#', { qos: 0 });
  offline.end(true);
  const lines = [];
  for (let i = 1; i <= 6; i++) lines.push(await connect(`line-${1 + (i % 2)}-press-${i}`, `line-${1 + (i % 2)}`, { from: `127.0.0.${10 + i}` }));
  for (let i = 1; i <= 4; i++) (await connect(`hmi-${i}`, 'viewer', { from: `127.0.0.${20 + i}`, protocolVersion: i % 2 ? 5 : 4 })).subscribe('plant/#');
  await connect('dashboard-tv', 'viewer', { from: '127.0.0.30' });
  for (const [topic, value] of [['plant/line1/press/temp', '71.3'], ['plant/line1/press/state', '{"state":"running","rpm":1450}'], ['plant/line2/oven/temp', '212.0'], ['plant/line2/oven/state', '{"state":"idle"}'], ['plant/config/shift', 'B']]) {
    await lines[0].publishAsync(topic, value, { qos: 1, retain: true, properties: { contentType: value.startsWith('{') ? 'application/json' : 'text/plain' } });
  }

  // Runtime security: a role and a user made through the API.
  await api('POST', '/api/v1/roles', { name: 'maintenance', rules: [{ filter: 'plant/+/+/cmd', actions: ['publish'], effect: 'allow' }, { filter: 'plant/#', actions: ['subscribe', 'receive'], effect: 'allow' }] });
  await api('POST', '/api/v1/users', { name: 'technician', password: 'technician-password', roles: ['maintenance'] });
  await api('POST', '/api/v1/users', { name: 'contractor', password: 'contractor-password', roles: ['viewer'], disabled: true });

  // Traffic that rises and falls, so the charts have a shape.
  const started = Date.now();
  const traffic = setInterval(() => {
    const t = (Date.now() - started) / 1000;
    const burst = Math.round(30 + 25 * Math.sin(t / 9) + (t > 40 && t < 55 ? 40 : 0));
    for (let i = 0; i < burst; i++) lines[i % lines.length].publish(`plant/line${1 + (i % 2)}/press/temp`, String(70 + Math.random() * 3), { qos: i % 3 === 0 ? 1 : 0 });
  }, 250);
  const churn = setInterval(async () => {
    const c = await connect(`scanner-${Math.floor(Math.random() * 1000)}`, 'viewer', { from: '127.0.0.40' }).catch(() => undefined);
    setTimeout(() => c?.end(true), 6000);
  }, 5000);

  // Logged in first: the page's charts keep the history from its own samples.
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  const page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
  await page.goto(`${base}/`);
  await page.fill('#login-user', 'root');
  await page.fill('#login-password', 'root-password');
  await page.click('#login-form button[type=submit]');
  await page.locator('#app').waitFor({ state: 'visible' });

  // Security events along the way: wrong passwords (the guard bans the address after a few), a denied publish, a ban.
  await sleep(seconds * 500);
  for (let i = 0; i < 6; i++) await connect(`intruder-${i}`, 'line-1', { from: '127.0.0.66', password: 'guess' }).catch(() => {});
  const viewer = await connect('hmi-rogue', 'viewer', { from: '127.0.0.23' });
  viewer.publish('plant/line1/press/cmd', 'stop', { qos: 1 });
  await api('POST', '/api/v1/bans', { kind: 'network', value: '198.51.100.0/24', duration: 86400, reason: 'port scanner' });
  await sleep(seconds * 500);
  clearInterval(traffic);
  clearInterval(churn);

  mkdirSync(out, { recursive: true });
  const shoot = async (name) => {
    await sleep(600);
    await page.screenshot({ path: path.join(out, `dashboard-${name}.png`) });
    process.stdout.write(`docs/images/dashboard-${name}.png\n`);
  };
  await shoot('overview');
  await page.click('nav a[data-view="clients"]');
  await page.locator('#clients tbody tr[data-id]').first().waitFor();
  await shoot('clients');
  await page.click('nav a[data-view="topics"]');
  await page.locator('#topic-tree .node[data-topic="plant"]').click();
  await page.locator('#topic-tree .node[data-topic="plant/line1"]').click();
  await page.locator('#topic-tree .node[data-topic="plant/line1/press"]').click();
  await page.locator('#retained tbody tr[data-topic="plant/line1/press/state"]').click();
  await page.locator('#retained-payload').waitFor();
  await shoot('topics');
  await page.click('nav a[data-view="security"]');
  await page.locator('#feed tbody tr[data-seq]').first().waitFor();
  await shoot('security');
  await page.click('nav a[data-view="users"]');
  await page.locator('#users tbody tr[data-user]').first().waitFor();
  await page.locator('#roles tbody tr[data-role="maintenance"] button', { hasText: 'Edit' }).click();
  await shoot('users');
} finally {
  for (const c of clients) c.end(true);
  await browser?.close();
  moat.kill('SIGTERM');
  await new Promise((resolve) => moat.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
}

function connect(clientId, username, { from = '127.0.0.1', password = username === 'root' ? users.root : users[username], ...extra } = {}) {
  const client = new MqttClient(() => net.connect({ host: '127.0.0.1', port: mqttPort, localAddress: from }), {
    clientId, username, password, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...extra,
  });
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
    client.once('close', () => reject(new Error(`${clientId}: closed`)));
  });
}

async function waitForAdmin() {
  for (let i = 0; i < 100; i++) {
    if (moat.exitCode !== null) throw new Error(`moat exited (${moat.exitCode})`);
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error('moat did not become ready');
}
