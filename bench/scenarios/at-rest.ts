import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PERSISTENT_QUEUE_LIMIT, persistentQos1 } from './durability.js';
import type { BenchContext, ScenarioReport } from './context.js';

/**
 * What encryption at rest costs (docs/payload-encryption.md, "At rest"): QoS 1 pairs toward persistent sessions on
 * the SQLite store (strict), without and with `store.encryption`; every in-flight record is sealed once.
 */
export async function atRestScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const keyFile = path.join(mkdtempSync(path.join(tmpdir(), 'moat-bench-at-rest-')), 'store.keys');
  writeFileSync(keyFile, `1:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const sqlite = 'store:\n  type: sqlite\n  directory: ./data\n  durability: strict\n';
  return persistentQos1(ctx, {
    plain: sqlite + PERSISTENT_QUEUE_LIMIT,
    encrypted: `${sqlite}  encryption:\n    key_file: ${keyFile}\n${PERSISTENT_QUEUE_LIMIT}`,
  }, { id: 'p2p-qos1-at-rest', title: 'QoS 1 to persistent sessions, SQLite store without and with encryption at rest', column: 'store' });
}
