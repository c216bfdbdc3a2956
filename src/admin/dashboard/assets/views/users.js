// Users & roles: the runtime users and roles (kept in the broker's store, in force for connected clients at once):
// create and delete users, set a user's roles (and password), create, edit and delete roles with their rules.
// The configuration's own users and roles are not listed by the API; a role it defines can still be given by name.
import { del, get, patch, post, segment } from '../api.js';
import { byId, el, fill } from '../dom.js';
import { attempt, confirmAction, fillRows, notify, textField } from '../ui.js';

const ACTIONS = ['publish', 'subscribe', 'receive'];
let editing;

/** "a, b:5" → [{ name: 'a' }, { name: 'b', priority: 5 }] (a priority after a colon). */
function bindings(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((item) => {
    const match = /^(.*?):(-?\d+)$/.exec(item);
    return match ? { name: match[1].trim(), priority: Number(match[2]) } : { name: item };
  });
}

const bindingText = (list) => list.map((b) => (b.priority === undefined ? b.name : `${b.name}:${b.priority}`)).join(', ');
const chips = (list) => list.map((b) => el('span', { class: 'chip' }, b.priority === undefined ? b.name : `${b.name} (${b.priority})`));
const ruleText = (r) => `${r.effect} ${r.actions.join('+')} ${r.filter}${r.priority !== undefined ? ` (${r.priority})` : ''}`;

async function load() {
  const [users, roles] = await Promise.allSettled([get('/api/v1/users?limit=1000'), get('/api/v1/roles?limit=1000')]);
  const refusal = [users, roles].find((r) => r.status === 'rejected');
  const note = byId('runtime-note');
  note.hidden = !refusal;
  if (refusal) fill(note, refusal.reason.message);
  fillRows(byId('users'), users.status === 'fulfilled' ? users.value.items.map(userRow) : [], 'No runtime users.');
  fillRows(byId('roles'), roles.status === 'fulfilled' ? roles.value.items.map(roleRow) : [], 'No runtime roles.');
  if (roles.status === 'fulfilled') fill(byId('role-names'), ...roles.value.items.map((r) => el('option', { value: r.name })));
}

function userRow(u) {
  const state = [u.disabled ? 'disabled' : 'enabled', u.in_force ? '' : 'not in force (the configuration defines this name)'].filter(Boolean).join(', ');
  return el('tr', { 'data-user': u.name },
    el('td', { class: 'mono' }, u.name),
    el('td', {}, ...chips(u.roles)),
    el('td', {}, ...chips(u.groups)),
    el('td', { class: 'mono' }, u.client_id ?? ''),
    el('td', {}, state),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'small', onclick: () => editUser(u) }, 'Edit'), ' ',
      el('button', { type: 'button', class: 'small danger', onclick: () => deleteUser(u) }, 'Delete')),
  );
}

async function editUser(u) {
  const form = await confirmAction({
    title: `User ${u.name}`,
    message: 'Roles apply to its connected clients at once.',
    confirm: 'Save',
    body: [
      textField('Roles (comma-separated; name:priority for a priority)', 'roles', { value: bindingText(u.roles), list: 'role-names', autocomplete: 'off' }),
      textField('New password (empty: unchanged)', 'password', { type: 'password', autocomplete: 'new-password' }),
      el('label', {}, el('input', { type: 'checkbox', name: 'disabled', checked: u.disabled }), ' Disabled'),
    ],
  });
  if (!form) return;
  const change = { roles: bindings(String(form.get('roles'))), disabled: form.get('disabled') === 'on' };
  if (form.get('password') !== '') change.password = form.get('password');
  if (await attempt(`Change ${u.name}`, () => patch(`/api/v1/users/${segment(u.name)}`, change))) notify(`Saved user ${u.name}.`, 'ok');
  await load();
}

async function deleteUser(u) {
  const ok = await confirmAction({ title: 'Delete user', message: `Delete user "${u.name}"? Its clients stay connected until they reconnect.`, confirm: 'Delete' });
  if (!ok) return;
  if (await attempt(`Delete ${u.name}`, () => del(`/api/v1/users/${segment(u.name)}`))) notify(`Deleted user ${u.name}.`, 'ok');
  await load();
}

async function createUser(event) {
  event.preventDefault();
  const name = byId('user-name').value.trim();
  const body = { name, password: byId('user-password').value, roles: bindings(byId('user-roles').value) };
  if (await attempt(`Create ${name}`, () => post('/api/v1/users', body))) {
    notify(`Created user ${name}.`, 'ok');
    byId('user-form').reset();
  }
  await load();
}

function roleRow(r) {
  return el('tr', { 'data-role': r.name },
    el('td', { class: 'mono' }, r.name, r.in_force ? '' : ' (not in force)'),
    el('td', {}, r.rules.length === 0 ? el('span', { class: 'muted' }, 'no rules') : r.rules.map((rule) => el('div', { class: 'mono' }, ruleText(rule)))),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'small', onclick: () => editRole(r) }, 'Edit'), ' ',
      el('button', { type: 'button', class: 'small danger', onclick: () => deleteRole(r) }, 'Delete')),
  );
}

/** One editable rule: filter, actions, effect, optional priority. */
function ruleRow(rule = { filter: '', actions: ['publish', 'subscribe'], effect: 'allow' }) {
  const row = el('div', { class: 'rule' },
    el('input', { type: 'text', name: 'filter', value: rule.filter, placeholder: 'topic filter, e.g. sensors/#', required: true, 'aria-label': 'Topic filter' }),
    ...ACTIONS.map((a) => el('label', {}, el('input', { type: 'checkbox', name: a, checked: rule.actions.includes(a) }), a)),
    el('select', { name: 'effect', 'aria-label': 'Effect' }, ...['allow', 'deny'].map((e) => el('option', { value: e, selected: rule.effect === e }, e))),
    el('input', { type: 'number', name: 'priority', value: rule.priority, placeholder: 'priority', step: 1, class: 'priority', 'aria-label': 'Priority' }),
    el('button', { type: 'button', class: 'small', title: 'Remove this rule', onclick: () => row.remove() }, '×'),
  );
  return row;
}

function rulesFromForm() {
  return [...byId('rules').querySelectorAll('.rule')].map((row) => {
    const rule = {
      filter: row.querySelector('[name=filter]').value.trim(),
      actions: ACTIONS.filter((a) => row.querySelector(`[name=${a}]`).checked),
      effect: row.querySelector('[name=effect]').value,
    };
    const priority = row.querySelector('[name=priority]').value;
    if (priority !== '') rule.priority = Number(priority);
    return rule;
  });
}

function editRole(r) {
  editing = r.name;
  byId('role-name').value = r.name;
  byId('role-name').disabled = true;
  fill(byId('rules'), ...r.rules.map(ruleRow));
  fill(byId('role-form-title'), `Role ${r.name}`);
  fill(byId('role-submit'), 'Save role');
  byId('role-cancel').hidden = false;
  byId('role-name').scrollIntoView({ block: 'nearest' });
}

function resetRoleForm() {
  editing = undefined;
  byId('role-form').reset();
  byId('role-name').disabled = false;
  fill(byId('rules'), ruleRow());
  fill(byId('role-form-title'), 'New role');
  fill(byId('role-submit'), 'Create role');
  byId('role-cancel').hidden = true;
}

async function saveRole(event) {
  event.preventDefault();
  const rules = rulesFromForm();
  const name = editing ?? byId('role-name').value.trim();
  const saved = editing
    ? await attempt(`Save ${name}`, () => patch(`/api/v1/roles/${segment(name)}`, { rules }))
    : await attempt(`Create ${name}`, () => post('/api/v1/roles', { name, rules }));
  if (saved) {
    notify(`${editing ? 'Saved' : 'Created'} role ${name}.`, 'ok');
    resetRoleForm();
  }
  await load();
}

async function deleteRole(r) {
  const ok = await confirmAction({ title: 'Delete role', message: `Delete role "${r.name}"? Users and groups that have it lose it at once.`, confirm: 'Delete' });
  if (!ok) return;
  if (await attempt(`Delete ${r.name}`, () => del(`/api/v1/roles/${segment(r.name)}`))) notify(`Deleted role ${r.name}.`, 'ok');
  if (editing === r.name) resetRoleForm();
  await load();
}

export const users = {
  live: false,
  init() {
    byId('user-form').addEventListener('submit', createUser);
    byId('role-form').addEventListener('submit', saveRole);
    byId('rule-add').addEventListener('click', () => byId('rules').append(ruleRow()));
    byId('role-cancel').addEventListener('click', resetRoleForm);
    resetRoleForm();
  },
  show: load,
  refresh: load,
};
