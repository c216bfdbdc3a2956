// Topics: the topic tree level by level (GET /topics?prefix=, fetched as a branch opens), with the subscriptions and
// retained messages at and below each level; the retained messages under the selected level, and one message read
// whole (GET /retained/{topic}), or removed as an empty retained publish would.
import { del, get, query, topicPath } from '../api.js';
import { byId, bytes, el, fill } from '../dom.js';
import { attempt, confirmAction, fillRows, notify } from '../ui.js';

const LEVELS = 1000;
let selected;

function counts(level) {
  const parts = [];
  if (level.subscriptions) parts.push(`${level.subscriptions} sub${level.subscriptions === 1 ? '' : 's'}`);
  if (level.retained) parts.push(`${level.retained} retained`);
  return parts.join(' · ');
}

/** The levels below `prefix` as list items; each opens its own branch on demand. */
async function branch(prefix) {
  const answer = await get(`/api/v1/topics${query({ prefix, limit: LEVELS })}`);
  const items = answer.levels.map(node);
  if (answer.total > answer.levels.length) items.push(el('li', { class: 'muted' }, `… ${answer.total - answer.levels.length} more levels`));
  return items;
}

function node(level) {
  const children = el('ul', { hidden: true });
  const toggle = el('span', { class: 'toggle' }, level.has_children ? '▸' : '');
  // An empty level ("a//b", "/a") is shown as such rather than as nothing.
  const label = el('div', { class: 'node', 'data-topic': level.topic, title: level.topic },
    toggle, el('span', { class: 'name' }, level.level === '' ? '(empty level)' : level.level), el('span', { class: 'counts' }, counts(level)));
  const open = async () => {
    if (!children.hidden) {
      children.hidden = true;
      fill(toggle, '▸');
      return;
    }
    const items = await attempt(`Topics under ${level.topic}`, () => branch(level.topic));
    if (!items) return;
    fill(children, ...items);
    children.hidden = false;
    fill(toggle, '▾');
  };
  toggle.onclick = (event) => {
    event.stopPropagation();
    if (level.has_children) open();
  };
  label.onclick = () => {
    select(level.topic, label);
    if (level.has_children && children.hidden) open();
  };
  return el('li', {}, label, children);
}

async function loadTree() {
  const items = await attempt('Topic tree', () => branch(''));
  if (!items) return;
  // $ topics are not under the root: shown as a branch of their own when the broker has any.
  const sys = await get(`/api/v1/topics${query({ prefix: '$SYS', limit: LEVELS })}`).catch(() => undefined);
  if (sys && (sys.total > 0 || sys.retained > 0 || sys.subscriptions > 0)) {
    // The answer counts the prefix itself and each level below it: the branch's own counts are their sums.
    const sum = (what) => sys[what] + sys.levels.reduce((n, level) => n + level[what], 0);
    items.push(node({ level: '$SYS', topic: '$SYS', subscriptions: sum('subscriptions'), retained: sum('retained'), has_children: sys.total > 0 }));
  }
  fill(byId('topic-tree'), ...(items.length > 0 ? items : [el('li', { class: 'muted' }, 'No subscriptions and no retained messages yet.')]));
  await showRetained(selected);
}

async function select(topic, label) {
  for (const n of byId('topic-tree').querySelectorAll('.node.selected')) n.classList.remove('selected');
  label?.classList.add('selected');
  selected = topic;
  await showRetained(topic);
}

async function showRetained(prefix) {
  fill(byId('retained-title'), prefix ? `Retained messages under ${prefix}` : 'Retained messages');
  byId('retained-detail').hidden = true;
  const page = await attempt('Retained messages', () => get(`/api/v1/retained${query({ prefix, limit: 200 })}`));
  if (!page) return;
  const rows = page.items.map((m) => el('tr', { class: 'clickable', 'data-topic': m.topic, onclick: (event) => read(m.topic, event.currentTarget) },
    el('td', { class: 'mono' }, m.topic), el('td', {}, String(m.qos)), el('td', {}, bytes(m.size))));
  if (page.total > page.items.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 3 }, `… ${page.total - page.items.length} more: open a deeper level`)));
  fillRows(byId('retained'), rows, 'No retained message here.');
}

async function read(topic, row) {
  for (const r of byId('retained').querySelectorAll('tr.selected')) r.classList.remove('selected');
  row?.classList.add('selected');
  const m = await attempt(`Retained message on ${topic}`, () => get(`/api/v1/retained/${topicPath(topic)}`));
  if (!m) return;
  const facts = [['Topic', m.topic], ['QoS', String(m.qos)], ['Size', bytes(m.size)]];
  if (m.expires_at) facts.push(['Expires', new Date(m.expires_at).toLocaleString()]);
  for (const [name, value] of Object.entries(m.properties ?? {})) facts.push([name.replaceAll('_', ' '), typeof value === 'string' ? value : JSON.stringify(value)]);
  const text = m.payload_utf8 !== null;
  fill(byId('retained-detail'),
    el('h3', {}, 'Message'),
    el('dl', {}, ...facts.flatMap(([name, value]) => [el('dt', {}, name), el('dd', { class: 'mono' }, value)])),
    el('div', { class: 'muted' }, text ? 'Payload (UTF-8)' : 'Payload (binary, base64)'),
    el('pre', { id: 'retained-payload' }, text ? m.payload_utf8 : m.payload_base64),
    el('button', { type: 'button', class: 'danger', onclick: () => remove(m.topic) }, 'Delete retained message'),
  );
  byId('retained-detail').hidden = false;
}

async function remove(topic) {
  const ok = await confirmAction({
    title: 'Delete retained message',
    message: `Remove the retained message on "${topic}"? Current subscribers get the empty retained message, as if a client had cleared it.`,
    confirm: 'Delete',
  });
  if (!ok) return;
  if (await attempt(`Delete ${topic}`, () => del(`/api/v1/retained/${topicPath(topic)}`))) notify(`Removed the retained message on ${topic}.`, 'ok');
  await loadTree();
}

export const topics = {
  live: false,
  init() {
    byId('topics-refresh').addEventListener('click', loadTree);
  },
  show: loadTree,
  refresh: loadTree,
};
