#!/usr/bin/env -S node --max-semi-space-size=8
// The young generation's semi-space is 8 MiB instead of V8's 16: a broker holding thousands of idle
// connections keeps about 1 KiB less per connection, for about 0.3 µs more per QoS 0 fan-in delivery
// (docs/benchmarks.md, idle connections). `npm start` and the benchmarks run with the same flags.
import { parseArgs } from 'node:util';
import { createBroker } from '../broker/broker.js';
import { VERSION } from '../broker/version.js';
import { DEFAULT_LIMITS } from '../broker/options.js';
import { ConfigError, defaultConfig, loadConfigFile, type LoadedConfig, type StoreConfig } from '../config/load.js';
import { createFileLogger, createLogger } from '../log/logger.js';
import { createSecurity, loggerAudit, type Security } from '../security/index.js';
import { runPasswd } from './passwd.js';
import { MemoryStore } from '../store/memory.js';
import { SqliteStore } from '../store/sqlite.js';
import { RedisStore } from '../store/redis.js';
import type { BrokerStore } from '../store/store.js';
import path from 'node:path';
import { Primary } from '../multicore/primary.js';
import { serveAsWorker, workerBrokerOptions, workerPlace, type WorkerPlace } from '../multicore/worker.js';

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

       moat passwd [-D] <file> <user>   add or update a user (password read without echo,
                                        or from standard input), or delete it with -D
SIGHUP re-reads password and ACL files.`;

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

function applyOverrides(config: LoadedConfig, host: string | undefined, port: string | undefined): void {
  if (host === undefined && port === undefined) return;
  const first = config.broker.listeners?.[0] ?? {};
  const portNumber = port === undefined ? (first.port ?? 1883) : Number(port);
  if (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) fail(`--port: expected 0-65535, got "${port}"`);
  config.broker.listeners = [{ ...first, name: undefined, host: host ?? first.host ?? '127.0.0.1', port: portNumber }];
}

/** Each worker of multi-core mode keeps its own sessions: a directory or key prefix of its own. */
function storeFor(config: StoreConfig, place: WorkerPlace | undefined): StoreConfig {
  if (!place) return config;
  switch (config.type) {
    case 'memory': return config;
    case 'redis': return { ...config, keyPrefix: `${config.keyPrefix ?? 'moat:'}worker-${place.index}:` };
    case 'sqlite': return { ...config, directory: path.join(config.directory, `worker-${place.index}`) };
  }
}

function createStore(config: StoreConfig, logger: { error(obj: object, msg?: string): void }): BrokerStore {
  switch (config.type) {
    case 'memory': return new MemoryStore();
    case 'redis': return new RedisStore({ url: config.url, keyPrefix: config.keyPrefix, logger });
    case 'sqlite':
      return new SqliteStore({
        directory: path.resolve(config.directory), durability: config.durability, flushIntervalMs: config.flushIntervalMs, logger,
      });
  }
}

function describeStore(config: StoreConfig): string {
  switch (config.type) {
    case 'memory': return 'memory';
    case 'redis': return config.url;
    case 'sqlite': return `${path.resolve(config.directory)} (${config.durability})`;
  }
}

function workerCount(config: LoadedConfig, option: string | undefined): number {
  if (option === undefined) return config.workers;
  const n = Number(option);
  if (!Number.isInteger(n) || n < 1 || n > 31) fail(`--workers: expected 1-31, got "${option}"`);
  return n;
}

/** Multi-core mode: this process accepts connections and hands them to worker processes. */
async function runPrimary(config: LoadedConfig, workers: number, configFile: string | undefined): Promise<void> {
  const listeners = config.broker.listeners ?? [{ host: '127.0.0.1', port: 1883 }];
  const tls = listeners.find((l) => l.tls !== undefined);
  if (tls) fail(`configuration error: listener ${tls.name ?? `${tls.host}:${tls.port}`}: TLS listeners are served with workers: 1 only`);
  const logger = createLogger(config.log.level, config.log.format);
  const primary = new Primary({
    workers,
    listeners: listeners.map((l) => ({ ...(l.name !== undefined && { name: l.name }), host: l.host ?? '127.0.0.1', port: l.port ?? 1883 })),
    connectTimeout: config.broker.limits?.connectTimeout ?? DEFAULT_LIMITS.connectTimeout,
    maxPacketSize: config.broker.limits?.maxPacketSize ?? DEFAULT_LIMITS.maxPacketSize,
    logger,
    script: process.argv[1]!,
    args: process.argv.slice(2),
  });
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    void primary.stop(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    logger.info({}, 'SIGHUP: reloading password and ACL files in every worker');
    primary.reload();
  });
  try {
    await primary.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'broker failed to start');
    fail((err as Error).message);
  }
  logger.info({ version: VERSION, config: configFile ?? '(embedded default)', store: describeStore(config.store), workers }, 'moat started');
  process.exit(await primary.done);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'passwd') {
    process.exitCode = await runPasswd(process.argv.slice(3));
    return;
  }
  const args = parseCommandLine();
  let config: LoadedConfig;
  try {
    config = args.config ? loadConfigFile(args.config) : defaultConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`);
    throw err;
  }
  applyOverrides(config, args.host, args.port);
  const workers = workerCount(config, args.workers);
  const place = workerPlace();
  if (!place && workers > 1) return runPrimary(config, workers, args.config);
  const logger = createLogger(config.log.level, config.log.format);
  let security: Security;
  try {
    const audit = config.auditFile ? loggerAudit(createFileLogger(config.auditFile)) : loggerAudit(logger);
    security = createSecurity({ ...config.security, audit }, logger);
  } catch (err) {
    fail(`configuration error: ${(err as Error).message}`);
  }
  const store = createStore(storeFor(config.store, place), logger);
  const worker = place && workerBrokerOptions(place, logger);
  const broker = createBroker({
    ...config.broker, store, logger, authMethods: { ...security.authMethods, ...config.broker.authMethods },
    // The peers' hook goes last: it runs only for subscriptions the security hooks allowed.
    hooks: worker ? [...[security.hooks].flat(), worker.links.hooks] : security.hooks,
    ...worker?.options,
  });
  if (worker) return serveAsWorker(broker, worker.links, () => security.reload(), logger);
  // SIGHUP reads the password and ACL files again; connected clients stay.
  process.on('SIGHUP', () => {
    logger.info({}, 'SIGHUP: reloading password and ACL files');
    security.reload();
  });
  // Handlers go in before anything starts: a signal must never find the default (kill) action.
  let stopping = false;
  let started = false;
  const shutdown = (): void => {
    broker.close().then(
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
    await broker.listen();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'broker failed to start');
    fail((err as Error).message);
  }
  started = true;
  if (stopping) return shutdown();
  logger.info({
    version: VERSION,
    config: args.config ?? '(embedded default)',
    store: describeStore(config.store),
  }, 'moat started');
}

void main();
