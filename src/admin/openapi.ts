/**
 * The REST API's OpenAPI 3.1 document, served at GET /api/v1/openapi.json (scope `read`). Written as data, beside the
 * routes rather than generated from them: test/admin/api.test.ts checks that every route of the admin server is in
 * it and that it names no route the server does not have. A `{topic}` path parameter takes the rest of the path:
 * a topic's levels, each percent-encoded (or the whole topic with "/" as %2F).
 */

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description = 'OK'): Json => ({ description, content: { 'application/json': { schema } } });
const error = (description: string): Json => json(ref('Error'), description);
const query = (name: string, description: string, schema: Json = { type: 'string' }): Json => ({ name, in: 'query', required: false, description, schema });
const path = (name: string, description: string): Json => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });
const body = (schema: Json): Json => ({ required: true, content: { 'application/json': { schema } } });
const paging = [
  query('limit', 'Items per page (1 to 1000, default 100).', { type: 'integer', minimum: 1, maximum: 1000 }),
  query('cursor', 'The next_cursor of the page before.'),
  query('offset', 'Items to skip (instead of cursor).', { type: 'integer', minimum: 0 }),
];
/** Multi-core mode: present when a worker did not answer in time (its items are missing). */
const partialFields = {
  partial: { const: true, description: 'Multi-core mode: some workers did not answer in time; their items are not in this answer.' },
  workers_missing: { type: 'array', items: { type: 'integer' }, description: 'The indexes of the workers that did not answer.' },
};
const pageOf = (item: Json): Json => ({
  type: 'object', required: ['items', 'total'],
  properties: { items: { type: 'array', items: item }, total: { type: 'integer' }, next_cursor: { type: 'string' }, ...partialFields },
});
const denied = {
  401: error('No or wrong credentials.'), 403: error('Credentials without the scope, a user without the admin role, or a banned address.'),
  503: error('Multi-core mode: a worker the answer needs did not answer in time (workers_missing names it); for a change, read it back.'),
};
const read = (summary: string, ok: Json, extra: Json = {}, parameters: Json[] = []): Json => ({
  summary, security: [{ bearer: ['read'] }, { basic: [] }], parameters, responses: { 200: ok, 400: error('A parameter is wrong.'), ...denied, ...extra },
});
const write = (summary: string, ok: Json, extra: Json = {}, parameters: Json[] = [], request?: Json): Json => ({
  summary, security: [{ bearer: ['write'] }, { basic: [] }], parameters, ...(request && { requestBody: request }),
  responses: { ...ok, 400: error('The request is wrong (the message says what).'), ...denied, ...extra },
});
const notFound = { 404: error('No such item.') };
const conflict = (why: string): Json => ({ 409: error(why) });
const named = (what: string): Json[] => [path('name', `The ${what}'s name.`)];
const runtimeOff = 'Runtime users, groups and roles are off, the name is taken, or the configuration defines it (change it there).';

const binding = { oneOf: [{ type: 'string' }, { type: 'object', required: ['name'], properties: { name: { type: 'string' }, priority: { type: 'integer' } } }] };
const text = { type: ['string', 'null'] };

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: {
    title: 'Moat admin API',
    version: '1',
    description: 'The running broker: clients, sessions, subscriptions and the topic tree, retained messages, bans, runtime users, groups and roles, the broker. JSON in and out; errors are {"error": "..."}. Scope `read` for GET, `write` for changes; admin users (Basic) have both. Every call is audited, and every change is a security.change audit event. In multi-core mode every endpoint covers all the workers; an answer missing a worker says so (partial, workers_missing).',
  },
  servers: [{ url: '/' }],
  components: {
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'An API token from admin.tokens, with its scopes.' },
      basic: { type: 'http', scheme: 'basic', description: 'A user the broker authenticates who holds the admin role (every scope).' },
    },
    schemas: {
      Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' }, ...partialFields } },
      Client: {
        type: 'object',
        properties: {
          id: { type: 'string' }, user: text, address: { type: 'string' }, port: { type: 'integer' }, listener: { type: 'string' },
          protocol: { enum: ['3.1', '3.1.1', '5'] }, connected_since: { type: 'string', format: 'date-time' }, keep_alive: { type: 'integer' },
          clean_start: { type: 'boolean' }, session_expiry_interval: { type: 'integer' },
          messages_in: { type: 'integer', description: 'PUBLISH packets received from the client on this connection.' },
          messages_out: { type: 'integer', description: 'PUBLISH packets sent to it.' },
          bytes_in: { type: 'integer' }, bytes_out: { type: 'integer' },
          rates: {
            type: 'object', description: 'Averages per second since the connection was accepted (take two readings apart for the rate of the moment).',
            properties: {
              messages_in_per_second: { type: 'number' }, messages_out_per_second: { type: 'number' },
              bytes_in_per_second: { type: 'number' }, bytes_out_per_second: { type: 'number' },
            },
          },
        },
      },
      Subscription: {
        type: 'object',
        properties: {
          filter: { type: 'string' }, qos: { enum: [0, 1, 2] }, no_local: { type: 'boolean' }, retain_as_published: { type: 'boolean' },
          subscription_identifier: { type: 'integer' }, client_id: { type: 'string' }, online: { type: 'boolean' },
        },
      },
      ClientDetail: {
        allOf: [ref('Client'), {
          type: 'object',
          properties: { subscriptions: { type: 'array', items: ref('Subscription') }, inflight: { type: 'integer' }, queued: { type: 'integer' }, queued_bytes: { type: 'integer' } },
        }],
      },
      Session: {
        type: 'object',
        properties: {
          client_id: { type: 'string' }, online: { type: 'boolean' }, persistent: { type: 'boolean' }, created_at: { type: 'string', format: 'date-time' },
          left_at: text, expires_at: text, expiry_interval: { type: 'integer' }, subscriptions: { type: 'integer' }, inflight: { type: 'integer' }, queued: { type: 'integer' },
        },
      },
      TopicLevels: {
        type: 'object',
        properties: {
          prefix: { type: 'string' }, subscriptions: { type: 'integer' }, retained: { type: 'integer' }, total: { type: 'integer' }, next_cursor: { type: 'string' },
          levels: {
            type: 'array',
            items: { type: 'object', properties: { level: { type: 'string' }, topic: { type: 'string' }, subscriptions: { type: 'integer' }, retained: { type: 'integer' }, has_children: { type: 'boolean' } } },
          },
        },
      },
      Retained: {
        type: 'object',
        properties: {
          topic: { type: 'string' }, qos: { enum: [0, 1, 2] }, size: { type: 'integer' }, expires_at: { type: 'string', format: 'date-time' },
          payload_base64: { type: 'string' }, payload_utf8: text, properties: { type: 'object' },
        },
      },
      Ban: {
        type: 'object',
        properties: {
          kind: { enum: ['address', 'network', 'client_id', 'username'] }, value: { type: 'string' }, reason: { type: 'string' },
          since: { type: 'string', format: 'date-time' }, until: text, source: { enum: ['config', 'guard', 'api'] },
        },
      },
      User: {
        type: 'object',
        properties: {
          name: { type: 'string' }, has_password: { type: 'boolean' }, roles: { type: 'array', items: binding }, groups: { type: 'array', items: binding },
          client_id: text, disabled: { type: 'boolean' }, text_name: text, text_description: text, in_force: { type: 'boolean' },
        },
      },
      UserChange: {
        type: 'object',
        properties: {
          password: { type: 'string' }, roles: { type: 'array', items: binding }, groups: { type: 'array', items: binding }, client_id: text,
          disabled: { type: 'boolean' }, text_name: { type: 'string' }, text_description: { type: 'string' },
        },
      },
      Group: {
        type: 'object',
        properties: { name: { type: 'string' }, roles: { type: 'array', items: binding }, members: { type: 'array', items: { type: 'string' } }, text_name: text, text_description: text, in_force: { type: 'boolean' } },
      },
      Rule: {
        type: 'object', required: ['filter', 'actions', 'effect'],
        properties: { filter: { type: 'string' }, actions: { type: 'array', items: { enum: ['publish', 'subscribe', 'receive'] } }, effect: { enum: ['allow', 'deny'] }, priority: { type: 'integer' } },
      },
      Role: {
        type: 'object',
        properties: { name: { type: 'string' }, rules: { type: 'array', items: ref('Rule') }, text_name: text, text_description: text, in_force: { type: 'boolean' } },
      },
      ReloadResult: {
        type: 'object',
        properties: {
          ok: { type: 'boolean' }, applied: { type: 'array', items: { type: 'string' } }, restart_needed: { type: 'array', items: { type: 'string' } }, error: { type: 'string' },
          ...partialFields,
        },
      },
    },
  },
  paths: {
    '/api/v1/openapi.json': { get: read('This document.', json({ type: 'object' })) },
    '/api/v1/broker': {
      get: read('Version, uptime, listeners, limits and capabilities.', json({
        type: 'object',
        properties: {
          version: { type: 'string' }, uptime_seconds: { type: 'integer' }, ready: { type: 'boolean' }, connected_clients: { type: 'integer' }, sessions: { type: 'integer' },
          listeners: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, host: { type: 'string' }, port: { type: 'integer' }, path: { type: 'string' } } } },
          limits: { type: 'object' }, capabilities: { type: 'object' },
        },
      })),
    },
    '/api/v1/events': {
      get: read('The security feed: the latest refusals, bans and security changes from the audit trail (the last 1,000, kept in memory since the start; in multi-core mode, every worker\'s). Text fields longer than 256 characters are cut.', json({
        type: 'object', required: ['items', 'last_seq', 'first_seq', 'boot_id'],
        properties: {
          items: {
            type: 'array', description: 'Oldest first.',
            items: {
              type: 'object', required: ['seq', 'time', 'event', 'clientId'],
              description: 'The audit event with its fields as in the audit trail (clientId, username, remoteAddress, listener, reason, topic, ban, until, principal, ...).',
              properties: { seq: { type: 'integer' }, time: { type: 'string', format: 'date-time' }, event: { type: 'string' }, clientId: { type: 'string' } },
              additionalProperties: true,
            },
          },
          last_seq: { type: 'integer', description: 'The newest event\'s number (0: none).' },
          first_seq: { type: 'integer', description: 'The oldest number still kept (0: none): a reader whose `after` is below first_seq - 1 missed events.' },
          boot_id: { type: 'string', description: 'Changes with each start of the broker, when numbers start again from 1: start over when it changes.' },
        },
      }), {}, [
        query('after', 'Only events numbered above this, oldest first; absent: the newest `limit`.', { type: 'integer', minimum: 0 }),
        query('limit', 'Events per answer (1 to 1000, default 100).', { type: 'integer', minimum: 1, maximum: 1000 }),
      ]),
    },
    '/api/v1/broker/config': { get: read('The configuration in force, secrets redacted.', json({ type: 'object' }), conflict('Not started from a configuration.')) },
    '/api/v1/broker/reload': {
      post: write('Reads the configuration file again and applies what can change while running (as SIGHUP).', { 200: json(ref('ReloadResult')) }, conflict('The file has an error: nothing changed (the body is a ReloadResult with the error).')),
    },
    '/api/v1/clients': {
      get: read('Connected clients.', json(pageOf(ref('Client'))), {}, [
        query('id', 'Client identifier; a trailing * matches a prefix.'), query('user', 'User name; a trailing * matches a prefix.'),
        query('address', 'An address or a network (CIDR).'), query('listener', 'Listener name.'), query('protocol', '3.1, 3.1.1 or 5.'), ...paging,
      ]),
    },
    '/api/v1/clients/{id}': {
      get: read('One connected client, with its subscriptions and in-flight and queued counts.', json(ref('ClientDetail')), notFound, [path('id', 'Client identifier.')]),
      delete: write('Disconnects the client: MQTT 5 clients get DISCONNECT 0x98 (Administrative action); its will is published.', {
        200: json({ type: 'object', properties: { disconnected: { type: 'string' }, reason_code: { type: 'integer' } } }),
      }, notFound, [path('id', 'Client identifier.')]),
    },
    '/api/v1/clients/{id}/ban': {
      post: write('Bans the client by its address (default), user name or client identifier, and disconnects it (0x98).', { 201: json(ref('Ban'), 'Banned') },
        { ...notFound, ...conflict('The guard is off.') }, [path('id', 'Client identifier.')],
        body({ type: 'object', properties: { by: { enum: ['address', 'user', 'client_id'] }, duration: { type: 'number', description: 'Seconds; absent: until removed.' }, reason: { type: 'string' } } })),
    },
    '/api/v1/sessions': {
      get: read('Sessions, online and offline.', json(pageOf(ref('Session'))), {}, [query('state', 'online or offline.'), ...paging]),
    },
    '/api/v1/sessions/{id}': {
      get: read('One session, with its subscriptions.', json(ref('Session')), notFound, [path('id', 'Client identifier.')]),
      delete: write('Removes the session from memory and the store; a connected client is disconnected first (0x98).', {
        200: json({ type: 'object', properties: { removed: { type: 'string' }, was_online: { type: 'boolean' } } }),
      }, notFound, [path('id', 'Client identifier.')]),
    },
    '/api/v1/subscriptions': {
      get: read('Subscriptions of every session.', json(pageOf(ref('Subscription'))), {}, [
        query('filter', 'Only this filter (a shared subscription matches by its filter or its $share/... form).'), query('client_id', 'Only this session\'s.'), ...paging,
      ]),
    },
    '/api/v1/topics': {
      get: read('The topic levels right below a prefix, with the subscriptions and retained messages below each.', json(ref('TopicLevels')), {}, [
        query('prefix', 'A topic (no wildcards); absent: the root. $ topics only under a prefix that names them ($SYS).'), ...paging,
      ]),
    },
    '/api/v1/retained': {
      get: read('Retained messages at and below a prefix (without payloads).', json(pageOf(ref('Retained'))), {}, [query('prefix', 'A topic (no wildcards); absent: every topic but $ ones.'), ...paging]),
    },
    '/api/v1/retained/{topic}': {
      get: read('One retained message: payload in base64, and as text when it is valid UTF-8; QoS; MQTT 5 properties.', json(ref('Retained')), notFound, [path('topic', 'The topic, levels percent-encoded.')]),
      delete: write('Removes the retained message as an empty retained publish would (the store too).', { 200: json({ type: 'object', properties: { removed: { type: 'string' } } }) }, notFound, [path('topic', 'The topic, levels percent-encoded.')]),
    },
    '/api/v1/bans': {
      get: read('Bans in force.', json(pageOf(ref('Ban'))), conflict('The guard is off.'), [query('kind', 'address, network, client_id or username.'), ...paging]),
      post: write('Adds a ban.', { 201: json(ref('Ban'), 'Banned') }, conflict('The guard is off.'), [], body({
        type: 'object', required: ['kind', 'value'],
        properties: { kind: { enum: ['address', 'network', 'client_id', 'username'] }, value: { type: 'string' }, duration: { type: 'number', description: 'Seconds; absent: until removed.' }, reason: { type: 'string' } },
      })),
    },
    '/api/v1/bans/{kind}/{value}': {
      delete: write('Lifts a ban.', { 200: json({ type: 'object' }) }, { ...notFound, ...conflict('The ban is in the configuration file, or the guard is off.') }, [
        path('kind', 'address, network, client_id or username.'), path('value', 'The banned value (a network with its /, percent-encoded).'),
      ]),
    },
    '/api/v1/users': {
      get: read('Runtime users.', json(pageOf(ref('User'))), conflict(runtimeOff), paging),
      post: write('Creates a runtime user.', { 201: json(ref('User'), 'Created') }, conflict(runtimeOff), [], body({ allOf: [ref('UserChange'), { type: 'object', required: ['name'], properties: { name: { type: 'string' } } }] })),
    },
    '/api/v1/users/{name}': {
      get: read('One runtime user (never its password).', json(ref('User')), notFound, named('user')),
      patch: write('Changes the fields given.', { 200: json(ref('User')) }, { ...notFound, ...conflict(runtimeOff) }, named('user'), body(ref('UserChange'))),
      delete: write('Deletes a runtime user (connected clients stay until they reconnect).', { 200: json({ type: 'object' }) }, { ...notFound, ...conflict(runtimeOff) }, named('user')),
    },
    '/api/v1/groups': {
      get: read('Runtime groups.', json(pageOf(ref('Group'))), conflict(runtimeOff), paging),
      post: write('Creates a runtime group.', { 201: json(ref('Group'), 'Created') }, conflict(runtimeOff), [], body({
        type: 'object', required: ['name'], properties: { name: { type: 'string' }, roles: { type: 'array', items: binding }, text_name: { type: 'string' }, text_description: { type: 'string' } },
      })),
    },
    '/api/v1/groups/{name}': {
      get: read('One runtime group.', json(ref('Group')), notFound, named('group')),
      patch: write('Changes the fields given.', { 200: json(ref('Group')) }, { ...notFound, ...conflict(runtimeOff) }, named('group'), body({
        type: 'object', properties: { roles: { type: 'array', items: binding }, text_name: { type: 'string' }, text_description: { type: 'string' } },
      })),
      delete: write('Deletes a runtime group; its members lose it.', { 200: json({ type: 'object' }) }, { ...notFound, ...conflict(runtimeOff) }, named('group')),
    },
    '/api/v1/roles': {
      get: read('Runtime roles.', json(pageOf(ref('Role'))), conflict(runtimeOff), paging),
      post: write('Creates a runtime role.', { 201: json(ref('Role'), 'Created') }, conflict(runtimeOff), [], body({
        type: 'object', required: ['name'], properties: { name: { type: 'string' }, rules: { type: 'array', items: ref('Rule') }, text_name: { type: 'string' }, text_description: { type: 'string' } },
      })),
    },
    '/api/v1/roles/{name}': {
      get: read('One runtime role.', json(ref('Role')), notFound, named('role')),
      patch: write('Changes the fields given (rules replace the rules).', { 200: json(ref('Role')) }, { ...notFound, ...conflict(runtimeOff) }, named('role'), body({
        type: 'object', properties: { rules: { type: 'array', items: ref('Rule') }, text_name: { type: 'string' }, text_description: { type: 'string' } },
      })),
      delete: write('Deletes a runtime role; users and groups lose it.', { 200: json({ type: 'object' }) }, { ...notFound, ...conflict(runtimeOff) }, named('role')),
    },
  },
} as const;
