// The dashboard: sign in, then views over the admin REST API, refreshed every 2 seconds. Everything shown comes
// from the API with the signed-in credential; nothing is kept but that credential (sessionStorage) and the last
// minutes of figures in this page.
import { ApiError, basicCredential, credential, forget, get, remember, request, tokenCredential, whenUnauthorized } from './api.js';
import { byId, fill } from './dom.js';
import { notify } from './ui.js';
import { overview } from './views/overview.js';
import { clients } from './views/clients.js';
import { topics } from './views/topics.js';
import { security } from './views/security.js';
import { users } from './views/users.js';

const VIEWS = { overview, clients, topics, security, users };
const POLL_MS = 2000;
let current;
let polling;

function showLogin(error = '') {
  stopPolling();
  byId('app').hidden = true;
  byId('login').hidden = false;
  fill(byId('login-error'), error);
  byId(byId('login-token-row').hidden ? 'login-user' : 'login-token').focus();
}

/** Why a login was refused, in the user's terms. */
function loginError(err, kind) {
  if (err instanceof ApiError && err.status === 401) return kind === 'token' ? 'Unknown API token.' : 'Wrong user name or password.';
  if (err instanceof ApiError && err.status === 403) return `Refused: ${err.message}.`;
  return err.message;
}

async function login(event) {
  event.preventDefault();
  const kind = new FormData(byId('login-form')).get('kind');
  const cred = kind === 'token' ? tokenCredential(byId('login-token').value) : basicCredential(byId('login-user').value, byId('login-password').value);
  const button = byId('login-form').querySelector('button[type=submit]');
  button.disabled = true;
  fill(byId('login-error'), '');
  try {
    const broker = await request('GET', '/api/v1/broker', undefined, cred);
    remember(cred);
    byId('login-password').value = '';
    byId('login-token').value = '';
    start(broker);
  } catch (err) {
    fill(byId('login-error'), loginError(err, kind));
  } finally {
    button.disabled = false;
  }
}

function start(broker) {
  const cred = credential();
  byId('login').hidden = true;
  byId('app').hidden = false;
  fill(byId('who'), cred.kind === 'token' ? 'API token' : cred.user);
  showBroker(broker);
  route();
  startPolling();
}

function showBroker(broker) {
  fill(byId('broker-status'), `Moat ${broker.version}${broker.ready ? '' : ' (not ready)'}`);
  overview.broker(broker);
}

/** The view named by the URL's fragment (#clients), Overview by default. */
function route() {
  const name = location.hash.slice(1) in VIEWS ? location.hash.slice(1) : 'overview';
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.view === name);
  for (const view of Object.keys(VIEWS)) byId(`view-${view}`).hidden = view !== name;
  if (current !== name) {
    current = name;
    byId('notice').hidden = true;
    VIEWS[name].show();
  }
}

async function tick() {
  // The overview's figures and the security feed keep going whatever is shown: charts need history, and the
  // Security tab counts what came in meanwhile. The open view refreshes itself if it is a live one.
  const work = [overview.sample(), security.poll(current === 'security')];
  if (current !== 'security' && current !== 'overview' && VIEWS[current].live) work.push(VIEWS[current].refresh());
  await Promise.allSettled(work);
}

let brokerTicks = 0;
function startPolling() {
  stopPolling();
  const loop = async () => {
    await tick();
    // Version, uptime and readiness change rarely: every 10 s.
    if (++brokerTicks % 5 === 0) await get('/api/v1/broker').then(showBroker, () => {});
    if (polling !== undefined) polling = setTimeout(loop, POLL_MS);
  };
  polling = setTimeout(loop, 0);
}

function stopPolling() {
  clearTimeout(polling);
  polling = undefined;
}

function logout() {
  forget();
  // A fresh page: nothing of the session stays in memory either.
  location.hash = '';
  location.reload();
}

async function boot() {
  byId('login-form').addEventListener('submit', login);
  for (const radio of document.querySelectorAll('input[name=kind]')) {
    radio.addEventListener('change', () => {
      const token = radio.value === 'token' && radio.checked;
      byId('login-basic').hidden = token;
      byId('login-token-row').hidden = !token;
      fill(byId('login-error'), '');
    });
  }
  byId('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', () => credential() && route());
  whenUnauthorized(() => {
    forget();
    showLogin('Signed out: the credentials are no longer accepted.');
  });
  for (const view of Object.values(VIEWS)) view.init?.();
  if (!credential()) return showLogin();
  try {
    start(await get('/api/v1/broker'));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showLogin(err.message);
  }
}

window.addEventListener('error', (event) => notify(`Dashboard error: ${event.message}`));
boot();
