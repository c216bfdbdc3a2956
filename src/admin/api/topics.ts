import { topicFilterError, topicNameError } from '../../protocol/index.js';
import { HttpError, type Route } from '../server.js';
import type { RetainedView } from '../view.js';
import { API, found, page, partial, recordChange, type ApiRoutes } from './common.js';
import { subscriptionJson } from './sessions.js';

/**
 * Subscriptions, the topic tree, and retained messages: browse subscriptions by filter, the topic levels below a
 * prefix with counts of what lies below each, and retained messages (list, read, delete as an empty retained publish).
 */

/** The filter a subscription routes by: a shared one without its `$share/{group}/`. */
function routedFilter(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  const slash = filter.indexOf('/', 7);
  return slash < 0 ? filter : filter.slice(slash + 1);
}

/** The levels of `prefix` ("" for the root), checked as a topic name without wildcards. */
function prefixLevels(prefix: string | null): string[] {
  if (prefix === null || prefix === '') return [];
  const problem = topicNameError(prefix);
  if (problem) throw new HttpError(400, `prefix: ${problem}`);
  return prefix.split('/');
}

/** The filters that match the topics at and below `levels` (every topic but `$` ones for the root). */
function filtersUnder(levels: string[]): string[] {
  return levels.length === 0 ? ['#'] : [levels.join('/'), `${levels.join('/')}/#`];
}

/** A topic name, checked (no wildcards). */
function topicOf(topic: string): string {
  const problem = topicNameError(topic);
  if (problem) throw new HttpError(400, `topic: ${problem}`);
  return topic;
}

function retainedJson(m: RetainedView, withPayload: boolean): Record<string, unknown> {
  const json: Record<string, unknown> = { topic: m.topic, qos: m.qos, size: m.payload.length };
  if (m.expiresAt !== undefined) json.expires_at = new Date(m.expiresAt).toISOString();
  if (!withPayload) return json;
  // A Uint8Array once it crossed IPC (multi-core mode).
  const payload = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
  json.payload_base64 = payload.toString('base64');
  const text = payload.toString('utf8');
  // utf8 only when the bytes are valid UTF-8 (decoding replaced nothing).
  json.payload_utf8 = Buffer.from(text, 'utf8').equals(payload) ? text : null;
  const p = m.properties;
  json.properties = p === undefined ? {} : {
    ...(p.payloadFormatIndicator !== undefined && { payload_format_indicator: p.payloadFormatIndicator }),
    ...(p.messageExpiryInterval !== undefined && { message_expiry_interval: p.messageExpiryInterval }),
    ...(p.contentType !== undefined && { content_type: p.contentType }),
    ...(p.responseTopic !== undefined && { response_topic: p.responseTopic }),
    ...(p.correlationData !== undefined && { correlation_data_base64: Buffer.from(p.correlationData).toString('base64') }),
    ...(p.userProperties !== undefined && { user_properties: p.userProperties }),
  };
  return json;
}

export const topicRoutes: ApiRoutes = (context) => {
  const { backend } = context;
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/subscriptions`, access: 'read',
      handle: async ({ query }) => {
        const filter = query.get('filter');
        if (filter !== null && topicFilterError(filter)) throw new HttpError(400, `filter: ${topicFilterError(filter)!}`);
        const client = query.get('client_id');
        const { items, missing } = await backend.sessions();
        const rows = items.flatMap((s) => (client !== null && s.clientId !== client ? [] : s.subscriptions
          .filter((sub) => filter === null || sub.filter === filter || routedFilter(sub.filter) === filter)
          .map((sub) => ({ client_id: s.clientId, online: s.online, filter: sub.filter, ...subscriptionJson(sub) }))));
        return { json: { ...page(rows, (r) => `${r.client_id}\u0000${r.filter}`, query), ...partial(missing) } };
      },
    },
    {
      method: 'GET', path: `${API}/topics`, access: 'read',
      handle: async ({ query }) => {
        const levels = prefixLevels(query.get('prefix'));
        const depth = levels.length;
        const children = new Map<string, { subscriptions: number; retained: number; has_children: boolean }>();
        const here = { subscriptions: 0, retained: 0 };
        const count = (topicLevels: string[], what: 'subscriptions' | 'retained'): void => {
          for (let i = 0; i < depth; i++) if (topicLevels[i] !== levels[i]) return;
          if (topicLevels.length === depth) {
            here[what]++;
            return;
          }
          const name = topicLevels[depth]!;
          const child = children.get(name) ?? { subscriptions: 0, retained: 0, has_children: false };
          child[what]++;
          if (topicLevels.length > depth + 1) child.has_children = true;
          children.set(name, child);
        };
        const [sessions, retained] = await Promise.all([backend.sessions(), backend.retained(filtersUnder(levels))]);
        for (const s of sessions.items) for (const sub of s.subscriptions) count(routedFilter(sub.filter).split('/'), 'subscriptions');
        for (const m of retained.items) count(m.topic.split('/'), 'retained');
        const rows = [...children].map(([level, c]) => ({ level, topic: [...levels, level].join('/'), ...c }));
        const listed = page(rows, (r) => r.level, query);
        const missing = [...new Set([...sessions.missing, ...retained.missing])].sort();
        return {
          json: {
            prefix: levels.join('/'), ...here, levels: listed.items, total: listed.total, ...(listed.next_cursor && { next_cursor: listed.next_cursor }),
            ...partial(missing),
          },
        };
      },
    },
    {
      method: 'GET', path: `${API}/retained`, access: 'read',
      handle: async ({ query }) => {
        const { items, missing } = await backend.retained(filtersUnder(prefixLevels(query.get('prefix'))));
        const listed = page(items, (m) => m.topic, query);
        return { json: { ...listed, items: listed.items.map((m) => retainedJson(m, false)), ...partial(missing) } };
      },
    },
    {
      method: 'GET', path: `${API}/retained/{topic*}`, access: 'read',
      handle: async ({ params }) => {
        const { items, missing } = await backend.retained([topicOf(params.topic!)]);
        return { json: retainedJson(found({ item: items[0], missing }, `retained message on "${params.topic}"`), true) };
      },
    },
    {
      method: 'DELETE', path: `${API}/retained/{topic*}`, access: 'write',
      handle: async (request) => {
        const topic = topicOf(request.params.topic!);
        found(await backend.deleteRetained(topic), `retained message on "${topic}"`);
        recordChange(context, request, 'retained', topic, 'deleted');
        return { json: { removed: topic } };
      },
    },
  ];
  return routes;
};
