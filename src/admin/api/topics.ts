import { topicFilterError, topicNameError } from '../../protocol/index.js';
import type { Message } from '../../broker/message.js';
import { HttpError, type Route } from '../server.js';
import { API, page, type ApiRoutes } from './common.js';
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

function retainedJson(m: Message, withPayload: boolean): Record<string, unknown> {
  const json: Record<string, unknown> = { topic: m.topic, qos: m.qos, size: m.payload.length };
  if (m.expiresAt !== undefined) json.expires_at = new Date(m.expiresAt).toISOString();
  if (!withPayload) return json;
  json.payload_base64 = m.payload.toString('base64');
  const text = m.payload.toString('utf8');
  // utf8 only when the bytes are valid UTF-8 (decoding replaced nothing).
  json.payload_utf8 = Buffer.from(text, 'utf8').equals(m.payload) ? text : null;
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

export const topicRoutes: ApiRoutes = ({ broker }) => {
  /** Retained messages under `levels` (all of them for the root; `$` topics only when the prefix names them). */
  const retainedUnder = (levels: string[]): Message[] => {
    const found: Message[] = [];
    const now = Date.now();
    const visit = (m: Message): void => void found.push(m);
    if (levels.length === 0) broker.retained.match('#', now, visit);
    else {
      broker.retained.match(levels.join('/'), now, visit);
      broker.retained.match(`${levels.join('/')}/#`, now, visit);
    }
    return [...new Map(found.map((m) => [m.topic, m])).values()];
  };
  const oneRetained = (topic: string): Message | undefined => {
    const problem = topicNameError(topic);
    if (problem) throw new HttpError(400, `topic: ${problem}`);
    let found: Message | undefined;
    broker.retained.match(topic, Date.now(), (m) => void (found = m));
    return found;
  };
  const routes: Route[] = [
    {
      method: 'GET', path: `${API}/subscriptions`, access: 'read',
      handle: ({ query }) => {
        const filter = query.get('filter');
        if (filter !== null && topicFilterError(filter)) throw new HttpError(400, `filter: ${topicFilterError(filter)!}`);
        const client = query.get('client_id');
        const rows = [...broker.sessionViews()].flatMap((s) => (client !== null && s.clientId !== client ? [] : s.subscriptions
          .filter((sub) => filter === null || sub.filter === filter || routedFilter(sub.filter) === filter)
          .map((sub) => ({ client_id: s.clientId, online: s.online, filter: sub.filter, ...subscriptionJson(sub) }))));
        return { json: page(rows, (r) => `${r.client_id}\u0000${r.filter}`, query) };
      },
    },
    {
      method: 'GET', path: `${API}/topics`, access: 'read',
      handle: ({ query }) => {
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
        for (const s of broker.sessionViews()) for (const sub of s.subscriptions) count(routedFilter(sub.filter).split('/'), 'subscriptions');
        for (const m of retainedUnder(levels)) count(m.topic.split('/'), 'retained');
        const rows = [...children].map(([level, c]) => ({ level, topic: [...levels, level].join('/'), ...c }));
        const listed = page(rows, (r) => r.level, query);
        return { json: { prefix: levels.join('/'), ...here, levels: listed.items, total: listed.total, ...(listed.next_cursor && { next_cursor: listed.next_cursor }) } };
      },
    },
    {
      method: 'GET', path: `${API}/retained`, access: 'read',
      handle: ({ query }) => {
        const listed = page(retainedUnder(prefixLevels(query.get('prefix'))), (m) => m.topic, query);
        return { json: { ...listed, items: listed.items.map((m) => retainedJson(m, false)) } };
      },
    },
    {
      method: 'GET', path: `${API}/retained/{topic*}`, access: 'read',
      handle: ({ params }) => {
        const message = oneRetained(params.topic!);
        if (!message) throw new HttpError(404, `no retained message on "${params.topic}"`);
        return { json: retainedJson(message, true) };
      },
    },
    {
      method: 'DELETE', path: `${API}/retained/{topic*}`, access: 'write',
      handle: ({ params }) => {
        const topic = params.topic!;
        if (!oneRetained(topic)) throw new HttpError(404, `no retained message on "${topic}"`);
        // As a client's empty retained publish: removed here and from the store, and routed to subscribers as one.
        broker.publish({ topic, payload: Buffer.alloc(0), qos: 0, retain: true });
        return { json: { removed: topic } };
      },
    },
  ];
  return routes;
};
