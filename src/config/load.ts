import { readFileSync } from 'node:fs';
import type { RedisTarget } from '../store/redis-target.js';
import path from 'node:path';
import { availableParallelism } from 'node:os';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type YAMLError } from 'yaml';
import type { BrokerCapabilities, BrokerLimits, BrokerOptions, TlsListenerOptions, WebSocketOptions } from '../broker/options.js';
import type { AclConfig, AclRule } from '../security/acl.js';
import type { AuthenticationSource, SecurityOptions } from '../security/index.js';
import { checkSecurityFiles, errnoWords, readAt, readTlsFiles } from './file-checks.js';
import { AtRestKeyFileError, parseAtRestKeys } from '../store/at-rest.js';
import { readAdmin } from './admin.js';
import { readPayload, type PayloadConfig } from './payload.js';
import { readCluster, type ClusterConfig } from './cluster.js';
import { DEFAULT_ADMIN_ROLE, type AdminOptions } from '../admin/options.js';
import { isAddressOrNetwork } from '../security/guard/addresses.js';
import type { GuardOptions } from '../security/guard/guard.js';
import { configSchema, type FileBinding, type FileConfig, type FileRateLimit, type FileRule, type FileWebSocket } from './schema.js';
import type { RateLimit } from '../security/guard/publish-rate.js';

/** A configuration problem, located: file, line, key and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly key: string | undefined,
    readonly problem: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${key ? `${key}: ` : ''}${problem}`);
  }
}

// verbose: errors carry the offending value and the schema, so a problem can be put in words.
// Compiled on first use: the embedded default setup (no file) starts without paying for it (about 0.1 s).
let validator: ValidateFunction<FileConfig> | undefined;
const schemaValidator = (): ValidateFunction<FileConfig> =>
  (validator ??= new Ajv({ allErrors: false, strict: true, verbose: true }).compile<FileConfig>(configSchema));

/** Where state is kept: the embedded SQLite store in a data directory (default ./data), or memory only. */
export type StoreConfig =
  | { type: 'sqlite'; directory: string; durability: 'strict' | 'periodic'; flushIntervalMs: number | undefined; encryption?: StoreEncryption }
  | {
    type: 'redis'; url: string; keyPrefix: string | undefined; retainedKey?: string; encryption?: StoreEncryption;
    sentinel?: RedisTarget['sentinel']; clusterNodes?: RedisTarget['clusterNodes']; waitReplicas?: number; waitTimeoutMs?: number;
  }
  | { type: 'memory' };

/** Encryption at rest of stored messages (docs/payload-encryption.md, "At rest"): the key file, checked at load. */
export interface StoreEncryption {
  keyFile: string;
}

const DEFAULT_STORE_DIRECTORY = './data';
export const DEFAULT_STORE: StoreConfig = { type: 'sqlite', directory: DEFAULT_STORE_DIRECTORY, durability: 'strict', flushIntervalMs: undefined };

export interface LoadedConfig {
  broker: BrokerOptions;
  store: StoreConfig;
  log: { level: string; format: 'auto' | 'json' | 'pretty' };
  /** Authentication and authorization; file paths are resolved against the configuration file's directory. */
  security: SecurityOptions;
  /** A separate audit log file (default: audit lines go to the main log). */
  auditFile?: string;
  /** Worker processes (multi-core mode, docs/multicore.md); 1 = one process. */
  workers: number;
  /** The admin listener (health, metrics, API; docs/operations.md); absent: off. */
  admin?: AdminOptions;
  /** Client-to-broker payload encryption (docs/payload-encryption.md); absent: off. */
  payload?: PayloadConfig;
  /** Cluster mode (docs/cluster.md); absent: a broker on its own. */
  cluster?: ClusterConfig;
}

export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, undefined, `cannot read the configuration file: ${errnoWords(err)}`);
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): LoadedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) throw new ConfigError(file, syntax.linePos?.[0].line, undefined, `invalid YAML: ${yamlProblem(syntax, text)}`);
  // An empty file is a mistake (a wrong path, a file truncated by an editor), not a wish for the defaults.
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null && doc.contents.source === '')) {
    throw new ConfigError(file, undefined, undefined, text.trim() === '' ? 'the configuration file is empty' : 'the configuration file is empty: it holds only comments, no settings');
  }
  const data: unknown = doc.toJS();
  const validate = schemaValidator();
  if (!validate(data)) {
    const error = reported(validate.errors!);
    const path = errorPath(error);
    throw new ConfigError(file, lineOf(doc, lines, path), path.join('.') || undefined, describe(error, path));
  }
  const located = (path: string[], problem: string): ConfigError => new ConfigError(file, lineOf(doc, lines, path), path.join('.'), problem);
  checkRoleReferences(data, located);
  checkAuthentication(data, located);
  checkGuard(data, located);
  checkListeners(data, located);
  checkDynamicSecurity(data, located);
  const base = path.dirname(path.resolve(file));
  checkSecurityFiles(data, base, located);
  checkStoreEncryption(data, base, located);
  if (data.store?.sentinel && data.store.cluster_nodes) {
    throw located(['store', 'cluster_nodes'], 'a Redis is reached through Sentinel (store.sentinel) or is a Redis Cluster (store.cluster_nodes), not both');
  }
  const loaded = toOptions(data, base, readTlsFiles(data, base, located));
  const admin = readAdmin(data, base, located);
  if (admin) loaded.admin = admin;
  const payload = readPayload(data, base, located);
  if (payload) loaded.payload = payload;
  const cluster = readCluster(data, located);
  if (cluster) loaded.cluster = cluster;
  return loaded;
}

/** The store's key file is read now: a mistake in it is a configuration error at store.encryption.key_file. */
function checkStoreEncryption(config: FileConfig, base: string, located: (path: string[], problem: string) => ConfigError): void {
  const encryption = config.store?.encryption;
  if (!encryption) return;
  const at = ['store', 'encryption'];
  if (config.store?.type === 'memory') throw located(at, 'only means something with the sqlite or redis store (the memory store writes nothing)');
  const keyFile = path.resolve(base, encryption.key_file);
  const text = readAt(located, [...at, 'key_file'], keyFile).toString('utf8');
  try {
    parseAtRestKeys(text, keyFile);
  } catch (err) {
    if (err instanceof AtRestKeyFileError) throw located([...at, 'key_file'], err.message);
    throw err;
  }
}

/** The yaml library's error as a sentence: its message goes on with an excerpt of the file that a one-line report cannot show. */
function yamlProblem(error: YAMLError, text: string): string {
  const first = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  const position = error.linePos?.[0];
  const column = position ? ` (column ${position.col})` : '';
  const source = position ? text.split(/\r?\n/)[position.line - 1] ?? '' : '';
  // Where this line's key starts (the library points at the line's start).
  const keyColumn = position ? ` (column ${source.length - source.trimStart().length + 1})` : '';
  switch (error.code) {
    case 'BAD_INDENT':
      if (first.startsWith('All mapping items')) return `bad indentation: this key${keyColumn} does not line up with the keys above it; the keys of one map must start in the same column`;
      if (first.startsWith('All sequence items')) return `bad indentation: this "-" item${keyColumn} does not line up with the items above it; the items of one list must start in the same column`;
      if (/^Flow (sequence|mapping)/.test(first)) return 'a [ ] list or { } map opened above is not closed before this line (or this line is not indented enough)';
      return `bad indentation: ${first}${column}`;
    case 'TAB_AS_INDENT': return `a tab is used for indentation; YAML indents with spaces only${column}`;
    case 'DUPLICATE_KEY': {
      const key = /^\s*(?:-\s+)?([^:#]+?)\s*:/.exec(source)?.[1];
      return `${key ? `the key "${key}"` : 'this key'} appears twice in the same map`;
    }
    case 'BLOCK_AS_IMPLICIT_KEY':
    case 'MULTILINE_IMPLICIT_KEY':
      return `a value runs into another "key: value"${column}: quote a value that contains ": ", or check the indentation of the next line`;
    case 'MISSING_CHAR': {
      const quote = /^Missing closing (["'])quote/.exec(first)?.[1];
      return quote ? `a ${quote}quoted${quote} value is not closed: its closing ${quote} is missing` : `${first}${column}`;
    }
    case 'MULTIPLE_DOCS': return 'the file holds more than one YAML document (a second "---" line); a configuration is one document';
    default: return `${first}${column}`;
  }
}

/** One administrator role for the admin API and dynamic security. */
function checkDynamicSecurity(config: FileConfig, located: (path: string[], problem: string) => ConfigError): void {
  const apiAdminRole = config.admin?.admin_role;
  const dynsecAdminRole = config.authorization?.dynamic_security?.admin_role;
  if (apiAdminRole !== undefined && dynsecAdminRole !== undefined && apiAdminRole !== dynsecAdminRole) {
    throw located(['authorization', 'dynamic_security', 'admin_role'], `"${dynsecAdminRole}" is not admin.admin_role ("${apiAdminRole}"): one role makes a broker administrator, for the admin API and dynamic security alike; set it in one place`);
  }
}

/** Each listener has a port or a socket path; trusted proxies mean something only where proxies are read, and parse. */
function checkListeners(config: FileConfig, located: (path: string[], problem: string) => ConfigError): void {
  (config.listeners ?? []).forEach((l, i) => {
    const at = (key: string): string[] => ['listeners', String(i), key];
    if (l.path !== undefined && l.port !== undefined) throw located(at('path'), 'a listener has either a port (TCP) or a path (a Unix domain socket), not both');
    if (l.path !== undefined && l.host !== undefined) throw located(at('host'), 'a Unix domain socket listener (path) has no host');
    if (l.path === undefined && l.port === undefined) throw located(['listeners', String(i)], 'needs a port (TCP) or a path (a Unix domain socket)');
    if (l.trusted_proxies && l.path !== undefined) {
      throw located(at('trusted_proxies'), 'a Unix domain socket listener has no client addresses to check: whoever may open the socket file may send PROXY headers (set its permissions instead)');
    }
    if (l.trusted_proxies && !l.proxy_protocol && l.websocket === undefined) {
      throw located(at('trusted_proxies'), 'only means something with proxy_protocol: true or on a websocket listener');
    }
    l.trusted_proxies?.forEach((entry, j) => {
      if (!isAddressOrNetwork(entry)) throw located(['listeners', String(i), 'trusted_proxies', String(j)], `"${entry}" is not an IP address or a network in CIDR notation (e.g. 10.0.0.0/8)`);
    });
  });
}

function workerCount(workers: number | 'auto' | undefined): number {
  if (workers === 'auto') return Math.min(31, availableParallelism());
  return workers ?? 1;
}

const PASSWORD_FILE_KEYS = new Set(['type', 'path', 'watch']);
const HTTP_KEYS = new Set(['type', 'url', 'timeout_ms', 'cache_ttl_ms', 'fail_open']);
const CERTIFICATE_KEYS = new Set(['type', 'username_from', 'require_username_match', 'also_password_file', 'watch']);
const PSK_KEYS = new Set(['type', 'require_username_match']);
const JWT_KEY_SOURCES = ['secret_file', 'public_key_file', 'jwks_file', 'jwks_url'] as const;

/** Each provider has what its type needs, and nothing another type uses. */
function checkAuthentication(config: FileConfig, located: (path: string[], problem: string) => ConfigError): void {
  config.authentication?.forEach((a, i) => {
    const at = ['authentication', String(i)];
    if (a.type === 'password_file') {
      if (a.path === undefined) throw located([...at, 'type'], 'password_file needs "path"');
      for (const key of Object.keys(a)) if (!PASSWORD_FILE_KEYS.has(key)) throw located([...at, key], 'not a password_file setting');
      return;
    }
    if (a.type === 'http') {
      if (a.url === undefined) throw located([...at, 'type'], 'http needs "url"');
      for (const key of Object.keys(a)) if (!HTTP_KEYS.has(key)) throw located([...at, key], 'not an http setting');
      return;
    }
    if (a.type === 'certificate') {
      for (const key of Object.keys(a)) if (!CERTIFICATE_KEYS.has(key)) throw located([...at, key], 'not a certificate setting');
      return;
    }
    if (a.type === 'psk') {
      for (const key of Object.keys(a)) if (!PSK_KEYS.has(key)) throw located([...at, key], 'not a psk setting');
      if (!(config.listeners ?? []).some((l) => l.tls?.psk_file !== undefined)) throw located([...at, 'type'], 'no listener has tls.psk_file: nobody could prove a pre-shared key');
      return;
    }
    for (const key of ['path', 'watch', 'url', 'timeout_ms', 'cache_ttl_ms', 'fail_open', 'username_from', 'also_password_file']) if (key in a) throw located([...at, key], 'not a jwt setting');
    if (!a.algorithms) throw located([...at, 'type'], 'jwt needs "algorithms" (the only ones accepted)');
    const sources = JWT_KEY_SOURCES.filter((k) => a[k] !== undefined);
    if (sources.length !== 1) throw located([...at, sources[1] ?? 'type'], `jwt needs exactly one of ${JWT_KEY_SOURCES.join(', ')}`);
  });
}

/** Every role a user, group or client class names must be defined (unless it comes from the acl_file). */
function checkRoleReferences(config: FileConfig, located: (path: string[], problem: string) => ConfigError): void {
  const authz = config.authorization;
  if (!authz) return;
  const roles = new Set(Object.keys(authz.roles ?? {}));
  for (const [name, role] of Object.entries(authz.roles ?? {})) {
    if (!Array.isArray(role) && role.rate_limit) checkRateLimit(role.rate_limit, ['authorization', 'roles', name, 'rate_limit'], located);
  }
  const check = (binding: FileBinding | undefined, at: string[]): void => {
    binding?.roles?.forEach((role, i) => {
      if (!roles.has(role)) throw located([...at, 'roles', String(i)], `unknown role "${role}" (defined roles: ${[...roles].join(', ') || 'none'})`);
    });
  };
  for (const [name, binding] of Object.entries(authz.users ?? {})) check(binding, ['authorization', 'users', name]);
  for (const [name, binding] of Object.entries(authz.groups ?? {})) check(binding, ['authorization', 'groups', name]);
  check(authz.anonymous, ['authorization', 'anonymous']);
  check(authz.everyone, ['authorization', 'everyone']);
}

function errorPath(error: ErrorObject): string[] {
  const path = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (error.keyword === 'additionalProperties') path.push(String(error.params.additionalProperty));
  if (error.keyword === 'required') path.push(String(error.params.missingProperty));
  return path;
}

/**
 * The error to report: a oneOf/anyOf at the same place as the first error speaks for its branches, unless a
 * branch got inside the value (it had the right shape) and failed deeper down: that error names the key.
 */
function reported(errors: ErrorObject[]): ErrorObject {
  const first = errors[0]!;
  const choice = errors.find((e) => (e.keyword === 'oneOf' || e.keyword === 'anyOf') && e.instancePath === first.instancePath);
  if (!choice) return first;
  const deeper = errors.filter((e) => e.instancePath.startsWith(`${choice.instancePath}/`) || (e.instancePath === choice.instancePath && (e.keyword === 'additionalProperties' || e.keyword === 'required')));
  return deeper.length > 0 ? deeper.reduce((a, b) => (errorPath(b).length > errorPath(a).length ? b : a)) : choice;
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'integer (a whole number)', number: 'number', string: 'string', boolean: 'boolean (true or false)',
  array: 'array (a list)', object: 'object (a map of keys)', null: 'nothing',
};

/** The patterns of the schema, in words (test/config/errors.test.ts checks that each has some). */
export const PATTERN_WORDS: Record<string, string> = {
  '^rediss?://': 'must be a redis:// or rediss:// URL',
  '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$': 'must be "host:port" (an IPv6 address in brackets: "[::1]:26379")',
  '^https?://': 'must be an http:// or https:// URL',
  '^/': 'must be a URL path starting with "/"',
  '^https?://[^/]+$': 'must be an origin as a browser sends it: scheme, host and port if any, no path (e.g. "https://app.example.com")',
  '^[0-9a-fA-F]{64}$': 'must be a SHA-256 digest: 64 hexadecimal digits (e.g. the first field of: sha256sum token.txt)',
  '^[A-Za-z0-9._-]{1,64}$': 'must be a name of 1 to 64 letters, digits, ".", "_" or "-" (it is part of Redis key names)',
};

/** Lists named after what they hold. */
const ITEM_NOUNS: Record<string, [string, string]> = {
  listeners: ['listener', 'listeners'], algorithms: ['algorithm', 'algorithms'], actions: ['action', 'actions'],
  roles: ['role', 'roles'], groups: ['group', 'groups'], tokens: ['token', 'tokens'], scopes: ['scope', 'scopes'],
};

/** Every keyword the schema may use that `describe` puts in words; test/config/errors.test.ts checks the schema against it. */
export const DESCRIBED_KEYWORDS: ReadonlySet<string> = new Set([
  'type', 'required', 'additionalProperties', 'enum', 'const', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'multipleOf', 'minLength', 'maxLength', 'pattern', 'format', 'minItems', 'maxItems', 'uniqueItems', 'minProperties',
  'maxProperties', 'oneOf', 'anyOf', 'not',
]);

/** A value as the user wrote it, short. */
function shown(data: unknown): string {
  if (data === null || data === undefined) return 'nothing';
  if (Array.isArray(data)) return 'a list';
  if (typeof data === 'object') return 'a map';
  const text = typeof data === 'string' ? JSON.stringify(data) : String(data);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** A schema as a phrase, for the alternatives of a oneOf/anyOf: "an integer from 1 to 31", "\"auto\"". */
function describeSchema(schema: Record<string, unknown>): string {
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  const nouns: Record<string, string> = { integer: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false', array: 'a list', object: 'a map of keys' };
  const noun = nouns[String(schema.type)] ?? 'a value';
  const { minimum, maximum } = schema as { minimum?: number; maximum?: number };
  if (minimum !== undefined && maximum !== undefined) return `${noun} from ${minimum} to ${maximum}`;
  if (minimum !== undefined) return `${noun} of at least ${minimum}`;
  if (maximum !== undefined) return `${noun} of at most ${maximum}`;
  return noun;
}

/** The closest of `known` to `name`, if it is close enough to be a typo. */
function closest(name: string, known: string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row = next;
    }
    return row[b.length]!;
  };
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/** What is wrong, in words a person uses (never ajv's own "must NOT have fewer than 1 items"). */
function describe(error: ErrorObject, path: string[]): string {
  const p = error.params as Record<string, unknown>;
  const got = `, got ${shown(error.data)}`;
  const [noun, nouns] = ITEM_NOUNS[path.at(-1) ?? ''] ?? ['entry', 'entries'];
  switch (error.keyword) {
    case 'additionalProperties': {
      const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const guess = closest(String(p.additionalProperty), known);
      return `unknown key${guess ? ` (did you mean "${guess}"?)` : ''}`;
    }
    case 'required': return 'is required but missing';
    case 'type': return `expected ${String(p.type).split(',').map((t) => TYPE_WORDS[t] ?? t).join(' or ')}${got}`;
    case 'enum': return `expected one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}${got}`;
    case 'const': return `expected ${JSON.stringify(p.allowedValue)}${got}`;
    case 'minimum': return `must be at least ${String(p.limit)}${got}`;
    case 'maximum': return `must be at most ${String(p.limit)}${got}`;
    case 'exclusiveMinimum': return `must be more than ${String(p.limit)}${got}`;
    case 'exclusiveMaximum': return `must be less than ${String(p.limit)}${got}`;
    case 'multipleOf': return `must be a multiple of ${String(p.multipleOf)}${got}`;
    case 'minLength': return p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long${got}`;
    case 'maxLength': return `must be at most ${String(p.limit)} characters long`;
    case 'pattern': return `${PATTERN_WORDS[String(p.pattern)] ?? `must match the pattern ${String(p.pattern)}`}${got}`;
    case 'format': return `must be a valid ${String(p.format)}${got}`;
    case 'minItems': return p.limit === 1 ? `must list at least one ${noun}` : `must list at least ${String(p.limit)} ${nouns}`;
    case 'maxItems': return `must list at most ${String(p.limit)} ${p.limit === 1 ? noun : nouns}`;
    case 'uniqueItems': return `must not list the same ${noun} twice (items ${Number(p.j) + 1} and ${Number(p.i) + 1} are the same)`;
    case 'minProperties': return `must have at least ${String(p.limit)} key${p.limit === 1 ? '' : 's'}`;
    case 'maxProperties': return `must have at most ${String(p.limit)} key${p.limit === 1 ? '' : 's'}`;
    case 'oneOf':
    case 'anyOf': return `expected ${(error.schema as Array<Record<string, unknown>>).map(describeSchema).join(', or ')}${got}`;
    case 'not': return `this value is not allowed here${got}`;
    default: return `this value is not accepted here${got}`;
  }
}

/** Line of the deepest key of `path` present in the document (1-based). */
function lineOf(doc: Document, lines: LineCounter, path: string[]): number | undefined {
  let line: number | undefined;
  let node: unknown = doc.contents;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === segment);
      if (!pair) break;
      const keyRange = (pair.key as { range?: [number, number, number] }).range;
      if (keyRange) line = lines.linePos(keyRange[0]).line;
      node = pair.value;
    } else if (node && typeof node === 'object' && 'items' in node) {
      const item = (node as { items: unknown[] }).items[Number(segment)];
      const range = (item as { range?: [number, number, number] } | undefined)?.range;
      if (range) line = lines.linePos(range[0]).line;
      node = item;
    } else break;
  }
  if (line === undefined && doc.contents?.range) line = lines.linePos(doc.contents.range[0]).line;
  return line;
}

const LIMIT_KEYS: Record<keyof NonNullable<FileConfig['limits']>, keyof BrokerLimits> = {
  max_packet_size: 'maxPacketSize',
  max_connections: 'maxConnections',
  max_topic_length: 'maxTopicLength',
  max_topic_levels: 'maxTopicLevels',
  max_inflight_messages: 'maxInflightMessages',
  max_queued_messages: 'maxQueuedMessages',
  max_queued_bytes: 'maxQueuedBytes',
  max_inflight_bytes: 'maxInflightBytes',
  queue_overflow: 'queueOverflow',
  max_outbound_buffer: 'maxOutboundBuffer',
  connect_timeout: 'connectTimeout',
  max_retained_messages: 'maxRetainedMessages',
  max_keepalive: 'maxKeepalive',
  memory_high_water: 'memoryHighWater',
  memory_low_water: 'memoryLowWater',
  max_sessions: 'maxSessions',
  max_sessions_per_user: 'maxSessionsPerUser',
  max_sessions_per_address: 'maxSessionsPerAddress',
  max_session_expiry_anonymous: 'maxSessionExpiryAnonymous',
};

const CAPABILITY_KEYS: Record<keyof NonNullable<FileConfig['capabilities']>, keyof BrokerCapabilities> = {
  maximum_qos: 'maximumQoS',
  retain_available: 'retainAvailable',
  wildcard_subscription_available: 'wildcardSubscriptionAvailable',
  subscription_identifiers_available: 'subscriptionIdentifiersAvailable',
  shared_subscription_available: 'sharedSubscriptionAvailable',
  topic_alias_maximum: 'topicAliasMaximum',
  outgoing_topic_aliases: 'outgoingTopicAliases',
  receive_maximum: 'receiveMaximum',
  server_keep_alive: 'serverKeepAlive',
  maximum_session_expiry_interval: 'maximumSessionExpiryInterval',
};

function toRule(r: FileRule): AclRule {
  const rule: AclRule = { filter: r.topic, actions: r.actions ?? ['publish', 'subscribe'], effect: r.effect ?? 'allow' };
  if (r.max_qos !== undefined) rule.maxQos = r.max_qos;
  if (r.retain !== undefined) rule.retain = r.retain;
  return rule;
}

function toSecurity(config: FileConfig, base: string): SecurityOptions {
  const security: SecurityOptions = {};
  if (config.limits?.connect_timeout !== undefined) security.connectTimeoutMs = config.limits.connect_timeout * 1000;
  if (config.authentication) {
    security.authentication = config.authentication.map((a): AuthenticationSource => {
      if (a.type === 'password_file') return { type: 'passwordFile', path: path.resolve(base, a.path!), watch: a.watch ?? true };
      if (a.type === 'certificate') {
        const certificate: AuthenticationSource = { type: 'certificate' };
        if (a.username_from) certificate.usernameFrom = a.username_from === 'subject' ? 'subject' : 'commonName';
        if (a.require_username_match !== undefined) certificate.requireUsernameMatch = a.require_username_match;
        if (a.also_password_file) certificate.alsoPasswordFile = { path: path.resolve(base, a.also_password_file), watch: a.watch ?? true };
        return certificate;
      }
      if (a.type === 'psk') return a.require_username_match === undefined ? { type: 'psk' } : { type: 'psk', requireUsernameMatch: a.require_username_match };
      if (a.type === 'http') {
        const http: AuthenticationSource = { type: 'http', url: a.url! };
        if (a.timeout_ms !== undefined) http.timeoutMs = a.timeout_ms;
        if (a.cache_ttl_ms !== undefined) http.cacheTtlMs = a.cache_ttl_ms;
        if (a.fail_open !== undefined) http.failOpen = a.fail_open;
        return http;
      }
      const jwt: AuthenticationSource = { type: 'jwt', algorithms: a.algorithms! };
      if (a.secret_file) jwt.secretFile = path.resolve(base, a.secret_file);
      if (a.public_key_file) jwt.publicKeyFile = path.resolve(base, a.public_key_file);
      if (a.jwks_file) jwt.jwksFile = path.resolve(base, a.jwks_file);
      if (a.jwks_url) jwt.jwksUrl = a.jwks_url;
      if (a.issuer) jwt.issuer = a.issuer;
      if (a.audience) jwt.audience = a.audience;
      if (a.username_claim) jwt.usernameClaim = a.username_claim;
      if (a.require_username_match !== undefined) jwt.requireUsernameMatch = a.require_username_match;
      if (a.permissions_claim) jwt.permissionsClaim = a.permissions_claim;
      if (a.groups_claim) jwt.groupsClaim = a.groups_claim;
      if (a.disconnect_on_expiry !== undefined) jwt.disconnectOnExpiry = a.disconnect_on_expiry;
      if (a.clock_tolerance !== undefined) jwt.clockToleranceSeconds = a.clock_tolerance;
      return jwt;
    });
  }
  const authz = config.authorization;
  if (authz) {
    const roleEntries = Object.entries(authz.roles ?? {});
    const rules: AclConfig = {
      roles: Object.fromEntries(roleEntries.map(([name, role]) => [name, (Array.isArray(role) ? role : role.rules).map(toRule)])),
      users: authz.users ?? {},
      groups: authz.groups ?? {},
    };
    const roleLimits = roleEntries.flatMap(([name, role]) => (!Array.isArray(role) && role.rate_limit ? [[name, toRateLimit(role.rate_limit)] as const] : []));
    if (roleLimits.length > 0) rules.roleLimits = Object.fromEntries(roleLimits);
    if (authz.anonymous) rules.anonymous = authz.anonymous;
    if (authz.everyone) rules.everyone = authz.everyone;
    const hasRules = authz.roles || authz.users || authz.groups || authz.anonymous || authz.everyone;
    security.authorization = hasRules || !authz.http ? { rules } : {};
    if (authz.http) security.authorization.http = { url: authz.http.url, ...(authz.http.timeout_ms !== undefined && { timeoutMs: authz.http.timeout_ms }) };
    if (authz.acl_file) security.authorization.aclFile = path.resolve(base, authz.acl_file);
    if (authz.dynamic_security?.enabled) {
      security.runtime = { controlApi: true, adminRole: authz.dynamic_security.admin_role ?? config.admin?.admin_role ?? DEFAULT_ADMIN_ROLE };
    }
  }
  // The admin API manages users, groups and roles through the runtime store: on with an admin listener wherever
  // something authenticates (without authentication it would turn authentication on for every listener). In
  // multi-core mode every worker keeps the whole set, written through the primary (src/multicore/shared-runtime.ts).
  if (!security.runtime && config.admin && (config.authentication?.length ?? 0) > 0) security.runtime = { controlApi: false };
  const guard = toGuard(config.guard);
  if (guard !== undefined) security.guard = guard;
  if (config.guard?.rate_limit && config.guard.enabled !== false) security.rateLimit = toRateLimit(config.guard.rate_limit);
  return security;
}

function toWebSocket(w: FileWebSocket): WebSocketOptions {
  const options: WebSocketOptions = {};
  if (w.path !== undefined) options.path = w.path;
  if (w.allowed_origins !== undefined) options.allowedOrigins = w.allowed_origins;
  if (w.per_message_deflate !== undefined) options.perMessageDeflate = w.per_message_deflate;
  if (w.forwarded_header !== undefined) options.forwardedHeader = w.forwarded_header;
  return options;
}

function toRateLimit(r: FileRateLimit): RateLimit {
  const limit: RateLimit = {};
  if (r.messages_per_second !== undefined) limit.messagesPerSecond = r.messages_per_second;
  if (r.bytes_per_second !== undefined) limit.bytesPerSecond = r.bytes_per_second;
  if (r.burst !== undefined) limit.burstSeconds = r.burst;
  if (r.action !== undefined) limit.action = r.action;
  return limit;
}

const BAN_KINDS = { address: 'address', network: 'network', client_id: 'clientId', username: 'username' } as const;

/** Allow-list entries and static bans name addresses and networks that parse, each ban exactly one thing. */
function checkGuard(config: FileConfig, located: (path: string[], problem: string) => ConfigError): void {
  const guard = config.guard;
  if (!guard) return;
  guard.allow?.forEach((entry, i) => {
    if (!isAddressOrNetwork(entry)) throw located(['guard', 'allow', String(i)], `"${entry}" is not an IP address or a network in CIDR notation (e.g. 10.0.0.0/8)`);
  });
  guard.bans?.forEach((ban, i) => {
    const at = ['guard', 'bans', String(i)];
    const kinds = Object.keys(BAN_KINDS).filter((k) => ban[k as keyof typeof BAN_KINDS] !== undefined);
    if (kinds.length !== 1) throw located(kinds.length > 1 ? [...at, kinds[1]!] : at, 'a ban names exactly one of address, network, client_id or username');
    const kind = kinds[0] as keyof typeof BAN_KINDS;
    const value = ban[kind]!;
    if (kind === 'address' && (value.includes('/') || !isAddressOrNetwork(value))) throw located([...at, kind], `"${value}" is not an IP address (a network is "network: ${value}")`);
    if (kind === 'network' && (!value.includes('/') || !isAddressOrNetwork(value))) throw located([...at, kind], `"${value}" is not a network in CIDR notation (e.g. 198.51.100.0/24)`);
  });
  if (guard.rate_limit) checkRateLimit(guard.rate_limit, ['guard', 'rate_limit'], located);
  if (guard.ban?.first !== undefined && guard.ban.max !== undefined && guard.ban.max < guard.ban.first) {
    throw located(['guard', 'ban', 'max'], `must be at least ban.first (${guard.ban.first} s)`);
  }
}

/** A rate limit limits something: `{ action: disconnect }` alone would read as a limit and be none. */
function checkRateLimit(limit: FileRateLimit, at: string[], located: (path: string[], problem: string) => ConfigError): void {
  if (limit.messages_per_second === undefined && limit.bytes_per_second === undefined) {
    throw located(at, 'a rate limit needs messages_per_second, bytes_per_second or both');
  }
}

function toGuard(guard: FileConfig['guard']): GuardOptions | false | undefined {
  if (!guard) return undefined;
  if (guard.enabled === false) return false;
  const options: GuardOptions = {};
  if (guard.allow) options.allow = guard.allow;
  if (guard.failures?.max_per_address !== undefined) options.maxFailuresPerAddress = guard.failures.max_per_address;
  if (guard.failures?.window !== undefined) options.failureWindowSeconds = guard.failures.window;
  if (guard.failures?.max_per_username !== undefined) options.maxFailuresPerUsername = guard.failures.max_per_username;
  if (guard.failures?.max_per_client_id !== undefined) options.maxFailuresPerClientId = guard.failures.max_per_client_id;
  if (guard.failures?.max_delay !== undefined) options.maxDelaySeconds = guard.failures.max_delay;
  if (guard.ban?.first !== undefined) options.banSeconds = guard.ban.first;
  if (guard.ban?.max !== undefined) options.maxBanSeconds = guard.ban.max;
  if (guard.ban?.forget_after !== undefined) options.forgetAfterSeconds = guard.ban.forget_after;
  if (guard.flapping?.connects !== undefined) options.flappingConnects = guard.flapping.connects;
  if (guard.flapping?.window !== undefined) options.flappingWindowSeconds = guard.flapping.window;
  if (guard.flapping?.ban !== undefined) options.flappingBanSeconds = guard.flapping.ban;
  const c = guard.connections;
  if (c?.max_per_address !== undefined) options.maxConnectionsPerAddress = c.max_per_address;
  if (c?.rate_per_address !== undefined) options.connectionRatePerAddress = c.rate_per_address;
  if (c?.burst_per_address !== undefined) options.connectionBurstPerAddress = c.burst_per_address;
  if (c?.rate !== undefined) options.connectionRate = c.rate;
  if (c?.burst !== undefined) options.connectionBurst = c.burst;
  if (guard.bans) {
    options.bans = guard.bans.map((ban) => {
      const kind = (Object.keys(BAN_KINDS) as Array<keyof typeof BAN_KINDS>).find((k) => ban[k] !== undefined)!;
      return { kind: BAN_KINDS[kind], value: ban[kind]!, ...(ban.reason !== undefined && { reason: ban.reason }) };
    });
  }
  return options;
}

function toOptions(config: FileConfig, base: string, tls: Map<number, TlsListenerOptions>): LoadedConfig {
  const limits: Partial<BrokerLimits> = {};
  for (const [key, value] of Object.entries(config.limits ?? {})) {
    (limits as Record<string, unknown>)[LIMIT_KEYS[key as keyof typeof LIMIT_KEYS]] = value;
  }
  const broker: BrokerOptions = { limits };
  if (config.capabilities) {
    const capabilities: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(config.capabilities)) {
      capabilities[CAPABILITY_KEYS[key as keyof typeof CAPABILITY_KEYS]] = value;
    }
    broker.capabilities = capabilities as Partial<BrokerCapabilities>;
  }
  if (config.listeners) {
    broker.listeners = config.listeners.map((l, index) => ({
      name: l.name, allowAnonymous: l.allow_anonymous,
      // A socket path, like every path in the file, is relative to the file's directory.
      ...(l.path !== undefined ? { path: path.resolve(base, l.path) } : { host: l.host ?? '127.0.0.1', port: l.port }),
      ...(tls.has(index) && { tls: tls.get(index)! }),
      ...(l.websocket && { websocket: toWebSocket(l.websocket) }),
      ...(l.proxy_protocol && { proxyProtocol: true }), ...(l.trusted_proxies && { trustedProxies: l.trusted_proxies }),
      ...(l.max_connections !== undefined && { maxConnections: l.max_connections }),
    }));
  }
  if (config.sys_interval !== undefined) broker.sysInterval = config.sys_interval;
  const store: StoreConfig = config.store?.type === 'memory'
    ? { type: 'memory' }
    : config.store?.type === 'redis'
      ? {
        type: 'redis', url: config.store.url ?? 'redis://127.0.0.1:6379', keyPrefix: redisKeyPrefix(config.store), ...storeEncryption(config, base),
        ...(config.store.sentinel && { sentinel: sentinelOf(config.store.sentinel) }),
        ...(config.store.cluster_nodes && { clusterNodes: config.store.cluster_nodes.map(hostAndPort) }),
        ...(config.store.wait_replicas !== undefined && { waitReplicas: config.store.wait_replicas }),
        ...(config.store.wait_timeout_ms !== undefined && { waitTimeoutMs: config.store.wait_timeout_ms }),
      }
      : {
      type: 'sqlite',
      // Like every path in the file, relative to the file's directory; without the key, ./data of the working directory.
      directory: config.store?.directory !== undefined ? path.resolve(base, config.store.directory) : DEFAULT_STORE_DIRECTORY,
      durability: config.store?.durability ?? 'strict',
      flushIntervalMs: config.store?.flush_interval_ms,
      ...storeEncryption(config, base),
    };
  if (config.authorization?.unauthorized_publish) broker.unauthorizedPublish = config.authorization.unauthorized_publish;
  const loaded: LoadedConfig = {
    workers: workerCount(config.workers), broker, store, log: { level: config.log?.level ?? 'info', format: config.log?.format ?? 'auto' }, security: toSecurity(config, base),
  };
  if (config.audit?.file) loaded.auditFile = path.resolve(base, config.audit.file);
  return loaded;
}

function storeEncryption(config: FileConfig, base: string): { encryption?: StoreEncryption } {
  const keyFile = config.store?.encryption?.key_file;
  return keyFile === undefined ? {} : { encryption: { keyFile: path.resolve(base, keyFile) } };
}

/** The embedded default setup: one listener on 127.0.0.1:1883, anonymous allowed there. */
export function defaultConfig(): LoadedConfig {
  return { workers: 1, broker: { listeners: [{ host: '127.0.0.1', port: 1883 }] }, store: DEFAULT_STORE, log: { level: 'info', format: 'auto' }, security: {} };
}

/** `store.sentinel`: the master's name and the Sentinels ("host:port", checked by the schema). */
export function sentinelOf(section: { name: string; nodes: string[] }): NonNullable<RedisTarget['sentinel']> {
  return { name: section.name, nodes: section.nodes.map(hostAndPort) };
}

function hostAndPort(node: string): { host: string; port: number } {
  const cut = node.lastIndexOf(':');
  return { host: node.slice(0, cut).replace(/^\[|\]$/g, ''), port: Number(node.slice(cut + 1)) };
}

/**
 * The Redis store's key prefix. On a Redis Cluster every key must hash to one slot (a batch is one MULTI/EXEC): the
 * prefix is made a hash tag, `{moat:}` by default, unless it has one.
 */
export function redisKeyPrefix(store: NonNullable<FileConfig['store']>): string | undefined {
  if (!store.cluster_nodes) return store.key_prefix;
  const prefix = store.key_prefix ?? 'moat:';
  // Redis hashes what is between the first '{' and the next '}', if that is not empty.
  const open = prefix.indexOf('{');
  const close = open < 0 ? -1 : prefix.indexOf('}', open + 1);
  return close > open + 1 ? prefix : `{${prefix}}`;
}

/** The Redis the store's section names: one server, through Sentinel, or a Redis Cluster. */
export function redisTargetOf(store: NonNullable<FileConfig['store']>): RedisTarget {
  return {
    url: store.url ?? 'redis://127.0.0.1:6379',
    ...(store.sentinel && { sentinel: sentinelOf(store.sentinel) }),
    ...(store.cluster_nodes && { clusterNodes: store.cluster_nodes.map(hostAndPort) }),
  };
}
