// Security: the feed of refusals, bans and security changes as they happen (GET /events?after=<last seen>, every
// 2 s), newest first; a form to ban an address, network, client identifier or user name; the bans in force.
import { del, get, post, query, segment } from '../api.js';
import { byId, clock, el, fill } from '../dom.js';
import { attempt, confirmAction, fillRows, notify } from '../ui.js';

const KEEP = 1000;
const SHOWN = 300;
let events = [];
let lastSeq;
/** The broker's start the numbers belong to: another one means it restarted and numbers began again from 1. */
let bootId;
/** Events numbered above this arrived while the view was not shown: counted on the tab. */
let seenSeq = 0;
/** And those marked in the feed: what arrived since the view was last left. */
let freshFrom = 0;
let polling;

const refused = (e) => e.event.endsWith('.refused') || (e.event === 'admin.request' && e.status >= 400);

function detail(e) {
  const parts = [];
  if (e.event === 'admin.request') parts.push(`${e.httpMethod} ${e.path} → ${e.status}`, e.principal);
  if (e.target) parts.push(`${e.target} ${e.name ?? ''} ${e.change ?? ''}`.trim());
  if (e.ban) parts.push(`ban: ${e.ban}`);
  if (e.until) parts.push(`until ${clock(e.until)}`);
  if (e.topic) parts.push(`topic: ${e.topic}`);
  if (e.method) parts.push(`method: ${e.method}`);
  if (e.rule) parts.push(`rule: ${e.rule}`);
  if (e.action) parts.push(e.action);
  if (e.reason) parts.push(e.reason);
  if (e.principal && e.event !== 'admin.request') parts.push(`by ${e.principal}`);
  return parts.filter(Boolean).join('; ');
}

function row(e) {
  const classes = [e.event === 'guard.banned' ? 'banned' : refused(e) ? 'refused' : '', e.seq > freshFrom ? 'fresh' : ''].filter(Boolean).join(' ');
  return el('tr', { class: classes || undefined, 'data-seq': e.seq, 'data-event': e.event },
    el('td', { title: e.time }, clock(e.time)),
    el('td', { class: 'mono' }, e.event),
    el('td', { class: 'mono' }, e.clientId ?? ''),
    el('td', {}, e.username ?? ''),
    el('td', { class: 'mono' }, e.remoteAddress ?? ''),
    el('td', {}, e.listener ?? ''),
    el('td', {}, detail(e)),
  );
}

function renderFeed() {
  const newest = events.slice(-SHOWN).reverse();
  fillRows(byId('feed'), newest.map(row), 'Nothing yet: refused logins, bans and denied publishes and subscriptions appear here as they happen.');
  fill(byId('feed-state'), events.length > SHOWN ? `newest ${SHOWN} of ${events.length} kept` : '');
}

function renderBadge() {
  const unseen = events.filter((e) => e.seq > seenSeq && (refused(e) || e.event === 'guard.banned')).length;
  const badge = byId('security-badge');
  badge.hidden = unseen === 0;
  fill(badge, String(unseen));
}

/** New events since the last call; the whole window again after a restart of the broker (numbers start over). */
function poll(visible) {
  // One request at a time: the 2 s loop and opening the view may ask together.
  polling ??= fetchEvents(visible).finally(() => { polling = undefined; });
  return polling;
}

async function fetchEvents(visible) {
  let page = await get(`/api/v1/events${query({ after: lastSeq, limit: KEEP })}`);
  if (bootId !== undefined && page.boot_id !== bootId) {
    events = [];
    lastSeq = undefined;
    seenSeq = freshFrom = 0;
    page = await get(`/api/v1/events${query({ limit: KEEP })}`);
  }
  bootId = page.boot_id;
  const first = lastSeq === undefined;
  const added = page.items.filter((e) => first || e.seq > lastSeq);
  events.push(...added);
  if (events.length > KEEP) events = events.slice(-KEEP);
  lastSeq = events.length > 0 ? events[events.length - 1].seq : page.last_seq;
  if (first && !visible) seenSeq = lastSeq; // the tab counts what comes while the page is open
  if (visible) {
    if (first || added.length > 0) renderFeed();
    seenSeq = lastSeq;
    await refreshBans();
  }
  renderBadge();
}

async function refreshBans() {
  let page;
  try {
    page = await get('/api/v1/bans?limit=1000');
  } catch (err) {
    fillRows(byId('bans'), [], err.message);
    return;
  }
  fillRows(byId('bans'), page.items.map((b) => el('tr', { 'data-ban': `${b.kind} ${b.value}` },
    el('td', {}, b.kind.replace('_', ' ')),
    el('td', { class: 'mono', title: b.reason }, b.value),
    el('td', {}, b.until ? clock(b.until) : 'lifted by hand'),
    el('td', {}, b.source),
    el('td', { class: 'actions' }, b.source === 'config'
      ? el('span', { class: 'muted', title: 'In the configuration file: remove it there and reload' }, 'config')
      : el('button', { type: 'button', class: 'small', onclick: () => unban(b) }, 'Unban')),
  )), 'No bans in force.');
}

async function unban(b) {
  const ok = await confirmAction({ title: 'Lift ban', message: `Lift the ${b.kind.replace('_', ' ')} ban on "${b.value}"?`, confirm: 'Unban' });
  if (!ok) return;
  if (await attempt('Unban', () => del(`/api/v1/bans/${segment(b.kind)}/${segment(b.value)}`))) notify(`Lifted the ban on ${b.value}.`, 'ok');
  await refreshBans();
}

async function ban(event) {
  event.preventDefault();
  const form = new FormData(byId('ban-form'));
  const body = { kind: form.get('kind'), value: String(form.get('value')).trim() };
  if (form.get('duration') !== '') body.duration = Number(form.get('duration'));
  if (String(form.get('reason')).trim() !== '') body.reason = String(form.get('reason')).trim();
  const ok = await confirmAction({
    title: 'Ban',
    message: `Ban ${body.kind.replace('_', ' ')} "${body.value}" ${body.duration ? `for ${byId('ban-duration').selectedOptions[0].textContent}` : 'until lifted'}? `
      + 'Connections already open stay until they reconnect; an address ban also shuts it out of this admin listener.',
    confirm: 'Ban',
  });
  if (!ok) return;
  const banned = await attempt('Ban', () => post('/api/v1/bans', body));
  if (banned) {
    notify(`Banned ${banned.kind.replace('_', ' ')} ${banned.value}.`, 'ok');
    byId('ban-value').value = '';
  }
  await refreshBans();
}

export const security = {
  live: true,
  init() {
    byId('ban-form').addEventListener('submit', ban);
    byId('ban-kind').addEventListener('change', () => {
      const examples = { address: '192.0.2.7', network: '198.51.100.0/24', client_id: 'client identifier', username: 'user name' };
      byId('ban-value').placeholder = examples[byId('ban-kind').value];
    });
  },
  async show() {
    freshFrom = seenSeq;
    renderFeed();
    await poll(true);
  },
  refresh: () => poll(true),
  poll,
};
