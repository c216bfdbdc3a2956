import { flag, LIMIT_OPTION, listAll, segment, shownOf, text, type Command, type Resource } from './command.js';
import { subscriptionTable, type SubscriptionJson } from './clients.js';
import { cell, fields, section, table, time, type Column } from './table.js';

/** Subscriptions, the topic tree and retained messages: /api/v1/subscriptions, /api/v1/topics, /api/v1/retained. */

interface LevelJson {
  level: string;
  topic: string;
  subscriptions: number;
  retained: number;
  has_children: boolean;
}

interface RetainedJson {
  topic: string;
  qos: number;
  size: number;
  expires_at?: string;
  payload_base64?: string;
  payload_utf8?: string | null;
  properties?: Record<string, unknown>;
}

const subscriptionCommands: Command[] = [
  {
    name: 'list', summary: 'subscriptions of every session',
    options: {
      filter: { type: 'string', value: 'FILTER', help: 'only this filter (a shared subscription matches by its filter or its $share/... form)' },
      'client-id': { type: 'string', value: 'ID', help: 'only this session\'s' },
      ...LIMIT_OPTION,
    },
    run: async (context) => {
      const listing = await listAll<SubscriptionJson>(context, '/api/v1/subscriptions', { filter: text(context, 'filter'), client_id: text(context, 'client-id') });
      return { json: listing.json, human: subscriptionTable(listing.items, true), note: shownOf(listing, 'subscriptions') };
    },
  },
];

const LEVEL_COLUMNS: ReadonlyArray<Column<LevelJson>> = [
  { header: 'TOPIC', value: (l) => l.topic },
  { header: 'SUBSCRIPTIONS', value: (l) => l.subscriptions, right: true },
  { header: 'RETAINED', value: (l) => l.retained, right: true },
  { header: 'LEVELS BELOW', value: (l) => l.has_children },
];

const topicCommands: Command[] = [
  {
    name: 'tree', args: '[PREFIX]', summary: 'the levels right below PREFIX (the root without it), with the subscriptions and retained messages under each',
    options: LIMIT_OPTION,
    run: async (context) => {
      const prefix = context.args[0];
      const listing = await listAll<LevelJson>(context, '/api/v1/topics', { prefix }, 'levels');
      const here = listing.json as { prefix: string; subscriptions: number; retained: number };
      const human = `${cell(here.prefix === '' ? '(root)' : here.prefix)}: ${here.subscriptions} subscriptions, ${here.retained} retained here\n${table(LEVEL_COLUMNS, listing.items)}`;
      return { json: listing.json, human, note: shownOf(listing, 'levels') };
    },
  },
];

const RETAINED_COLUMNS: ReadonlyArray<Column<RetainedJson>> = [
  { header: 'TOPIC', value: (m) => m.topic },
  { header: 'QOS', value: (m) => m.qos, right: true },
  { header: 'SIZE', value: (m) => m.size, right: true },
  { header: 'EXPIRES', value: (m) => time(m.expires_at) },
];

const retainedPath = (topic: string): string => `/api/v1/retained/${segment(topic)}`;

const retainedCommands: Command[] = [
  {
    name: 'list', args: '[PREFIX]', summary: 'retained messages at and below PREFIX (every topic but $ ones without it)', options: LIMIT_OPTION,
    run: async (context) => {
      const listing = await listAll<RetainedJson>(context, '/api/v1/retained', { prefix: context.args[0] });
      return { json: listing.json, human: table(RETAINED_COLUMNS, listing.items), note: shownOf(listing, 'retained messages') };
    },
  },
  {
    name: 'get', args: 'TOPIC', summary: 'one retained message: its payload (as text when it is UTF-8), QoS and MQTT 5 properties',
    options: { raw: { type: 'boolean', help: 'print only the payload, byte for byte' } },
    run: async (context) => {
      const m = await context.api.get<RetainedJson>(retainedPath(context.args[0]!));
      if (flag(context, 'raw')) return { raw: Buffer.from(m.payload_base64 ?? '', 'base64') };
      const properties = Object.entries(m.properties ?? {}).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
      const human = fields([
        ['topic', m.topic], ['qos', m.qos], ['size', `${m.size} bytes`], ...(m.expires_at ? [['expires', time(m.expires_at)] as [string, string | null]] : []),
        m.payload_utf8 === null || m.payload_utf8 === undefined ? ['payload (base64)', m.payload_base64] : ['payload', m.payload_utf8],
      ]) + (properties.length > 0 ? section('Properties', fields(properties)) : '');
      return { json: m, human };
    },
  },
  {
    name: 'delete', args: 'TOPIC', summary: 'remove it as an empty retained publish would (subscribers get the empty message)',
    run: async (context) => {
      const answer = await context.api.call<{ removed: string }>('DELETE', retainedPath(context.args[0]!));
      return { json: answer, human: `removed the retained message on ${cell(answer.removed)}` };
    },
  },
];

export const subscriptions: Resource = { name: 'subscriptions', summary: 'subscriptions of every session: list', commands: subscriptionCommands };
export const topics: Resource = { name: 'topics', summary: 'the topic tree: tree [PREFIX]', commands: topicCommands };
export const retained: Resource = { name: 'retained', summary: 'retained messages: list, get, delete', commands: retainedCommands };
