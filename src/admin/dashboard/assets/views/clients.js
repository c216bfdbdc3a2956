// Clients: the connected clients, searched through the API's own filters, with Kick (DELETE /clients/{id}: MQTT 5
// clients get DISCONNECT 0x98) and Ban (POST /clients/{id}/ban: by address, user or client identifier).
import { del, get, post, query, segment } from '../api.js';
import { byId, el, fill, since } from '../dom.js';
import { attempt, BAN_DURATIONS, confirmAction, fillRows, notify, selectField, textField } from '../ui.js';

const PAGE = 200;
let searchTimer;

/** The API's filter for what was typed: identifiers and user names as prefixes, an address or network as it is. */
function filter() {
  const field = byId('client-field').value;
  const typed = byId('client-query').value.trim();
  if (typed === '') return {};
  if (field === 'address') return { address: typed };
  return { [field]: typed.endsWith('*') ? typed : `${typed}*` };
}

async function refresh() {
  let page;
  try {
    page = await get(`/api/v1/clients${query({ ...filter(), limit: PAGE })}`);
  } catch (err) {
    fill(byId('client-count'), err.message);
    fillRows(byId('clients'), [], 'No clients to show.');
    return;
  }
  fill(byId('client-count'), page.total > page.items.length ? `${page.items.length} of ${page.total} shown: narrow the search` : `${page.total} connected`);
  fillRows(byId('clients'), page.items.map(row), byId('client-query').value.trim() === '' ? 'No client is connected.' : 'No connected client matches.');
}

function row(c) {
  return el('tr', { 'data-id': c.id },
    el('td', { class: 'mono' }, c.id),
    el('td', {}, c.user ?? ''),
    el('td', { class: 'mono' }, `${c.address}:${c.port}`),
    el('td', {}, c.listener),
    el('td', {}, `MQTT ${c.protocol}`),
    el('td', { title: c.connected_since }, since(c.connected_since)),
    el('td', {}, c.keep_alive ? `${c.keep_alive} s` : 'off'),
    el('td', { class: 'num', title: `${c.rates.messages_in_per_second}/s in, ${c.rates.messages_out_per_second}/s out on average since connected` }, `${c.messages_in} / ${c.messages_out}`),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'small', onclick: () => kick(c) }, 'Kick'), ' ',
      el('button', { type: 'button', class: 'small danger', onclick: () => ban(c) }, 'Ban')),
  );
}

async function kick(c) {
  const ok = await confirmAction({
    title: 'Disconnect client',
    message: `Disconnect "${c.id}" (${c.address})? Its will is published; a persistent session stays, and the client may reconnect.`,
    confirm: 'Kick',
  });
  if (!ok) return;
  const done = await attempt(`Kick ${c.id}`, () => del(`/api/v1/clients/${segment(c.id)}`));
  if (done) notify(`Disconnected ${c.id}.`, 'ok');
  await refresh();
}

async function ban(c) {
  const by = [['address', `its address, ${c.address}`], ['client_id', `its client ID, ${c.id}`]];
  if (c.user !== null) by.splice(1, 0, ['user', `its user, ${c.user}`]);
  const form = await confirmAction({
    title: 'Ban client',
    message: `Ban "${c.id}" and disconnect it. Its next connection is refused while the ban lasts.`,
    confirm: 'Ban',
    body: [
      selectField('Ban by', 'by', by, 'address'),
      selectField('For', 'duration', BAN_DURATIONS, '3600'),
      textField('Reason', 'reason', { placeholder: 'banned from the dashboard' }),
    ],
  });
  if (!form) return;
  const body = { by: form.get('by') };
  if (form.get('duration') !== '') body.duration = Number(form.get('duration'));
  if (form.get('reason') !== '') body.reason = form.get('reason');
  const banned = await attempt(`Ban ${c.id}`, () => post(`/api/v1/clients/${segment(c.id)}/ban`, body));
  if (banned) notify(`Banned ${banned.kind.replace('_', ' ')} ${banned.value}${banned.until ? ` until ${new Date(banned.until).toLocaleString()}` : ''}.`, 'ok');
  await refresh();
}

export const clients = {
  live: true,
  init() {
    byId('client-search').addEventListener('submit', (event) => {
      event.preventDefault();
      refresh();
    });
    const later = () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(refresh, 250);
    };
    byId('client-query').addEventListener('input', later);
    byId('client-field').addEventListener('change', later);
  },
  show: refresh,
  refresh,
};
