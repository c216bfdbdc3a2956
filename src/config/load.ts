import { readFileSync } from 'node:fs';
import path from 'node:path';
import { availableParallelism } from 'node:os';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, LineCounter, parseDocument, type Document } from 'yaml';
import type { BrokerCapabilities, BrokerLimits, BrokerOptions, TlsListenerOptions } from '../broker/options.js';
import type { AclConfig, AclRule } from '../security/acl.js';
import type { AuthenticationSource, SecurityOptions } from '../security/index.js';
import { configSchema, type FileBinding, type FileConfig, type FileRule } from './schema.js';

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

const ajv = new Ajv({ allErrors: false, strict: true });
const validate = ajv.compile<FileConfig>(configSchema);

/** Where state is kept: the embedded SQLite store in a data directory (default ./data), or memory only. */
export type StoreConfig =
  | { type: 'sqlite'; directory: string; durability: 'strict' | 'periodic'; flushIntervalMs: number | undefined }
  | { type: 'redis'; url: string; keyPrefix: string | undefined }
  | { type: 'memory' };

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
}

export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, undefined, `cannot read: ${(err as Error).message}`);
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): LoadedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    throw new ConfigError(file, syntax.linePos?.[0].line, undefined, `invalid YAML: ${syntax.message.split('\n')[0]}`);
  }
  const data: unknown = doc.toJS() ?? {};
  if (!validate(data)) {
    const error = validate.errors![0]!;
    const path = errorPath(error);
    throw new ConfigError(file, lineOf(doc, lines, path), path.join('.') || undefined, describe(error));
  }
  const located = (path: string[], problem: string): ConfigError => new ConfigError(file, lineOf(doc, lines, path), path.join('.'), problem);
  checkRoleReferences(data, located);
  checkAuthentication(data, located);
  checkWorkers(data, located);
  const base = path.dirname(path.resolve(file));
  return toOptions(data, base, readTlsFiles(data, base, located));
}

/** Multi-core mode hands plain TCP sockets between processes; a TLS session cannot follow. */
function checkWorkers(config: FileConfig, located: (path: string[], problem: string) => ConfigError): void {
  if (workerCount(config.workers) === 1) return;
  const index = (config.listeners ?? []).findIndex((l) => l.tls !== undefined);
  if (index !== -1) {
    throw located(['listeners', String(index), 'tls'], 'TLS listeners are served with workers: 1 only (multi-core mode hands plain TCP sockets to its workers)');
  }
}

function workerCount(workers: number | 'auto' | undefined): number {
  if (workers === 'auto') return Math.min(31, availableParallelism());
  return workers ?? 1;
}

const PASSWORD_FILE_KEYS = new Set(['type', 'path', 'watch']);
const HTTP_KEYS = new Set(['type', 'url', 'timeout_ms', 'cache_ttl_ms', 'fail_open']);
const CERTIFICATE_KEYS = new Set(['type', 'username_from', 'require_username_match', 'also_password_file', 'watch']);
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

function describe(error: ErrorObject): string {
  switch (error.keyword) {
    case 'additionalProperties': return 'unknown key';
    case 'required': return 'is required';
    case 'enum': return `expected one of ${(error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'type': return `expected ${String(error.params.type)}`;
    default: return `expected a value that ${error.message ?? 'is valid'}`;
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
    const rules: AclConfig = {
      roles: Object.fromEntries(Object.entries(authz.roles ?? {}).map(([name, list]) => [name, list.map(toRule)])),
      users: authz.users ?? {},
      groups: authz.groups ?? {},
    };
    if (authz.anonymous) rules.anonymous = authz.anonymous;
    if (authz.everyone) rules.everyone = authz.everyone;
    const hasRules = authz.roles || authz.users || authz.groups || authz.anonymous || authz.everyone;
    security.authorization = hasRules || !authz.http ? { rules } : {};
    if (authz.http) security.authorization.http = { url: authz.http.url, ...(authz.http.timeout_ms !== undefined && { timeoutMs: authz.http.timeout_ms }) };
    if (authz.acl_file) security.authorization.aclFile = path.resolve(base, authz.acl_file);
  }
  return security;
}

/** The PEM files of each TLS listener, read now so that a missing or unreadable one is a configuration error on its line. */
function readTlsFiles(config: FileConfig, base: string, located: (path: string[], problem: string) => ConfigError): Map<number, TlsListenerOptions> {
  const byListener = new Map<number, TlsListenerOptions>();
  config.listeners?.forEach((listener, index) => {
    const t = listener.tls;
    if (!t) return;
    const read = (key: 'cert_file' | 'key_file' | 'ca_file', name: string): Buffer => {
      const file = path.resolve(base, name);
      try {
        return readFileSync(file);
      } catch (err) {
        throw located(['listeners', String(index), 'tls', key], `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    };
    const options: TlsListenerOptions = { cert: read('cert_file', t.cert_file), key: read('key_file', t.key_file) };
    if (t.ca_file !== undefined) options.ca = read('ca_file', t.ca_file);
    if (t.request_client_certificate !== undefined) options.requestClientCertificate = t.request_client_certificate;
    if (t.require_client_certificate !== undefined) options.requireClientCertificate = t.require_client_certificate;
    byListener.set(index, options);
  });
  return byListener;
}

function toOptions(config: FileConfig, base = process.cwd(), tls = new Map<number, TlsListenerOptions>()): LoadedConfig {
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
      name: l.name, host: l.host ?? '127.0.0.1', port: l.port, allowAnonymous: l.allow_anonymous,
      ...(tls.has(index) && { tls: tls.get(index)! }),
    }));
  }
  if (config.sys_interval !== undefined) broker.sysInterval = config.sys_interval;
  const store: StoreConfig = config.store?.type === 'memory'
    ? { type: 'memory' }
    : config.store?.type === 'redis'
      ? { type: 'redis', url: config.store.url ?? 'redis://127.0.0.1:6379', keyPrefix: config.store.key_prefix }
      : {
      type: 'sqlite',
      directory: config.store?.directory ?? DEFAULT_STORE_DIRECTORY,
      durability: config.store?.durability ?? 'strict',
      flushIntervalMs: config.store?.flush_interval_ms,
    };
  if (config.authorization?.unauthorized_publish) broker.unauthorizedPublish = config.authorization.unauthorized_publish;
  const loaded: LoadedConfig = {
    workers: workerCount(config.workers), broker, store, log: { level: config.log?.level ?? 'info', format: config.log?.format ?? 'auto' }, security: toSecurity(config, base),
  };
  if (config.audit?.file) loaded.auditFile = path.resolve(base, config.audit.file);
  return loaded;
}

/** The embedded default setup: one listener on 127.0.0.1:1883, anonymous allowed there. */
export function defaultConfig(): LoadedConfig {
  return { workers: 1, broker: { listeners: [{ host: '127.0.0.1', port: 1883 }] }, store: DEFAULT_STORE, log: { level: 'info', format: 'auto' }, security: {} };
}
