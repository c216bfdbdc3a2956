import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfigFile, type StoreConfig } from '../config/load.js';
import { createStore, describeStore, storeForWorker } from '../server/store.js';
import { StoreError } from '../store/errors.js';
import { AtRestKeyFileError } from '../store/at-rest.js';
import type { SqliteStore } from '../store/sqlite.js';
import type { RedisStore } from '../store/redis.js';

/**
 * `moat store rekey -c moat.yaml`: re-encrypts the stored messages of a stopped broker with the current key of
 * `store.encryption.key_file` (plain ones too), then prints the counts. A store held by a running broker is refused
 * with that broker's PID: a running broker rekeys itself on SIGHUP.
 */

const USAGE = `usage: moat store rekey -c <moat.yaml>

Re-encrypts the queued, in-flight and retained messages of a stopped broker's store with the
current key (the last line) of store.encryption.key_file, and prints how many were rewritten.
A running broker does the same in the background on SIGHUP. See docs/payload-encryption.md.`;

function fail(message: string): number {
  process.stderr.write(`moat store: ${message}\n`);
  return 1;
}

export async function runStore(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [command, ...options] = args;
  if (command !== 'rekey') return fail(`${command === undefined ? 'no command given' : `unknown command "${command}"`}\n${USAGE}`);
  const configAt = options.findIndex((o) => o === '-c' || o === '--config');
  const configFile = configAt >= 0 ? options[configAt + 1] : undefined;
  if (configFile === undefined || options.length !== 2) return fail(`rekey takes -c <moat.yaml> and nothing else\n${USAGE}`);
  let store: StoreConfig;
  let workers: number;
  try {
    ({ store, workers } = loadConfigFile(configFile));
  } catch (err) {
    if (err instanceof ConfigError) return fail(err.message);
    throw err;
  }
  if (store.type === 'memory' || !store.encryption) return fail(`${configFile}: store.encryption is not set; there is nothing to rekey`);
  // Multi-core mode keeps one store per worker; each one is rekeyed.
  const stores = workers > 1 ? Array.from({ length: workers }, (_, index) => storeForWorker(store, index)) : [store];
  for (const config of stores) {
    if (config.type === 'sqlite' && !existsSync(path.join(path.resolve(config.directory), 'moat.db'))) continue; // never started
    try {
      await rekey(config);
    } catch (err) {
      if (err instanceof StoreError || err instanceof AtRestKeyFileError) return fail(err.message);
      throw err;
    }
  }
  return 0;
}

async function rekey(config: StoreConfig): Promise<void> {
  const logger = {
    error: (obj: object, msg?: string) => process.stderr.write(`moat store: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
    info: () => {},
  };
  const store = createStore(config, {
    logger, worker: false,
    onLockLost: (holder) => logger.error({ holder }, 'the store lock was lost to another broker'),
  }) as SqliteStore | RedisStore;
  const started = performance.now();
  await store.open();
  try {
    const counts = await store.reencrypt();
    const ms = Math.round(performance.now() - started);
    process.stdout.write(`${describeStore(config)}: rekeyed ${counts.queued} queued, ${counts.inflight} in flight, ${counts.retained} retained messages (${ms} ms)\n`);
  } finally {
    await store.close();
  }
}
