// `moat` itself: the broker, one process or the primary and workers of multi-core mode (src/cli/moat.ts loads this
// module only when no subcommand is given).
import { parseArgs } from 'node:util';
import { storeForNode } from '../server/store.js';
import { describeTarget, openRedis } from '../store/redis-target.js';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { VERSION } from '../broker/version.js';
import { DEFAULT_LIMITS } from '../broker/options.js';
import { looksLikeMosquittoConfig } from '../config/mosquitto.js';
import { ConfigError, defaultConfig, loadConfigFile, type LoadedConfig, type StoreConfig } from '../config/load.js';
import { createLogger } from '../log/logger.js';
import { createServer, describeStore, logReload, type MoatServer } from '../server/index.js';
import { StoreError } from '../store/errors.js';
import { DirectoryLock, RedisLock } from '../store/lock.js';
import { ListenError } from '../transport/server.js';
import { Primary } from '../multicore/primary.js';
import { ControlForwarder } from '../multicore/shared-control.js';
import { securityEventsToPrimary, serveAsWorker, workerBrokerOptions, workerPlace, workerQueryHandlers } from '../multicore/worker.js';
import { PrimaryBrokerView, primaryBanCheck, workerAdminUsers } from '../multicore/admin-view.js';
import { PrimaryAdminBackend, primaryApiServer } from '../multicore/admin-backend.js';
import { apiRoutes, createAdminListener, SecurityEvents, teeAudit, type AdminListener, type ApiReloadResult } from '../admin/index.js';
import { createFileLogger } from '../log/logger.js';
import { loggerAudit } from '../security/index.js';

const HELP = `moat ${VERSION}: an MQTT broker

Usage: moat [options]

Options:
  -c, --config <file>  YAML configuration file (see docs/configuration.md)
      --host <address> listen on this address (replaces the configured listeners)
  -p, --port <port>    listen on this port (replaces the configured listeners)
  -w, --workers <n>    worker processes, one per core to use (multi-core mode; see docs/multicore.md)
  -h, --help           show this help
  -v, --version        print the version

Without --config, Moat listens on 127.0.0.1:1883 and accepts anonymous clients there.

       moat passwd [-D] [--force] <file> <user>   add or update a user (password read without echo,
                                                  or from standard input), or delete it with -D
       moat convert <mosquitto.conf>              print the equivalent Moat YAML of a Mosquitto configuration
       moat ctl <resource> <command> [...]        manage a running broker through its admin API
                                                  (clients, sessions, bans, users, ...; moat ctl --help)
       moat store rekey -c <file>                 re-encrypt a stopped broker's stored messages with the
                                                  current key of store.encryption.key_file

SIGHUP re-reads the configuration file (and the password and ACL files) and applies what can change
while the broker runs; the log names what needs a restart.`;

function fail(message: string): never {
  process.stderr.write(`moat: ${message}\n`);
  process.exit(1);
}

function parseCommandLine(): { config?: string; host?: string; port?: string; workers?: string } {
  try {
    const { values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        host: { type: 'string' },
        port: { type: 'string', short: 'p' },
        workers: { type: 'string', short: 'w' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(`${HELP}\n`);
      process.exit(0);
    }
    if (values.version) {
      process.stdout.write(`${VERSION}\n`);
      process.exit(0);
    }
    return values;
  } catch (err) {
    fail(`${(err as Error).message}\n\n${HELP}`);
  }
}

/**
 * Each worker of multi-core mode watches its own memory: left at its default, the overload high-water mark is the
 * workers' share of it, so that together they stay within the memory the default allows one process.
 */
function withMemoryShare(adjust: ((config: LoadedConfig) => void) | undefined, workers: number | undefined): ((config: LoadedConfig) => void) | undefined {
  if (workers === undefined || workers <= 1) return adjust;
  return (config) => {
    adjust?.(config);
    const limits = (config.broker.limits ??= {});
    limits.memoryHighWater ??= Math.floor(DEFAULT_LIMITS.memoryHighWater / workers);
  };
}

function withControlForwarder(adjust: ((config: LoadedConfig) => void) | undefined, control: ControlForwarder | undefined): ((config: LoadedConfig) => void) | undefined {
  if (!control) return adjust;
  return (config) => {
    adjust?.(config);
    if (config.security.runtime?.controlApi) config.security.runtime.executeControl = control.execute;
  };
}

/** --host and --port replace the configured listeners with one. */
function overrides(host: string | undefined, port: string | undefined): ((config: LoadedConfig) => void) | undefined {
  if (host === undefined && port === undefined) return undefined;
  const portNumber = port === undefined ? undefined : Number(port);
  if (portNumber !== undefined && (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535)) fail(`--port: expected 0-65535, got "${port}"`);
  return (config) => {
    const { path: _socketPath, ...first } = config.broker.listeners?.[0] ?? {};
    config.broker.listeners = [{ ...first, name: undefined, host: host ?? first.host ?? '127.0.0.1', port: portNumber ?? first.port ?? 1883 }];
  };
}

function workerCount(config: LoadedConfig, option: string | undefined): number {
  if (option === undefined) return config.workers;
  const n = Number(option);
  if (!Number.isInteger(n) || n < 1 || n > 31) fail(`--workers: expected 1-31, got "${option}"`);
  return n;
}

function isMosquittoFile(file: string): boolean {
  try {
    return looksLikeMosquittoConfig(readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
}

/** What a start-up failure says: one line, in words (a port in use, a store held by another broker...). */
function startFailure(err: unknown): string {
  if (err instanceof ListenError || err instanceof StoreError || err instanceof ConfigError) return err.message;
  return `cannot start: ${(err as Error).message}`;
}

/**
 * The primary of multi-core mode opens no store of its own, but holds the data directory (or the Redis key
 * prefix) so that a second broker on it is refused before any worker starts; each worker then holds its own.
 */
async function lockPrimaryStore(store: StoreConfig, logger: { fatal(obj: object, msg?: string): void }, stop: () => void): Promise<{ release(): Promise<void> | void } | undefined> {
  if (store.type === 'memory') return undefined;
  if (store.type === 'redis') {
    const ioredis = await import('ioredis');
    const redis = openRedis(ioredis, store, { lazyConnect: true, maxRetriesPerRequest: null });
    redis.on('error', () => {});
    const prefix = store.keyPrefix ?? 'moat:';
    try {
      await redis.connect();
      const lock = await RedisLock.acquire(redis, prefix, describeTarget(store), {
        onLost: (holder) => {
          logger.fatal({ holder }, `the store lock expired and is held by ${holder} now; stopping`);
          stop();
        },
      });
      return { release: async () => {
        await lock.release();
        redis.disconnect();
      } };
    } catch (err) {
      redis.disconnect();
      if (err instanceof StoreError) throw err;
      throw new StoreError(describeTarget(store), `cannot use the Redis store: ${(err as Error).message}`);
    }
  }
  const directory = path.resolve(store.directory);
  try {
    mkdirSync(directory, { recursive: true });
  } catch (err) {
    throw new StoreError(directory, `cannot create the data directory: ${(err as Error).message}`);
  }
  return DirectoryLock.acquire(directory);
}

/** The configuration file read again for the primary (its limits, the configuration the API shows); undefined if it has an error (the workers say what). */
function rereadConfig(file: string, adjust: ((config: LoadedConfig) => void) | undefined): LoadedConfig | undefined {
  try {
    const config = loadConfigFile(file);
    adjust?.(config);
    return config;
  } catch {
    return undefined;
  }
}

/** The limits the primary applies itself: it reads the start of each CONNECT. */
function primaryLimits(config: LoadedConfig): { connectTimeout: number; maxPacketSize: number } {
  return {
    connectTimeout: config.broker.limits?.connectTimeout ?? DEFAULT_LIMITS.connectTimeout,
    maxPacketSize: config.broker.limits?.maxPacketSize ?? DEFAULT_LIMITS.maxPacketSize,
  };
}

/** Multi-core mode: this process accepts connections and hands them to worker processes. */
async function runPrimary(
  config: LoadedConfig, workers: number, configFile: string | undefined, adjust: ((config: LoadedConfig) => void) | undefined,
): Promise<void> {
  const listeners = config.broker.listeners ?? [{ host: '127.0.0.1', port: 1883 }];
  const logger = createLogger(config.log.level, config.log.format);
  let lock: { release(): Promise<void> | void } | undefined;
  // The security feed of the admin listener: every worker sends its security audit events here.
  const securityEvents = config.admin ? new SecurityEvents() : undefined;
  const primary = new Primary({
    workers,
    ...(securityEvents && { onSecurityEvent: (event) => securityEvents.record(event) }),
    listeners: listeners.map((l) => ({
      ...(l.name !== undefined && { name: l.name }),
      endpoint: l.path !== undefined ? { path: l.path } : { host: l.host ?? '127.0.0.1', port: l.port ?? 1883 },
      // Plain MQTT on the socket: the primary reads the identifier. Anything else goes to the workers in turn.
      routed: l.tls === undefined && l.websocket === undefined && l.proxyProtocol !== true,
      tls: l.tls !== undefined,
    })),
    connectTimeout: config.broker.limits?.connectTimeout ?? DEFAULT_LIMITS.connectTimeout,
    maxPacketSize: config.broker.limits?.maxPacketSize ?? DEFAULT_LIMITS.maxPacketSize,
    logger,
    script: process.argv[1]!,
    args: process.argv.slice(2),
    beforeWorkers: async () => {
      // In a cluster the workers are nodes "{node_id}.{n}": the primary holds the node's own prefix.
      lock = await lockPrimaryStore(config.cluster ? storeForNode(config.store, config.cluster) : config.store, logger, () => void primary.stop(1));
    },
  });
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    void primary.stop(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  /** The configuration in force as the primary knows it: read again on each reload. */
  let inForce = config;
  const reread = (): void => {
    const next = configFile === undefined ? undefined : rereadConfig(configFile, adjust);
    if (!next) return;
    inForce = next;
    primary.setLimits(primaryLimits(next));
  };
  process.on('SIGHUP', () => {
    logger.info({}, 'SIGHUP: every worker reloads the configuration');
    reread();
    primary.reload();
  });
  // The admin listener runs here, over the whole broker: the workers are asked over IPC (docs/multicore.md).
  let admin: AdminListener | undefined;
  let auditFile: { close(): void } | undefined;
  if (config.admin) {
    const file = config.auditFile ? createFileLogger(config.auditFile) : undefined;
    auditFile = file;
    const guard = config.security.guard;
    // The primary's own audit events (admin requests, changes through the API) join the workers' in the feed.
    const trail = loggerAudit(file?.logger ?? logger);
    const audit = securityEvents ? teeAudit(trail, securityEvents) : trail;
    admin = createAdminListener({
      options: config.admin,
      view: new PrimaryBrokerView(primary, VERSION),
      users: workerAdminUsers(primary.queries),
      banned: primaryBanCheck(() => primary.bans.list(), guard ? guard.bans ?? [] : []),
      audit,
      ...(securityEvents && { events: securityEvents }),
      logger,
      // The REST API over every worker: lists merged, actions sent where the client is, changes through worker 0.
      api: apiRoutes({
        backend: new PrimaryAdminBackend(primary.queries, workers),
        server: primaryApiServer(primary.queries, workers, () => inForce, reread),
        audit,
      }),
    });
  }
  try {
    // The admin port first, as in one process: a port in use fails the start before any MQTT listener is bound.
    if (admin) {
      const bound = await admin.listen();
      logger.info({ listener: 'admin', host: bound.address, port: bound.port, tls: config.admin?.tls !== undefined }, 'admin listening');
    }
    await primary.start();
  } catch (err) {
    fail(startFailure(err));
  }
  logger.info({ version: VERSION, config: configFile ?? '(embedded default)', store: describeStore(config.store), workers }, 'moat started');
  const code = await primary.done;
  await admin?.close();
  auditFile?.close();
  await lock?.release();
  process.exit(code);
}

export async function serve(): Promise<void> {
  const args = parseCommandLine();
  // A worker other than 0 has dynamic-security requests carried out by worker 0 (src/multicore/shared-control.ts).
  const place0 = workerPlace();
  const control = place0 && place0.index !== 0
    ? new ControlForwarder((message) => process.connected && (process.send?.(message) ?? false))
    : undefined;
  const adjust = withControlForwarder(withMemoryShare(overrides(args.host, args.port), place0?.workers), control);
  let config: LoadedConfig;
  try {
    config = args.config ? loadConfigFile(args.config) : defaultConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (args.config && isMosquittoFile(args.config)) {
      fail(`${args.config}: this is a Mosquitto configuration file; convert it with: moat convert ${args.config} > moat.yaml`);
    }
    fail(`configuration error: ${err.message}`);
  }
  adjust?.(config);
  const workers = workerCount(config, args.workers);
  if (config.payload && workers > 1) fail(`configuration error: payload_encryption: not yet in multi-core mode (--workers ${workers}): each worker would keep its own replay state; run with one worker`);
  const place = workerPlace();
  if (!place && workers > 1) return runPrimary(config, workers, args.config, adjust);
  const logger = createLogger(config.log.level, config.log.format);
  let server: MoatServer;
  // Read per relayed connection, once the server exists.
  const links = place && workerBrokerOptions(place, logger, () => server.broker.limits);
  try {
    server = createServer({
      config, logger,
      ...(args.config !== undefined && { configFile: args.config }),
      ...(adjust && { adjust }),
      ...(place && links && { worker: { index: place.index, hooks: links.links.hooks, options: links.options, securityFeed: securityEventsToPrimary() } }),
    });
  } catch (err) {
    fail(`configuration error: ${(err as Error).message}`);
  }
  const reload = (): ApiReloadResult => {
    const result = server.reload();
    logReload(logger, result, args.config);
    return result;
  };
  if (links) {
    const shared = { guard: server.security.guard, runtime: server.security.runtime, control };
    return serveAsWorker(server.broker, links, reload, logger, shared, workerQueryHandlers(server.broker, server.security, reload));
  }
  process.on('SIGHUP', () => {
    logger.info({}, 'SIGHUP: reloading the configuration');
    reload();
  });
  // Handlers go in before anything starts: a signal must never find the default (kill) action.
  let stopping = false;
  let started = false;
  const shutdown = (): void => {
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    if (started) shutdown();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  try {
    await server.listen();
  } catch (err) {
    fail(startFailure(err));
  }
  started = true;
  if (stopping) return shutdown();
  logger.info({
    version: VERSION,
    config: args.config ? path.resolve(args.config) : '(embedded default)',
    store: describeStore(server.config.store),
  }, 'moat started');
}
