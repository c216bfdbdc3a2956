import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { flag, LIMIT_OPTION, listAll, segment, shownOf, text, texts, UsageError, type Command, type CommandContext, type OptionSpec, type Resource } from './command.js';
import { canPrompt, readHidden, readStdinLine } from './prompt.js';
import { bindings, cell, fields, section, table, type Column } from './table.js';

/**
 * Runtime users, groups and roles: /api/v1/users, /groups, /roles. Roles and groups are given as `NAME` or
 * `NAME:PRIORITY`; a role's rules as `--allow ACTIONS:FILTER` and `--deny ACTIONS:FILTER` in the order typed, or as
 * the API takes them from a JSON or YAML file.
 */

type Binding = string | { name: string; priority?: number };

interface UserJson {
  name: string;
  has_password: boolean;
  roles: Binding[];
  groups: Binding[];
  client_id: string | null;
  disabled: boolean;
  text_name: string | null;
  text_description: string | null;
  in_force: boolean;
}

interface GroupJson {
  name: string;
  roles: Binding[];
  members: string[];
  text_name: string | null;
  text_description: string | null;
  in_force: boolean;
}

interface Rule {
  filter: string;
  actions: string[];
  effect: 'allow' | 'deny';
  priority?: number;
}

interface RoleJson {
  name: string;
  rules: Rule[];
  text_name: string | null;
  text_description: string | null;
  in_force: boolean;
}

/** As `moat passwd`: shorter passwords are refused unless --force. */
const MIN_PASSWORD_LENGTH = 8;
const ACTIONS = ['publish', 'subscribe', 'receive'];

function bindingOf(raw: string): Binding {
  const match = /^(.+):(-?\d+)$/.exec(raw);
  return match ? { name: match[1]!, priority: Number(match[2]) } : raw;
}

/** `--role a --role b:10` as a list of bindings; `--no-roles` as an empty one; nothing given: undefined (unchanged). */
function bindingList(context: CommandContext, option: string, none: string): Binding[] | undefined {
  const given = texts(context, option);
  if (flag(context, none)) {
    if (given) throw new UsageError(`--${option} and --${none} contradict each other`);
    return [];
  }
  return given?.map(bindingOf);
}

/** The descriptive texts every kind has. */
function describedBy(context: CommandContext): Record<string, string> {
  const name = text(context, 'text-name');
  const description = text(context, 'text-description');
  return { ...(name !== undefined && { text_name: name }), ...(description !== undefined && { text_description: description }) };
}

const TEXT_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'text-name': { type: 'string', value: 'TEXT', help: 'a display name' },
  'text-description': { type: 'string', value: 'TEXT', help: 'a description' },
};

async function newPassword(context: CommandContext): Promise<string> {
  let password: string;
  if (flag(context, 'password-stdin')) password = await readStdinLine();
  else if (canPrompt()) {
    password = await readHidden('Password: ');
    if (await readHidden('Reenter password: ') !== password) throw new UsageError('the passwords do not match');
  } else {
    throw new UsageError('standard input is not a terminal: give the password on it with --password-stdin');
  }
  if (password === '') throw new UsageError('the password is empty');
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH && !flag(context, 'force')) {
    throw new UsageError(`the password is too short: ${length} character${length === 1 ? '' : 's'}, at least ${MIN_PASSWORD_LENGTH} are needed (--force sets it anyway)`);
  }
  return password;
}

const PASSWORD_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'password-stdin': { type: 'boolean', help: 'read the password from the first line of standard input (else it is asked for without echo)' },
  force: { type: 'boolean', help: `accept a password shorter than ${MIN_PASSWORD_LENGTH} characters` },
};

const USER_COLUMNS: ReadonlyArray<Column<UserJson>> = [
  { header: 'NAME', value: (u) => u.name },
  { header: 'ROLES', value: (u) => bindings(u.roles) },
  { header: 'GROUPS', value: (u) => bindings(u.groups) },
  { header: 'CLIENT ID', value: (u) => u.client_id },
  { header: 'PASSWORD', value: (u) => u.has_password },
  { header: 'DISABLED', value: (u) => u.disabled },
  { header: 'IN FORCE', value: (u) => u.in_force },
];

function userFields(u: UserJson): string {
  return fields([
    ['name', u.name], ['roles', bindings(u.roles)], ['groups', bindings(u.groups)], ['client id', u.client_id], ['password', u.has_password ? 'set' : 'none'],
    ['disabled', u.disabled], ['text name', u.text_name], ['text description', u.text_description],
    ['in force', u.in_force ? true : 'no (the configuration defines this name)'],
  ]);
}

/** The fields `users add` and `users set` share. */
function userChange(context: CommandContext): Record<string, unknown> {
  const roles = bindingList(context, 'role', 'no-roles');
  const groups = bindingList(context, 'group', 'no-groups');
  const clientId = text(context, 'client-id');
  if (clientId !== undefined && flag(context, 'no-client-id')) throw new UsageError('--client-id and --no-client-id contradict each other');
  if (flag(context, 'disable') && flag(context, 'enable')) throw new UsageError('--disable and --enable contradict each other');
  return {
    ...(roles && { roles }), ...(groups && { groups }), ...(clientId !== undefined && { client_id: clientId }),
    ...(flag(context, 'no-client-id') && { client_id: null }), ...(flag(context, 'disable') && { disabled: true }),
    ...(flag(context, 'enable') && { disabled: false }), ...describedBy(context),
  };
}

const USER_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  role: { type: 'string', multiple: true, value: 'ROLE[:PRIORITY]', help: 'a role' },
  group: { type: 'string', multiple: true, value: 'GROUP[:PRIORITY]', help: 'a group' },
  'client-id': { type: 'string', value: 'ID', help: 'only a client with this identifier may log in as the user' },
  disable: { type: 'boolean', help: 'the user cannot log in' },
  ...TEXT_OPTIONS,
};

const userPath = (context: CommandContext): string => `/api/v1/users/${segment(context.args[0]!)}`;

const userCommands: Command[] = [
  {
    name: 'list', summary: 'runtime users', options: LIMIT_OPTION,
    run: async (context) => {
      const listing = await listAll<UserJson>(context, '/api/v1/users');
      return { json: listing.json, human: table(USER_COLUMNS, listing.items), note: shownOf(listing, 'users') };
    },
  },
  {
    name: 'show', args: 'NAME', summary: 'one runtime user (never its password)',
    run: async (context) => {
      const user = await context.api.get<UserJson>(userPath(context));
      return { json: user, human: userFields(user) };
    },
  },
  {
    name: 'add', args: 'NAME', summary: 'create a user; the password is asked for without echo, or read with --password-stdin',
    options: { ...PASSWORD_OPTIONS, 'no-password': { type: 'boolean', help: 'no password: the user cannot log in with one (a certificate or a token may still name it)' }, ...USER_OPTIONS },
    run: async (context) => {
      const change = userChange(context);
      const password = flag(context, 'no-password') ? undefined : await newPassword(context);
      const user = await context.api.call<UserJson>('POST', '/api/v1/users', { body: { name: context.args[0], ...(password !== undefined && { password }), ...change } });
      return { json: user, human: `added user ${cell(user.name)}${user.roles.length > 0 ? ` (roles: ${cell(bindings(user.roles))})` : ''}` };
    },
  },
  {
    name: 'set', args: 'NAME', summary: 'change a user: the options given replace what it had',
    options: {
      ...USER_OPTIONS,
      'no-roles': { type: 'boolean', help: 'take every role away' },
      'no-groups': { type: 'boolean', help: 'take the user out of every group' },
      'no-client-id': { type: 'boolean', help: 'any client identifier may log in as the user' },
      enable: { type: 'boolean', help: 'the user can log in again' },
    },
    run: async (context) => {
      const change = userChange(context);
      if (Object.keys(change).length === 0) throw new UsageError('nothing to change: give what to set (moat ctl users --help)');
      const user = await context.api.call<UserJson>('PATCH', userPath(context), { body: change });
      return { json: user, human: `changed user ${cell(user.name)}\n${userFields(user)}` };
    },
  },
  {
    name: 'set-password', args: 'NAME', summary: 'set a user\'s password (asked for without echo, or --password-stdin)', options: PASSWORD_OPTIONS,
    run: async (context) => {
      const user = await context.api.call<UserJson>('PATCH', userPath(context), { body: { password: await newPassword(context) } });
      return { json: user, human: `set the password of ${cell(user.name)}` };
    },
  },
  {
    name: 'delete', args: 'NAME', summary: 'delete a user (its connected clients stay until they reconnect)',
    run: async (context) => {
      const answer = await context.api.call<{ removed: string }>('DELETE', userPath(context));
      return { json: answer, human: `deleted user ${cell(answer.removed)}` };
    },
  },
];

/** list, show, add, set, delete of a named runtime item (groups, roles), as the API serves both. */
function namedItemCommands<T extends { name: string }>(kind: { singular: string; plural: string; columns: ReadonlyArray<Column<T>>; show(item: T): string; options: Readonly<Record<string, OptionSpec>>; body(context: CommandContext, create: boolean): Promise<Record<string, unknown>> }): Command[] {
  const base = `/api/v1/${kind.plural}`;
  const itemPath = (context: CommandContext): string => `${base}/${segment(context.args[0]!)}`;
  return [
    {
      name: 'list', summary: `runtime ${kind.plural}`, options: LIMIT_OPTION,
      run: async (context) => {
        const listing = await listAll<T>(context, base);
        return { json: listing.json, human: table(kind.columns, listing.items), note: shownOf(listing, kind.plural) };
      },
    },
    {
      name: 'show', args: 'NAME', summary: `one runtime ${kind.singular}`,
      run: async (context) => {
        const item = await context.api.get<T>(itemPath(context));
        return { json: item, human: kind.show(item) };
      },
    },
    {
      name: 'add', args: 'NAME', summary: `create a ${kind.singular}`, options: kind.options,
      run: async (context) => {
        const item = await context.api.call<T>('POST', base, { body: { name: context.args[0], ...(await kind.body(context, true)) } });
        return { json: item, human: `added ${kind.singular} ${cell(item.name)}\n${kind.show(item)}` };
      },
    },
    {
      name: 'set', args: 'NAME', summary: `change a ${kind.singular}: the options given replace what it had`, options: kind.options,
      run: async (context) => {
        const body = await kind.body(context, false);
        if (Object.keys(body).length === 0) throw new UsageError(`nothing to change: give what to set (moat ctl ${kind.plural} --help)`);
        const item = await context.api.call<T>('PATCH', itemPath(context), { body });
        return { json: item, human: `changed ${kind.singular} ${cell(item.name)}\n${kind.show(item)}` };
      },
    },
    {
      name: 'delete', args: 'NAME', summary: `delete a ${kind.singular}`,
      run: async (context) => {
        const answer = await context.api.call<{ removed: string }>('DELETE', itemPath(context));
        return { json: answer, human: `deleted ${kind.singular} ${cell(answer.removed)}` };
      },
    },
  ];
}

const inForce = (item: { in_force: boolean }): string | true => (item.in_force ? true : 'no (the configuration defines this name)');

const groupCommands = namedItemCommands<GroupJson>({
  singular: 'group', plural: 'groups',
  columns: [
    { header: 'NAME', value: (g) => g.name },
    { header: 'ROLES', value: (g) => bindings(g.roles) },
    { header: 'MEMBERS', value: (g) => g.members.join(', ') },
    { header: 'IN FORCE', value: (g) => g.in_force },
  ],
  show: (g) => fields([['name', g.name], ['roles', bindings(g.roles)], ['members', g.members.join(', ')], ['text name', g.text_name], ['text description', g.text_description], ['in force', inForce(g)]]),
  options: {
    role: { type: 'string', multiple: true, value: 'ROLE[:PRIORITY]', help: 'a role' },
    'no-roles': { type: 'boolean', help: 'no roles (set)' },
    ...TEXT_OPTIONS,
  },
  body: (context) => {
    const roles = bindingList(context, 'role', 'no-roles');
    return Promise.resolve({ ...(roles && { roles }), ...describedBy(context) });
  },
});

/** `publish,subscribe:sensors/#` as a rule (the filter is everything after the first colon). */
function ruleOf(effect: 'allow' | 'deny', raw: string): Rule {
  const colon = raw.indexOf(':');
  if (colon <= 0 || colon === raw.length - 1) throw new UsageError(`--${effect} "${raw}": expected ACTIONS:FILTER, such as publish,subscribe:sensors/#`);
  const actions = raw.slice(0, colon).split(',').flatMap((a) => (a === 'all' ? ACTIONS : [a]));
  const unknown = actions.filter((a) => !ACTIONS.includes(a));
  if (unknown.length > 0) throw new UsageError(`--${effect} "${raw}": unknown action ${unknown.map((a) => `"${a}"`).join(', ')}; expected ${ACTIONS.join(', ')} or all`);
  return { filter: raw.slice(colon + 1), actions: [...new Set(actions)], effect };
}

async function rulesFile(file: string): Promise<unknown> {
  let source: string;
  try {
    source = file === '-' ? await readStdinLines() : readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--rules: cannot read ${file}: ${(err as Error).message}`);
  }
  let rules: unknown;
  try {
    rules = parseYaml(source);
  } catch (err) {
    throw new UsageError(`--rules: ${file} is not JSON or YAML: ${(err as Error).message}`);
  }
  if (!Array.isArray(rules)) throw new UsageError(`--rules: ${file} must hold a list of rules ({filter, actions, effect, priority})`);
  return rules;
}

async function readStdinLines(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The rules given: from a file, or from --allow and --deny in the order typed; undefined when none are. */
async function rulesGiven(context: CommandContext): Promise<unknown> {
  const typed = context.order.filter((o) => o.name === 'allow' || o.name === 'deny').map((o) => ruleOf(o.name as 'allow' | 'deny', o.value ?? ''));
  const file = text(context, 'rules');
  if (file !== undefined && typed.length > 0) throw new UsageError('give the rules with --rules FILE or with --allow and --deny, not both');
  if (file !== undefined) return rulesFile(file);
  if (flag(context, 'no-rules')) return [];
  return typed.length > 0 ? typed : undefined;
}

const RULE_COLUMNS: ReadonlyArray<Column<Rule>> = [
  { header: 'EFFECT', value: (r) => r.effect },
  { header: 'ACTIONS', value: (r) => r.actions.join(',') },
  { header: 'FILTER', value: (r) => r.filter },
  { header: 'PRIORITY', value: (r) => r.priority, right: true },
];

const roleCommands = namedItemCommands<RoleJson>({
  singular: 'role', plural: 'roles',
  columns: [
    { header: 'NAME', value: (r) => r.name },
    { header: 'RULES', value: (r) => r.rules.length, right: true },
    { header: 'TEXT NAME', value: (r) => r.text_name },
    { header: 'IN FORCE', value: (r) => r.in_force },
  ],
  show: (r) => fields([['name', r.name], ['text name', r.text_name], ['text description', r.text_description], ['in force', inForce(r)]])
    + section('Rules (tried in this order, higher priority first)', table(RULE_COLUMNS, r.rules)),
  options: {
    allow: { type: 'string', multiple: true, value: 'ACTIONS:FILTER', help: 'a rule allowing publish, subscribe, receive or all (comma-separated) on FILTER' },
    deny: { type: 'string', multiple: true, value: 'ACTIONS:FILTER', help: 'a rule denying them; rules are tried in the order typed' },
    rules: { type: 'string', value: 'FILE', help: 'the rules as the API takes them, a JSON or YAML list of {filter, actions, effect, priority} (- : standard input)' },
    'no-rules': { type: 'boolean', help: 'no rules (set)' },
    ...TEXT_OPTIONS,
  },
  body: async (context) => {
    const rules = await rulesGiven(context);
    return { ...(rules !== undefined && { rules }), ...describedBy(context) };
  },
});

export const users: Resource = { name: 'users', summary: 'runtime users: list, show, add, set, set-password, delete', commands: userCommands };
export const groups: Resource = { name: 'groups', summary: 'runtime groups: list, show, add, set, delete', commands: groupCommands };
export const roles: Resource = { name: 'roles', summary: 'runtime roles and their rules: list, show, add, set, delete', commands: roleCommands };
