import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startAdminBroker } from '../helpers/admin.js';
import { killAll } from '../helpers/process.js';

/**
 * The dashboard in Firefox (Debian's firefox-esr, driven over WebDriver BiDi by puppeteer-core; the Chromium run is
 * dashboard.test.ts): sign in, a connected MQTT.js client listed and kicked, a refused login in the security feed,
 * every view shown, and no script error or CSP violation on the way.
 */

const FIREFOX = '/usr/bin/firefox-esr';
const WAIT = { timeout: 10_000 };

describe('dashboard in Firefox', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  let browser: Browser;
  let page: Page;
  const clients: MqttClient[] = [];
  const pageErrors: string[] = [];

  const connect = (clientId: string, password = 'bob-password'): Promise<MqttClient> => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId, username: 'bob', password, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(client);
    return new Promise((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  };
  async function show(view: string): Promise<void> {
    await page.click(`nav a[data-view="${view}"]`);
    await page.waitForSelector(`#view-${view}`, { visible: true, ...WAIT });
  }

  before(async () => {
    ({ dir, mqttPort, base } = await startAdminBroker({
      prefix: 'moat-dashboard-ff-',
      users: { root: { password: 'root-password', roles: ['admin'] }, bob: { password: 'bob-password', roles: ['device'] } },
    }));
    browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true });
    page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${(err as Error).message}`));
    page.on('console', (message) => {
      // 401 answers are logged by the browser as errors: the login before credentials. Nothing else is expected.
      if (message.type() === 'error' && !/40[13]/.test(message.text())) pageErrors.push(message.text());
    });
  });
  after(async () => {
    for (const client of clients) client.end(true);
    await browser?.close();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs in, lists and kicks a client, shows a refused login in the feed and every view, without a script error', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('#login-form', { visible: true, ...WAIT });
    await page.type('#login-user', 'root');
    await page.type('#login-password', 'root-password');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#app', { visible: true, ...WAIT });
    assert.equal(await page.$eval('#who', (e) => e.textContent), 'root');

    const kicked = await connect('ff-kick-me');
    await show('clients');
    const row = 'tr[data-id="ff-kick-me"]';
    await page.waitForSelector(`#clients tbody ${row}`, WAIT);
    const disconnect = new Promise<number | undefined>((resolve) => kicked.once('disconnect', (packet) => resolve(packet.reasonCode)));
    // Page code as text: the tests are compiled without the DOM's types.
    await page.evaluate(`[...document.querySelectorAll('#clients tbody ${row} button')].find((b) => b.textContent === 'Kick').click()`);
    await page.waitForSelector('#dialog', { visible: true, ...WAIT });
    await page.click('#dialog-confirm');
    assert.equal(await disconnect, 0x98, 'DISCONNECT 0x98 Administrative action');
    await page.waitForSelector(`#clients tbody ${row}`, { hidden: true, ...WAIT });

    await assert.rejects(connect('ff-intruder', 'wrong-password'));
    await show('security');
    await page.waitForFunction(`[...document.querySelectorAll('#feed tbody tr[data-event="connect.refused"]')].some((r) => r.textContent.includes('ff-intruder'))`, WAIT);

    for (const view of ['overview', 'topics', 'users']) await show(view);
    await page.waitForSelector('[data-tile="connections"] .value', WAIT);
    assert.deepEqual(pageErrors, []);
  });
});
