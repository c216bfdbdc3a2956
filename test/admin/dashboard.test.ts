import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MqttClient, type IClientOptions } from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startAdminBroker } from '../helpers/admin.js';
import { killAll } from '../helpers/process.js';

/**
 * The dashboard end to end: a real `moat` process with an admin listener, Debian's Chromium driven by playwright-core,
 * MQTT.js clients from several loopback addresses. Log in (a wrong password refused), a client appears and is kicked
 * (MQTT 5 DISCONNECT 0x98), a refused login appears in the security feed, an address banned from the page has its
 * next connection refused (and again after a Ban from the clients table), the topic tree with a retained message,
 * users and roles created and deleted, logout. And the page's own safety: the CSP on every asset, nothing from the
 * API without credentials, attacker-chosen identifiers and payloads shown as text.
 */

const CHROMIUM = '/usr/bin/chromium';
const READ_TOKEN = 'read-0123456789abcdef0123456789abcdef0123456789';
const WAIT = { timeout: 8000 };

describe('admin dashboard (src/admin/dashboard/)', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  let browser: Browser;
  let page: Page;
  const clients: MqttClient[] = [];
  /** Console errors and uncaught exceptions in the page; a CSP violation is one. */
  const pageErrors: string[] = [];

  /** An MQTT.js client from `localAddress` (another loopback address looks like another machine). */
  function client(clientId: string, { from = '127.0.0.1', user = 'bob', password = 'bob-password', extra = {} as Partial<IClientOptions> } = {}): MqttClient {
    const c = new MqttClient(() => net.connect({ host: '127.0.0.1', port: mqttPort, localAddress: from }), {
      clientId, username: user, password, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...extra,
    });
    clients.push(c);
    return c;
  }
  const connected = (c: MqttClient): Promise<MqttClient> => new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
  /**
   * How a connection attempt ended: connected, refused with a CONNACK reason code, or closed before any CONNACK (a
   * ban at accept: the socket is reset, or just closed).
   */
  const attempt = (c: MqttClient): Promise<string> => new Promise((resolve) => {
    c.once('connect', () => resolve('connected'));
    c.once('error', (err: Error & { code?: number | string }) => resolve(typeof err.code === 'number' ? `refused ${err.code}` : 'closed'));
    c.once('close', () => resolve('closed'));
  });

  async function show(view: string): Promise<void> {
    await page.click(`nav a[data-view="${view}"]`);
    await page.locator(`#view-${view}`).waitFor({ state: 'visible' });
  }
  async function confirmDialog(): Promise<void> {
    await page.locator('#dialog').waitFor({ state: 'visible' });
    await page.click('#dialog-confirm');
    await page.locator('#dialog').waitFor({ state: 'hidden' });
  }
  async function signIn(user: string, password: string): Promise<void> {
    await page.fill('#login-user', user);
    await page.fill('#login-password', password);
    await page.click('#login-form button[type=submit]');
  }

  before(async () => {
    ({ dir, mqttPort, base } = await startAdminBroker({
      prefix: 'moat-dashboard-',
      users: { root: { password: 'root-password', roles: ['admin'] }, bob: { password: 'bob-password', roles: ['device'] } },
      tokens: [{ name: 'reader', token: READ_TOKEN, scopes: ['read'] }],
      yaml: ['audit: { file: audit.log }'],
    }));
    // Chromium's sandbox needs user namespaces it does not get as root in a container.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on('console', (message) => {
      // The browser reports 401 and 403 answers as console errors: the wrong login, a read token on /metrics. Nothing else.
      if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[13]/.test(message.text())) pageErrors.push(message.text());
    });
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await browser?.close();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('assets: served open with a strict Content-Security-Policy, no inline script; only known files; the API refuses the page without credentials', async () => {
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
    const html = await index.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=/i, 'no inline style or handler');
    const assets = [...html.matchAll(/(?:src|href)="(\/dashboard\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.includes('/dashboard/app.js') && assets.includes('/dashboard/style.css'), assets.join());
    for (const pathname of ['/', ...assets, '/dashboard/views/clients.js', '/dashboard/plot.js']) {
      const res = await fetch(`${base}${pathname}`);
      assert.equal(res.status, 200, pathname);
      const csp = res.headers.get('content-security-policy') ?? '';
      for (const directive of ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]) assert.ok(csp.includes(directive), `${pathname}: ${csp}`);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, pathname);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      if (pathname.endsWith('.js')) assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/);
    }
    for (const pathname of ['/dashboard/nope.js', '/dashboard/..%2F..%2F..%2Fpackage.json', '/dashboard/%2E%2E/index.ts']) {
      assert.equal((await fetch(`${base}${pathname}`)).status, 404, pathname);
    }
    // The page itself gets nothing from the API or /metrics without credentials: the assets hold no data.
    await page.goto(`${base}/`);
    await page.locator('#login-form').waitFor({ state: 'visible' });
    const statuses = await page.evaluate(`Promise.all(['/api/v1/clients', '/api/v1/events', '/api/v1/broker', '/metrics']
      .map((p) => fetch(p, { credentials: 'omit' }).then((r) => r.status)))`);
    assert.deepEqual(statuses, [401, 401, 401, 401]);
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
  });

  it('log in, see a client appear, kick it, a refused login in the feed, ban an address and its next attempt refused', async () => {
    await page.goto(`${base}/`);
    // A wrong password is refused, and nothing is kept.
    await signIn('root', 'not-the-password');
    await page.locator('#login-error', { hasText: 'Wrong user name or password.' }).waitFor(WAIT);
    assert.equal(await page.isVisible('#app'), false);
    assert.equal(await page.evaluate("sessionStorage.getItem('moat.credential')"), null);
    await signIn('root', 'root-password');
    await page.locator('#app').waitFor({ state: 'visible', ...WAIT });
    assert.equal(await page.textContent('#who'), 'root');
    assert.equal(await page.textContent('#login-error'), '');

    // The overview counts the clients (from /metrics every 2 s).
    const kicked = await connected(client('dash-kick-me'));
    await page.locator('[data-tile="connections"] .value', { hasText: /^[1-9]/ }).waitFor(WAIT);

    // Clients: the client appears (with another whose identifier is markup: shown as text), the search narrows.
    const marked = await connected(client('dash-<b>bold</b>'));
    await show('clients');
    const row = page.locator('#clients tbody tr[data-id="dash-kick-me"]');
    await row.waitFor(WAIT);
    assert.match(await row.textContent() ?? '', /bob.*127\.0\.0\.1.*MQTT 5/);
    await page.locator('#clients tbody tr', { hasText: 'dash-<b>bold</b>' }).waitFor(WAIT);
    assert.equal(await page.locator('#clients tbody b').count(), 0);
    await page.fill('#client-query', 'dash-kick');
    await page.locator('#clients tbody tr[data-id="dash-<b>bold</b>"]').waitFor({ state: 'detached', ...WAIT });
    assert.equal(await page.locator('#clients tbody tr').count(), 1);
    marked.end(true);

    // Kick: confirmed in the dialog; the MQTT 5 client is told 0x98 (Administrative action) and leaves the table.
    const disconnect = new Promise<number | undefined>((resolve) => kicked.once('disconnect', (packet) => resolve(packet.reasonCode)));
    await row.locator('button', { hasText: 'Kick' }).click();
    await confirmDialog();
    assert.equal(await disconnect, 0x98);
    await row.waitFor({ state: 'detached', ...WAIT });
    await page.fill('#client-query', '');

    // A refused login appears in the security feed, highlighted.
    assert.equal(await attempt(client('dash-intruder', { password: 'wrong-password' })), 'refused 134');
    await show('security');
    const refusal = page.locator('#feed tbody tr[data-event="connect.refused"]', { hasText: 'dash-intruder' });
    await refusal.waitFor(WAIT);
    assert.match(await refusal.getAttribute('class') ?? '', /\brefused\b/);
    assert.match(await refusal.textContent() ?? '', /bob.*127\.0\.0\.1.*mqtt/);

    // Ban 127.0.0.2 from the form: it connected before, its next attempt is closed at accept; 127.0.0.1 is not banned.
    const before = client('dash-from-2', { from: '127.0.0.2' });
    await connected(before);
    before.end(true);
    await page.selectOption('#ban-kind', 'address');
    await page.fill('#ban-value', '127.0.0.2');
    await page.selectOption('#ban-duration', '3600');
    await page.fill('#ban-reason', 'dashboard test');
    await page.click('#ban-form button[type=submit]');
    await confirmDialog();
    const banRow = page.locator('#bans tbody tr[data-ban="address 127.0.0.2"]');
    await banRow.waitFor(WAIT);
    assert.match(await banRow.textContent() ?? '', /api/);
    await page.locator('#feed tbody tr[data-event="guard.banned"]', { hasText: 'address 127.0.0.2' }).waitFor(WAIT);
    assert.equal(await attempt(client('dash-from-2', { from: '127.0.0.2' })), 'closed');
    (await connected(client('dash-still-welcome'))).end(true);

    // Ban from the clients table, by address: the client is disconnected (0x98) and cannot come back.
    const third = await connected(client('dash-ban-me', { from: '127.0.0.3' }));
    await show('clients');
    const banned = new Promise<number | undefined>((resolve) => third.once('disconnect', (packet) => resolve(packet.reasonCode)));
    await page.locator('#clients tbody tr[data-id="dash-ban-me"] button', { hasText: 'Ban' }).click();
    await page.locator('#dialog select[name=by]').waitFor({ state: 'visible' });
    assert.equal(await page.inputValue('#dialog select[name=by]'), 'address');
    await confirmDialog();
    assert.equal(await banned, 0x98);
    assert.equal(await attempt(client('dash-ban-me', { from: '127.0.0.3' })), 'closed');

    // Unban 127.0.0.2 from the bans list: it connects again.
    await show('security');
    await page.locator('#bans tbody tr[data-ban="address 127.0.0.2"] button', { hasText: 'Unban' }).click();
    await confirmDialog();
    await page.locator('#bans tbody tr[data-ban="address 127.0.0.2"]').waitFor({ state: 'detached', ...WAIT });
    (await connected(client('dash-from-2-again', { from: '127.0.0.2' }))).end(true);
  });

  it('topics: the tree with counts, a retained message read whole, its payload shown as text', async () => {
    const payload = '<img src=x onerror="document.title=1">21.5 °C';
    const publisher = await connected(client('dash-publisher'));
    await publisher.publishAsync('dash/room1/temp', payload, { qos: 1, retain: true });
    await show('topics');
    const branch = page.locator('#topic-tree .node[data-topic="dash"]');
    await branch.waitFor(WAIT);
    await branch.click();
    const room = page.locator('#topic-tree .node[data-topic="dash/room1"]');
    await room.waitFor(WAIT);
    assert.match(await room.textContent() ?? '', /1 retained/);
    await room.click();
    await page.locator('#retained-title', { hasText: 'under dash/room1' }).waitFor(WAIT);
    await page.locator('#retained tbody tr[data-topic="dash/room1/temp"]').click();
    await page.locator('#retained-payload').waitFor(WAIT);
    assert.equal(await page.textContent('#retained-payload'), payload);
    assert.equal(await page.locator('#retained-detail img').count(), 0);
    assert.notEqual(await page.title(), '1');
    // Deleted from the page: gone from the broker.
    await page.locator('#retained-detail button', { hasText: 'Delete' }).click();
    await confirmDialog();
    await page.locator('#retained tbody tr[data-topic="dash/room1/temp"]').waitFor({ state: 'detached', ...WAIT });
    const res = await fetch(`${base}/api/v1/retained/dash/room1/temp`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
    assert.equal(res.status, 404);
  });

  it('users and roles: a role with a rule and a user holding it are created through the API bodies, the user logs in over MQTT, both deleted', async () => {
    await show('users');
    await page.fill('#role-name', 'dash-sensors');
    await page.fill('#rules .rule input[name=filter]', 'sensors/#');
    await page.click('#role-submit');
    const role = page.locator('#roles tbody tr[data-role="dash-sensors"]');
    await role.waitFor(WAIT);
    assert.match(await role.textContent() ?? '', /allow publish\+subscribe sensors\/#/);

    await page.fill('#user-name', 'dave');
    await page.fill('#user-password', 'dave-password');
    await page.fill('#user-roles', 'dash-sensors');
    await page.click('#user-form button[type=submit]');
    const user = page.locator('#users tbody tr[data-user="dave"]');
    await user.waitFor(WAIT);
    assert.match(await user.textContent() ?? '', /dash-sensors/);
    const stored = await (await fetch(`${base}/api/v1/users/dave`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).json() as Record<string, unknown>;
    assert.deepEqual(stored.roles, [{ name: 'dash-sensors' }]);
    assert.equal(stored.has_password, true);
    (await connected(client('dash-dave', { user: 'dave', password: 'dave-password' }))).end(true);

    // The user's roles set from the edit dialog.
    await user.locator('button', { hasText: 'Edit' }).click();
    await page.fill('#dialog input[name=roles]', 'dash-sensors, device:5');
    await confirmDialog();
    await user.locator('.chip', { hasText: 'device (5)' }).waitFor(WAIT);

    await user.locator('button', { hasText: 'Delete' }).click();
    await confirmDialog();
    await user.waitFor({ state: 'detached', ...WAIT });
    await role.locator('button', { hasText: 'Delete' }).click();
    await confirmDialog();
    await role.waitFor({ state: 'detached', ...WAIT });
    assert.equal((await fetch(`${base}/api/v1/roles/dash-sensors`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).status, 404);
  });

  it('log out clears the credential; an API token signs in too; nothing in the page failed or broke the CSP', async () => {
    await page.click('#logout');
    await page.locator('#login-form').waitFor({ state: 'visible', ...WAIT });
    assert.equal(await page.evaluate("sessionStorage.getItem('moat.credential')"), null);
    await page.check('input[name=kind][value=token]');
    await page.fill('#login-token', READ_TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.locator('#app').waitFor({ state: 'visible', ...WAIT });
    assert.equal(await page.textContent('#who'), 'API token');
    // A read token may not scrape /metrics: the overview says so and still follows the connections.
    await page.locator('#metrics-note', { hasText: 'metrics' }).waitFor(WAIT);
    await page.click('#logout');
    await page.locator('#login-form').waitFor({ state: 'visible', ...WAIT });
    assert.deepEqual(pageErrors, []);
  });
});
