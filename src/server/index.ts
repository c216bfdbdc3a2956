import { watch } from 'node:fs';
import path from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import { TicketKeyRotation } from '../transport/ticket-keys.js';
import { createBroker, type Broker, type ListenerAddress } from '../broker/broker.js';
import type { BrokerHooks } from '../broker/hooks.js';
import type { BrokerOptions } from '../broker/options.js';
import { defaultConfig, loadConfigFile, type LoadedConfig } from '../config/load.js';
import { createFileLogger, createLogger } from '../log/logger.js';
import { createSecurity, loggerAudit, type AuditEvent, type AuditLog, type Ban, type Security } from '../security/index.js';
import { PskKeys } from '../transport/tls-psk.js';
import { createStore, nodeStorePrefix, reloadStoreKeys, storeForNode, storeForWorker } from './store.js';
import type { ClusterConfig } from '../config/cluster.js';
import { ClusterKeys } from '../cluster/keys.js';
import { ClusterRouting } from '../cluster/routing.js';
import { ClusterSessions } from '../cluster/sessions.js';
import { ClusterBans } from '../cluster/bans.js';
import { ClusterRuntime } from '../cluster/runtime.js';
import { RedisStore } from '../store/redis.js';
import type { BrokerStore } from '../store/store.js';
import { createAdmin, SecurityEvents, teeAudit, type AdminListener } from '../admin/index.js';
import type { PayloadConfig } from '../config/payload.js';
import { PayloadKeyFile } from '../payload/key-file.js';
import { payloadProtectionHooks } from '../payload/protection.js';
import { DEFAULT_REPLAY_WINDOW, ReplayWindow } from '../payload/replay.js';
import { OutboundCounters } from '../payload/outbound.js';

export { describeStore } from './store.js';

/** What `moat` runs: a broker built from a YAML configuration file, reloadable while it runs. */
export interface ServerOptions {
  /** The YAML configuration file; without it, the embedded default setup. */
  configFile?: string;
  /** The configuration already read from `configFile` and adjusted (the file is read again, and adjusted, on reload). */
  config?: LoadedConfig;
  /** Applied to every configuration read, the first and each reload (the command line's --host and --port). */
  adjust?: (config: LoadedConfig) => void;
  /** Default: the logger the configuration's `log:` section describes. */
  logger?: PinoLogger;
  /**
   * Multi-core mode: this process is one worker; its store is its own, and the peers' hooks and options are added.
   * `securityFeed`: where its security audit events go for the admin listener's feed (the primary runs it).
   */
  worker?: { index: number; hooks: BrokerHooks; options: Partial<BrokerOptions>; securityFeed?: AuditLog };
}

/** What a reload did. */
export interface ReloadResult {
  ok: boolean;
  /** Sections that changed and are in force now. */
  applied: string[];
  /** Sections that changed but take effect only when the broker is restarted. */
  restartNeeded: string[];
  /** Why nothing was applied (the running configuration stays). */
  error?: string;
}

export interface MoatServer {
  readonly broker: Broker;
  readonly security: Security;
  readonly logger: PinoLogger;
  /** The configuration in force. */
  readonly config: LoadedConfig;
  /** The admin listener (health, metrics, API), when the configuration has an `admin` section. */
  readonly admin: AdminListener | undefined;
  /** Binds the listeners, then recovers the stored state. */
  listen(): Promise<ListenerAddress[]>;
  /**
   * Reads the configuration file again and applies what can change while the broker runs: authentication,
   * users, groups, roles and ACL files (connected clients follow at once), the audit file, limits (for new
   * connections and messages), TLS certificates (for new handshakes) and the log level. Listeners, store, capabilities, workers, sys_interval and
   * the log format need a restart; they are named in the result. A file with an error changes nothing.
   */
  reload(): ReloadResult;
  close(): Promise<void>;
}

/** An audit sink that can be pointed elsewhere (a reload may move the audit file). */
class SwitchableAudit implements AuditLog {
  constructor(public target: AuditLog) {}
  record(event: AuditEvent): void {
    this.target.record(event);
  }
}

/** Sections a reload cannot apply, with how to read each from a configuration. */
const RESTART_SECTIONS: Record<string, (c: LoadedConfig) => unknown> = {
  // Certificates, keys, CAs, CRLs and PSK keys are reloaded in place (applyTls); the rest of a listener needs a restart.
  listeners: (c) => c.broker.listeners?.map(({ tls, ...listener }) => ({
    ...listener,
    ...(tls && { tls: { request: tls.requestClientCertificate, require: tls.requireClientCertificate, psk: tls.psk !== undefined, pskHint: tls.pskIdentityHint } }),
  })),
  store: (c) => c.store,
  capabilities: (c) => c.broker.capabilities,
  sys_interval: (c) => c.broker.sysInterval,
  workers: (c) => c.workers,
  'log.format': (c) => c.log.format,
  // The key file's contents are reloaded in place; the rules and the file's place need a restart.
  payload_encryption: (c) => c.payload,
  cluster: (c) => c.cluster,
  'authorization.unauthorized_publish': (c) => c.broker.unauthorizedPublish,
  guard: (c) => c.security.guard,
  admin: (c) => c.admin,
};

const BAN_RECORDS = 'ban';

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** How long TLS files must stay unchanged before they are read: a certificate and its key are replaced one after the other. */
const TLS_SETTLE_MS = 300;

/**
 * Watches files through their directories (a file replaced by rename, as certbot and `mv` do, is seen too) and
 * calls `changed` once they have settled. Kubernetes replaces a mounted secret by swapping a `..data` link, so a
 * change to a `..` entry counts as well. Returns the function that stops watching.
 */
function watchFiles(files: readonly string[], changed: () => void, failed: (directory: string, err: Error) => void): () => void {
  const byDirectory = new Map<string, Set<string>>();
  for (const file of files) {
    const directory = path.dirname(file);
    const names = byDirectory.get(directory) ?? new Set<string>();
    names.add(path.basename(file));
    byDirectory.set(directory, names);
  }
  let timer: NodeJS.Timeout | undefined;
  const watchers = [...byDirectory].flatMap(([directory, names]) => {
    try {
      const watcher = watch(directory, (_event, name) => {
        if (name !== null && !names.has(name) && !name.startsWith('..')) return;
        clearTimeout(timer);
        timer = setTimeout(changed, TLS_SETTLE_MS);
        timer.unref();
      });
      watcher.on('error', (err) => failed(directory, err));
      watcher.unref();
      return [watcher];
    } catch (err) {
      failed(directory, err as Error);
      return [];
    }
  });
  return () => {
    clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}

export function createServer(options: ServerOptions = {}): MoatServer {
  const read = (): LoadedConfig => {
    const config = options.configFile ? loadConfigFile(options.configFile) : defaultConfig();
    options.adjust?.(config);
    return config;
  };
  let config = options.config ?? read();
  const startedWith = config;
  const logger = options.logger ?? createLogger(config.log.level, config.log.format);
  /** The audit sink a configuration asks for, and how to close it (a file of its own) once replaced. */
  const auditFor = (c: LoadedConfig): { audit: AuditLog; close(): void } => {
    if (!c.auditFile) return { audit: loggerAudit(logger), close: () => {} };
    const file = createFileLogger(c.auditFile);
    return { audit: loggerAudit(file.logger), close: file.close };
  };
  let auditSink = auditFor(config);
  const auditTrail = new SwitchableAudit(auditSink.audit);
  // The admin listener's security feed (the dashboard) sees every audit event; the trail keeps them all as before.
  // A multi-core worker sends them to the primary, which runs the admin listener.
  const events = config.admin && !options.worker ? new SecurityEvents() : undefined;
  const feed = config.admin ? events ?? options.worker?.securityFeed : undefined;
  const audit: AuditLog = feed ? teeAudit(auditTrail, feed) : auditTrail;
  const security = createSecurity({ ...config.security, audit }, logger);
  const worker = options.worker;
  // Cluster and multi-core mode together: each worker is a node of its own ("node-1.0", "node-1.1", ...), its store
  // under that node's prefix; the workers route to each other, and to the other nodes, through Redis.
  const clusterConfig = config.cluster && worker ? { ...config.cluster, nodeId: `${config.cluster.nodeId}.${worker.index}` } : config.cluster;
  const store = createStore(clusterConfig ? storeForNode(config.store, clusterConfig) : storeForWorker(config.store, worker?.index), {
    logger, worker: worker !== undefined,
    onLockLost: (holder) => {
      // Two brokers writing one store would corrupt it: this one stops.
      logger.fatal({ holder }, `the store lock expired and is held by ${holder} now; stopping`);
      process.exitCode = 1;
      void broker.close();
    },
  });
  const payload = config.payload ? payloadProtection(config.payload, audit, security, logger) : undefined;
  const cluster = clusterConfig ? clusterRouting(clusterConfig, store, logger) : undefined;
  const clusterSessions = cluster && new ClusterSessions({
    redis: clusterConfig!.redis, nodeId: clusterConfig!.nodeId, keys: new ClusterKeys(clusterConfig!.keyPrefix), logger,
    isFenced: () => cluster.isFenced, whenDurable: (done) => store.whenDurable(done),
    takeFromDeadNode: (node, clientId) => (store as RedisStore).takeSession(nodeStorePrefix(config.store, node), clientId),
    readFromDeadNode: (node, clientId) => (store as RedisStore).readSessionOf(nodeStorePrefix(config.store, node), clientId),
    deleteFromDeadNode: (node, clientIds) => (store as RedisStore).deleteSessionsOf(nodeStorePrefix(config.store, node), clientIds),
    sessionIdsOf: (node) => (store as RedisStore).sessionIdsOf(nodeStorePrefix(config.store, node)),
    moving: {
      expect: (clientId) => cluster.expectSession(clientId), forward: (clientId, node, filters) => cluster.forwardSession(clientId, node, filters),
      stopForwarding: (clientId) => cluster.stopForwarding(clientId),
    },
    adoption: {
      begin: (node, adopted) => cluster.beginAdoption(node, adopted), end: () => cluster.endAdoption(), announce: (node) => cluster.announceAdoption(node),
      drain: (node, adopted, remove) => cluster.drainInboxOf(node, adopted, remove),
    },
    deadAfterMs: clusterConfig!.deadAfterMs,
    encode: (message) => (store as RedisStore).encodeMessage(message), decode: (text) => (store as RedisStore).decodeMessage(text),
  });
  cluster?.onJoined((joined) => clusterSessions!.start(joined));
  // The guard's bans are the cluster's.
  const clusterBans = cluster && security.guard && new ClusterBans({
    redis: clusterConfig!.redis, nodeId: clusterConfig!.nodeId, keys: new ClusterKeys(clusterConfig!.keyPrefix), guard: security.guard, logger,
  });
  if (clusterBans) cluster!.onJoined(() => clusterBans.start());
  // And so are the users, groups and roles changed at runtime.
  const clusterRuntime = cluster && security.runtime && new ClusterRuntime({
    redis: clusterConfig!.redis, nodeId: clusterConfig!.nodeId, keys: new ClusterKeys(clusterConfig!.keyPrefix), runtime: security.runtime, logger,
  });
  if (clusterRuntime) cluster!.onJoined(() => clusterRuntime.start());
  // The dead node's own sessions first: those it had adopted from an earlier dead node are then here when that
  // adoption is finished.
  cluster?.onNodeRemoved(async (node, diedAt, inherited) => {
    const adoptions = [clusterSessions!.adoptNode(node, diedAt), ...inherited.map((earlier) => clusterSessions!.adoptNode(earlier, Date.now()))];
    await Promise.all(adoptions);
  });
  cluster?.onFenced(() => clusterSessions!.fence());
  cluster?.onRejoin((removed) => clusterSessions!.rejoin(removed));
  const broker = createBroker({
    ...config.broker, store, logger, authMethods: { ...security.authMethods, ...config.broker.authMethods },
    // The peers' hook goes last: it runs only for subscriptions the security hooks allowed.
    // The workers' own routing gives way to the cluster's (its hooks too) when both are on.
    hooks: [...security.hooks, ...(payload ? [payload.hooks] : []), ...(worker && !cluster ? [worker.hooks] : []), ...(cluster ? [cluster.hooks] : [])],
    ...worker?.options,
    ...(cluster && { peers: cluster, sessionOwnership: clusterSessions }),
  });
  cluster?.attach(broker);
  // The highest counter of each payload key lives in the store, as records of kind "payload-counter".
  payload?.replay.attach({
    load: () => [...(broker.records.get(PAYLOAD_COUNTERS)?.entries() ?? [])].map(([key, value]) => [key, BigInt(value as string)]),
    save: (key, highest) => broker.saveRecord(PAYLOAD_COUNTERS, key, highest.toString()),
  });
  // And the broker's own counters for what it seals, reserved ahead in blocks (kind "payload-out-counter").
  payload?.outbound?.attach({
    load: () => [...(broker.records.get(PAYLOAD_OUT_COUNTERS)?.entries() ?? [])].map(([key, value]) => [key, BigInt(value as string)]),
    save: (key, reserved) => broker.saveRecord(PAYLOAD_OUT_COUNTERS, key, reserved.toString()),
  });

  // Bans set by the guard or a program live in the store, as records of kind "ban": they survive restarts.
  security.guard?.attach({
    load: () => [...(broker.records.get(BAN_RECORDS)?.values() ?? [])] as Ban[],
    save: (key, ban) => broker.saveRecord(BAN_RECORDS, key, ban),
    delete: (key) => broker.deleteRecord(BAN_RECORDS, key),
  });
  // Users, groups and roles changed at runtime live in the store too, as records of kind "user", "group" and "role".
  security.runtime?.attach({
    load: (kind) => broker.records.get(kind) ?? [],
    save: (kind, key, value) => broker.saveRecord(kind, key, value),
    delete: (kind, key) => broker.deleteRecord(kind, key),
  });
  security.dynamicSecurity?.attach((topic, payload) => broker.publish({ topic, payload, qos: 1 }));
  // And how often each address offended, so a ban after a restart still doubles (records of kind "offender").
  security.guard?.attachOffences({
    load: () => [...(broker.records.get('offender') ?? [])],
    save: (key, offence) => broker.saveRecord('offender', key, offence),
    delete: (key) => broker.deleteRecord('offender', key),
  });

  // Overload protection and the session caps live in the broker; their reactions are audited here.
  broker.on('overload', (overloaded, used) => audit.record({
    event: 'guard.overload', clientId: '', action: overloaded ? 'refusing' : 'recovered', reason: `${Math.round(used / 1_048_576)} MiB held`,
  }));
  broker.on('sessionDropped', (clientId, reason, owner) => audit.record({ event: 'guard.session-dropped', clientId, ...owner, reason, action: 'dropped' }));
  broker.on('sessionRefused', (clientId, owner) => audit.record({
    event: 'guard.session-refused', clientId, ...owner, reason: 'stored session caps reached', action: 'refused',
  }));

  const reload = (): ReloadResult => {
    let next: LoadedConfig;
    try {
      next = read();
    } catch (err) {
      return { ok: false, applied: [], restartNeeded: [], error: (err as Error).message };
    }
    const applied: string[] = [];
    let restartNeeded: string[];
    // The new audit file is opened first: if it cannot be, nothing has changed yet.
    let nextSink: ReturnType<typeof auditFor> | undefined;
    try {
      if (config.auditFile !== next.auditFile) nextSink = auditFor(next);
      restartNeeded = security.update({ ...next.security, audit });
    } catch (err) {
      nextSink?.close();
      return { ok: false, applied: [], restartNeeded: [], error: (err as Error).message };
    }
    if (!same(config.security, next.security) && !restartNeeded.some((r) => r.endsWith('turned on or off'))) {
      applied.push('authentication and authorization');
    }
    // Against what the broker started with: a change waits for its restart however many reloads come between.
    for (const [section, of] of Object.entries(RESTART_SECTIONS)) if (!same(of(startedWith), of(next))) restartNeeded.push(section);
    if (nextSink) {
      auditSink.close();
      auditSink = nextSink;
      auditTrail.target = nextSink.audit;
      applied.push('audit');
    }
    // New certificates for TLS listeners that are otherwise unchanged: in force for the next handshakes.
    if (!restartNeeded.includes('listeners') && applyTls(next).length > 0) applied.push('tls certificates');
    if (!same(config.broker.limits, next.broker.limits)) {
      broker.updateLimits(next.broker.limits ?? {});
      applied.push('limits');
    }
    if (config.log.level !== next.log.level) {
      logger.level = next.log.level;
      applied.push('log.level');
    }
    const keysBefore = payload && JSON.stringify(payload.keyFile.keys());
    if (payload?.keyFile.reload() && JSON.stringify(payload.keyFile.keys()) !== keysBefore) applied.push('payload keys');
    if (reloadStoreKeys(store, startedWith.store, logger)) applied.push('store keys'); // re-encrypted in the background
    config = next;
    if (unwatchTls !== undefined) watchTls(); // the files may be others now
    return { ok: true, applied, restartNeeded };
  };

  /**
   * The TLS files of `next` (certificates, keys, CAs, CRLs, PSK keys) for each listener whose files changed: in force
   * for the next handshakes. Returns the names of the listeners that took them.
   */
  const applyTls = (next: LoadedConfig): string[] => (next.broker.listeners ?? []).flatMap((listener, index) => {
    const current = config.broker.listeners?.[index]?.tls;
    if (!listener.tls || same(current, listener.tls)) return [];
    // The server's PSK lookup was fixed when it was made: the keys it holds take the new ones.
    if (current?.psk instanceof PskKeys && listener.tls.psk instanceof PskKeys) {
      current.psk.replace(listener.tls.psk);
      listener.tls.psk = current.psk;
    }
    return broker.updateTls(index, listener.tls) ? [listener.name ?? String(index)] : [];
  });

  /**
   * A TLS file changed on disk (a renewed certificate, a new CRL or PSK file): the configuration is read again and
   * its TLS files applied, nothing else. Files that do not go together yet (a new certificate whose key is still the
   * old one) change nothing: the running ones stay, and the next change is tried again.
   */
  const tlsFilesChanged = (): void => {
    let next: LoadedConfig;
    try {
      next = read();
    } catch (err) {
      logger.warn({ config: options.configFile, err: (err as Error).message }, 'TLS files changed, but not applied: the running ones stay until the next change');
      return;
    }
    if (!same(RESTART_SECTIONS.listeners!(config), RESTART_SECTIONS.listeners!(next))) {
      logger.warn({ config: options.configFile }, 'TLS files changed, but so did the listeners in the configuration file: not applied; reload (SIGHUP) or restart');
      return;
    }
    const renewed = applyTls(next);
    if (renewed.length === 0) return;
    // Only the TLS options move on (a copy: the configuration the broker started with stays as it was).
    const listeners = config.broker.listeners?.map((listener, index) => {
      const tls = next.broker.listeners?.[index]?.tls;
      return tls ? { ...listener, tls } : listener;
    });
    config = { ...config, broker: { ...config.broker, ...(listeners && { listeners }) } };
    logger.info({ listeners: renewed }, 'TLS files changed: in force for new connections');
  };

  /** Set while the TLS files are watched (from listen to close). */
  let unwatchTls: (() => void) | undefined;
  /** (Re)starts watching the TLS files of the configuration in force; only a configuration read from a file. */
  const watchTls = (): void => {
    unwatchTls?.();
    unwatchTls = undefined;
    const files = (config.broker.listeners ?? []).flatMap((listener) => listener.tls?.sourceFiles ?? []);
    if (options.configFile === undefined || files.length === 0) return;
    unwatchTls = watchFiles(files, tlsFilesChanged, (directory, err) =>
      logger.error({ directory, err: err.message }, 'cannot watch TLS files; changes apply on reload (SIGHUP) only'));
  };

  // One process only: in multi-core mode the admin listener runs in the primary (src/cli/moat.ts), over every worker.
  const admin = config.admin && !worker
    ? createAdmin({ options: config.admin, broker, security, audit, logger, events, server: { config: () => config, reload: () => reload() } })
    : undefined;

  const ticketKeys = new TicketKeyRotation((keys) => broker.setTicketKeys(keys));
  return {
    broker,
    security,
    logger,
    admin,
    get config() {
      return config;
    },
    async listen() {
      // The admin port first: a port in use fails the start before any MQTT listener or the store is touched.
      if (admin) {
        const bound = await admin.listen();
        logger.info({ listener: 'admin', host: bound.address, port: bound.port, tls: config.admin?.tls !== undefined }, 'admin listening');
      }
      let addresses: ListenerAddress[];
      try {
        addresses = await broker.listen();
      } catch (err) {
        await admin?.close();
        throw err;
      }
      if (cluster) logger.info({ node: cluster.nodeId, nodes: cluster.liveNodes() }, 'cluster joined');
      security.guard?.bans.readStored(); // anything a program did before the store was recovered is merged now
      security.runtime?.readStored();
      watchTls();
      // A multi-core worker is given its keys by the primary (the same in every worker).
      if (!options.worker && config.broker.listeners?.some((l) => l.tls !== undefined)) ticketKeys.start();
      return addresses;
    },
    reload,
    async close() {
      unwatchTls?.();
      unwatchTls = undefined;
      ticketKeys.stop();
      await admin?.close();
      // Routing stops reading first; the sessions module outlives the broker's close, which lets go of the wills it kept.
      await cluster?.close();
      await broker.close();
      await clusterBans?.close();
      await clusterRuntime?.close();
      await clusterSessions?.close();
      security.close();
      payload?.keyFile.close();
      auditSink.close();
    },
  };
}

/** Logs what a reload did, as SIGHUP reports it. */
export function logReload(logger: PinoLogger, result: ReloadResult, file: string | undefined): void {
  if (!result.ok) {
    logger.error({ config: file, err: result.error }, 'configuration not reloaded; the running configuration stays in force');
    return;
  }
  logger.info({ config: file, applied: result.applied }, result.applied.length > 0 ? 'configuration reloaded' : 'configuration reloaded; nothing changed');
  if (result.restartNeeded.length > 0) {
    logger.warn({ config: file, sections: result.restartNeeded }, `changed, but in force only after a restart: ${result.restartNeeded.join(', ')}`);
  }
}

/** Cluster mode (src/cluster): the routing between nodes, its messages written in the store's batches. */
function clusterRouting(config: ClusterConfig, store: BrokerStore, logger: PinoLogger): ClusterRouting {
  if (!(store instanceof RedisStore)) throw new Error('cluster mode needs the Redis store');
  return new ClusterRouting({
    redis: config.redis, nodeId: config.nodeId, keys: new ClusterKeys(config.keyPrefix), heartbeatMs: config.heartbeatMs, deadAfterMs: config.deadAfterMs,
    batch: (op) => store.addToBatch(op), whenDurable: (done) => store.whenDurable(done), logger,
  });
}

const PAYLOAD_COUNTERS = 'payload-counter';
const PAYLOAD_OUT_COUNTERS = 'payload-out-counter';

/** Client-to-broker payload encryption (src/payload): the key file, watched; the replay state; the broker hook. */
function payloadProtection(config: PayloadConfig, audit: AuditLog, security: Security, logger: PinoLogger) {
  const keyFile = new PayloadKeyFile(config.keyFile, logger);
  keyFile.watch();
  const replay = new ReplayWindow(config.replayWindow ?? DEFAULT_REPLAY_WINDOW);
  const outbound = config.reencrypt ? new OutboundCounters() : undefined;
  const hooks = payloadProtectionHooks({
    keys: () => keyFile.keys(), identity: config.identity, topics: config.topics, replay, audit, ...(outbound && { reencrypt: outbound }),
    refused: () => {
      if (security.guard) security.guard.counters.payloadsRefused++;
    },
  });
  return { keyFile, replay, outbound, hooks };
}
