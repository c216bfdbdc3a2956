import { durationField, LIMIT_OPTION, listAll, segment, shownOf, text, UsageError, type Command, type CommandContext, type Resource } from './command.js';
import { age, fields, section, table, time, type Column } from './table.js';
import { banLine, type BanJson } from './bans.js';

/** Connected clients and sessions: /api/v1/clients and /api/v1/sessions. */

interface ClientJson {
  id: string;
  user: string | null;
  address: string;
  port: number;
  listener: string;
  protocol: string;
  connected_since: string;
  keep_alive: number;
  clean_start: boolean;
  session_expiry_interval: number;
  messages_in: number;
  messages_out: number;
  bytes_in: number;
  bytes_out: number;
  rates: { messages_in_per_second: number; messages_out_per_second: number };
}

export interface SubscriptionJson {
  client_id?: string;
  online?: boolean;
  filter: string;
  qos: number;
  no_local: boolean;
  retain_as_published: boolean;
  subscription_identifier?: number;
}

interface SessionDetail {
  subscriptions: SubscriptionJson[];
  inflight: number;
  queued: number;
  queued_bytes: number;
}

interface SessionJson {
  client_id: string;
  online: boolean;
  persistent: boolean;
  created_at: string;
  left_at: string | null;
  expires_at: string | null;
  expiry_interval: number;
  subscriptions: number;
  inflight: number;
  queued: number;
}

/** MQTT 5's "never expires". */
const NEVER = 4_294_967_295;

const expiry = (seconds: number): string => (seconds === NEVER ? 'never' : `${seconds}s`);

const CLIENT_COLUMNS: ReadonlyArray<Column<ClientJson>> = [
  { header: 'ID', value: (c) => c.id },
  { header: 'USER', value: (c) => c.user },
  { header: 'ADDRESS', value: (c) => c.address },
  { header: 'PORT', value: (c) => c.port, right: true },
  { header: 'LISTENER', value: (c) => c.listener },
  { header: 'PROTOCOL', value: (c) => c.protocol },
  { header: 'CONNECTED', value: (c) => age(c.connected_since) },
  { header: 'KEEPALIVE', value: (c) => `${c.keep_alive}s`, right: true },
];

/** The subscriptions of one client or session; `client_id` when they are of many. */
export function subscriptionTable(subscriptions: readonly SubscriptionJson[], withClient = false): string {
  const columns: Array<Column<SubscriptionJson>> = [
    { header: 'FILTER', value: (s) => s.filter },
    { header: 'QOS', value: (s) => s.qos, right: true },
    { header: 'NO LOCAL', value: (s) => s.no_local },
    { header: 'RETAIN AS PUBLISHED', value: (s) => s.retain_as_published },
    { header: 'ID', value: (s) => s.subscription_identifier },
  ];
  if (withClient) columns.unshift({ header: 'CLIENT', value: (s) => s.client_id }, { header: 'ONLINE', value: (s) => s.online });
  return table(columns, subscriptions);
}

function heldMessages(detail: SessionDetail): string {
  return section('Subscriptions', subscriptionTable(detail.subscriptions))
    + section('Messages', fields([['in flight', detail.inflight], ['queued', detail.queued], ['queued bytes', detail.queued_bytes]]));
}

const clientPath = (context: CommandContext): string => `/api/v1/clients/${segment(context.args[0]!)}`;

const clientCommands: Command[] = [
  {
    name: 'list',
    summary: 'connected clients (every page, unless --limit)',
    options: {
      id: { type: 'string', value: 'ID', help: 'client identifier, or a prefix ending in *' },
      username: { type: 'string', value: 'NAME', help: 'the client\'s user name, or a prefix ending in * (--user is the admin you log in as)' },
      address: { type: 'string', value: 'ADDRESS', help: 'an address or a network (10.0.0.0/8)' },
      listener: { type: 'string', value: 'NAME', help: 'the listener\'s name' },
      protocol: { type: 'string', value: 'VERSION', help: '3.1, 3.1.1 or 5' },
      ...LIMIT_OPTION,
    },
    run: async (context) => {
      const query = { ...Object.fromEntries(['id', 'address', 'listener', 'protocol'].map((name) => [name, text(context, name)])), user: text(context, 'username') };
      const listing = await listAll<ClientJson>(context, '/api/v1/clients', query);
      return { json: listing.json, human: table(CLIENT_COLUMNS, listing.items), note: shownOf(listing, 'clients') };
    },
  },
  {
    name: 'show', args: 'ID', summary: 'one client: connection, subscriptions, messages in flight and queued',
    run: async (context) => {
      const client = await context.api.get<ClientJson & Partial<SessionDetail>>(clientPath(context));
      const human = fields([
        ['id', client.id], ['user', client.user], ['address', `${client.address} port ${client.port}`], ['listener', client.listener],
        ['protocol', client.protocol], ['connected since', `${time(client.connected_since)} (${age(client.connected_since)} ago)`],
        ['keep alive', `${client.keep_alive}s`], ['clean start', client.clean_start], ['session expiry', expiry(client.session_expiry_interval)],
        ['messages', `${client.messages_in} in, ${client.messages_out} out (${client.rates.messages_in_per_second}/s in, ${client.rates.messages_out_per_second}/s out since connected)`],
        ['bytes', `${client.bytes_in} in, ${client.bytes_out} out`],
      ]) + (client.subscriptions ? heldMessages(client as SessionDetail) : '');
      return { json: client, human };
    },
  },
  {
    name: 'kick', args: 'ID', summary: 'disconnect the client (MQTT 5: DISCONNECT 0x98, administrative action); its session stays',
    run: async (context) => {
      const answer = await context.api.call<{ disconnected: string; reason_code: number }>('DELETE', clientPath(context));
      return { json: answer, human: `disconnected ${answer.disconnected} (reason code 0x${answer.reason_code.toString(16)}, administrative action)` };
    },
  },
  {
    name: 'ban', args: 'ID', summary: 'ban the client by its address (default), user name or client identifier, and disconnect it',
    options: {
      by: { type: 'string', value: 'WHAT', help: 'address (default), user or client_id' },
      for: { type: 'string', value: 'DURATION', help: 'how long: 30s, 10m, 1h, 7d (default: until removed)' },
      reason: { type: 'string', value: 'TEXT', help: 'why, kept with the ban' },
    },
    run: async (context) => {
      const by = text(context, 'by');
      if (by !== undefined && !['address', 'user', 'client_id'].includes(by)) throw new UsageError(`--by: expected address, user or client_id, got "${by}"`);
      const body = { ...(by !== undefined && { by }), ...durationField(text(context, 'for')), ...(text(context, 'reason') !== undefined && { reason: text(context, 'reason') }) };
      const ban = await context.api.call<BanJson>('POST', `${clientPath(context)}/ban`, { body });
      return { json: ban, human: `${banLine(ban)}; ${context.args[0]} disconnected` };
    },
  },
];

const SESSION_COLUMNS: ReadonlyArray<Column<SessionJson>> = [
  { header: 'CLIENT', value: (s) => s.client_id },
  { header: 'ONLINE', value: (s) => s.online },
  { header: 'PERSISTENT', value: (s) => s.persistent },
  { header: 'SUBSCRIPTIONS', value: (s) => s.subscriptions, right: true },
  { header: 'INFLIGHT', value: (s) => s.inflight, right: true },
  { header: 'QUEUED', value: (s) => s.queued, right: true },
  { header: 'EXPIRES', value: (s) => (s.online ? null : time(s.expires_at) ?? 'never') },
];

const sessionPath = (context: CommandContext): string => `/api/v1/sessions/${segment(context.args[0]!)}`;

const sessionCommands: Command[] = [
  {
    name: 'list', summary: 'sessions held, with or without a client connected',
    options: { state: { type: 'string', value: 'STATE', help: 'online or offline' }, ...LIMIT_OPTION },
    run: async (context) => {
      const listing = await listAll<SessionJson>(context, '/api/v1/sessions', { state: text(context, 'state') });
      return { json: listing.json, human: table(SESSION_COLUMNS, listing.items), note: shownOf(listing, 'sessions') };
    },
  },
  {
    name: 'show', args: 'ID', summary: 'one session with its subscriptions',
    run: async (context) => {
      const s = await context.api.get<Omit<SessionJson, 'subscriptions'> & SessionDetail>(sessionPath(context));
      const human = fields([
        ['client', s.client_id], ['online', s.online], ['persistent', s.persistent], ['created', time(s.created_at)],
        ['left', time(s.left_at)], ['expires', s.online ? null : time(s.expires_at) ?? 'never'], ['expiry interval', expiry(s.expiry_interval)],
      ]) + heldMessages(s);
      return { json: s, human };
    },
  },
  {
    name: 'delete', args: 'ID', summary: 'end the session as its expiry would (a connected client is disconnected first)',
    run: async (context) => {
      const answer = await context.api.call<{ removed: string; was_online: boolean }>('DELETE', sessionPath(context));
      return { json: answer, human: `removed the session of ${answer.removed}${answer.was_online ? ' (its client was disconnected)' : ''}` };
    },
  },
];

export const clients: Resource = { name: 'clients', summary: 'connected clients: list, show, kick, ban', commands: clientCommands };
export const sessions: Resource = { name: 'sessions', summary: 'sessions, online and offline: list, show, delete', commands: sessionCommands };
